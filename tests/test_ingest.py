"""`rivermon ingest` as a child process against the real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
import time

import pytest
import requests

from rivermon.core import reading as rd
from rivermon.core.servers import free_port
from rivermon.ingest.testing import Publisher, ingest_argv, telemetry_points, wait_until

pytestmark = pytest.mark.e2e

NOW = time.time()


@pytest.fixture
def ingest(service, broker_url, influx, prefix, tmp_path):
    """Start one ingestor for this test's prefix and database; returns (service, metrics URL)."""

    def start(**settings):
        port = free_port()
        settings.setdefault("ingest_metrics_port", port)
        settings.setdefault("ingest_batch_ms", 100)
        svc = service(*ingest_argv(broker_url, influx.url, influx.database, prefix,
                                   tmp_path / "var", **settings))
        base = f"http://127.0.0.1:{settings['ingest_metrics_port']}"
        assert wait_until(lambda: _ready(base), 20), svc.log()
        return svc, base

    return start


def _ready(base: str) -> bool:
    try:
        return requests.get(base + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def pub(broker_url):
    p = Publisher(broker_url)
    yield p
    p.close()


def rows(influx, q):
    return influx.rows(q)


def test_readings_land_with_topology_tags_float_fields_and_integer_seq(ingest, pub, influx, prefix, collector):
    acc = collector([f"{prefix}/_accepted/#"])
    ingest()
    t = f"{prefix}/huanglong"
    pub.publish(f"{t}/hl1-s1/telemetry", {"ts": NOW - 60, "seq": 7, "do_mg_l": 6, "turbidity_ntu": 12.5,
                                          "temp_c": 27.1, "battery_v": 3.9})
    # A backlog, out of order, each stored at its own ts.
    pub.publish(f"{t}/hl1-s1/telemetry", [{"ts": NOW - 3600 + 120, "seq": 3, "do_mg_l": 5.1},
                                          {"ts": NOW - 3600, "seq": 1, "do_mg_l": 5.0}])
    pub.publish(f"{t}/stray-1/telemetry", {"ts": NOW - 50, "do_mg_l": 4.0, "new_probe_x": 2})
    pub.publish(f"{t}/stray-2/telemetry", {"ts": NOW - 40, "aerator_on": True, "power_w": 750})
    assert pub.wait_all(10)
    assert wait_until(lambda: len(rows(influx, 'SELECT * FROM "telemetry"')) == 5, 10)
    got = {(r["node"], r["time"]): r for r in rows(influx, 'SELECT * FROM "telemetry"')}
    first = got[("hl1-s1", int(round((NOW - 60) * 1000)))]
    assert (first["segment"], first["kind"], first["creek"]) == ("hl-1", "sensor", "huanglong")
    assert first["do_mg_l"] == 6.0 and first["seq"] == 7 and first["battery_v"] == 3.9
    assert got[("hl1-s1", int(round((NOW - 3600) * 1000)))]["seq"] == 1
    stray = got[("stray-1", int(round((NOW - 50) * 1000)))]
    assert (stray["segment"], stray["kind"], stray["new_probe_x"]) == ("unassigned", "sensor", 2.0)
    aer = got[("stray-2", int(round((NOW - 40) * 1000)))]
    assert (aer["segment"], aer["kind"], aer["aerator_on"]) == ("unassigned", "aerator", True)
    # Field types as InfluxDB stores them: floats stay floats, seq an integer, booleans booleans.
    types = {v[0]: v[1] for v in influx.query('SHOW FIELD KEYS FROM "telemetry"')[0]["series"][0]["values"]}
    assert types["do_mg_l"] == "float" and types["seq"] == "integer" and types["aerator_on"] == "boolean"
    # The model's feed: the same readings, with segment and kind.
    assert acc.wait_for(lambda msgs: sum(len(json.loads(m.payload)) for m in msgs) == 5, 10)
    feed = [r for m in acc.messages for r in json.loads(m.payload)]
    assert all(m.topic == f"{prefix}/_accepted/huanglong" for m in acc.messages)
    one = next(r for r in feed if r.get("seq") == 7)
    assert one == {"node": "hl1-s1", "segment": "hl-1", "kind": "sensor", "ts": round(NOW - 60, 3),
                   "seq": 7, "do_mg_l": 6.0, "turbidity_ntu": 12.5, "temp_c": 27.1, "battery_v": 3.9}


BAD = [
    # (node, payload bytes, reasons expected in rejects, good readings kept)
    ("bad-a", b"not json at all", {rd.R_NOT_JSON}, 0),
    ("bad-b", b"[1, 2", {rd.R_NOT_JSON}, 0),
    ("bad-c", b'"just a string"', {rd.R_NOT_OBJECT}, 0),
    ("bad-d", b'{"ts": 1, "pad": "' + b"x" * (256 * 1024) + b'"}', {rd.R_TOO_LARGE}, 0),
    ("bad-e", json.dumps([{"do_mg_l": 5.0}, {"ts": NOW - 10, "do_mg_l": 5.0}]).encode(), {rd.R_TS_MISSING}, 1),
    ("bad-f", json.dumps([{"ts": NOW + 3600, "do_mg_l": 5.0}, {"ts": NOW - 11, "do_mg_l": 5.0}]).encode(),
     {rd.R_TS_FUTURE}, 1),
    ("bad-g", json.dumps({"ts": NOW - 12, "do_mg_l": 77.0, "temp_c": 26.0}).encode(), {rd.R_FIELD_RANGE}, 1),
    ("bad-h", b'{"ts": %d, "do_mg_l": NaN, "temp_c": 26.0}' % int(NOW - 13), {rd.R_FIELD_NONFINITE}, 1),
    ("bad-i", json.dumps({"ts": NOW - 14, "do_mg_l": "6.1", "temp_c": 26.0}).encode(), {rd.R_FIELD_TYPE}, 1),
    ("bad-j", json.dumps({"ts": NOW - 15, "do_mg_l": -3}).encode(), {rd.R_FIELD_RANGE, rd.R_EMPTY}, 0),
    ("bad-k", json.dumps([{"ts": NOW - 16, "do_mg_l": 5.0}] * 1001).encode(), {rd.R_BACKLOG}, 0),
]


def test_every_bad_input_row_is_refused_kept_counted_and_ingestion_continues(ingest, pub, influx, prefix):
    _, base = ingest()
    t = f"{prefix}/huanglong"
    for node, payload, _, _ in BAD:
        pub.publish(f"{t}/{node}/telemetry", payload)
    pub.publish(f"{prefix}/Huanglong/hl1-s1/telemetry", {"ts": NOW - 5, "do_mg_l": 5.0})  # bad creek id
    pub.publish(f"{t}/{'x' * 40}/telemetry", {"ts": NOW - 5, "do_mg_l": 5.0})  # node id too long
    # The same reading twice (a redelivery): stored once.
    for _ in range(2):
        pub.publish(f"{t}/dup-1/telemetry", {"ts": NOW - 20, "seq": 5, "do_mg_l": 5.5})
    pub.publish(f"{t}/last-1/telemetry", {"ts": NOW - 1, "do_mg_l": 6.5})
    assert pub.wait_all(10)
    assert wait_until(lambda: rows(influx, 'SELECT * FROM "telemetry" WHERE "node" = \'last-1\''), 10)
    kept = {}
    for r in rows(influx, 'SELECT * FROM "telemetry"'):
        kept[r["node"]] = kept.get(r["node"], 0) + 1
    for node, _, _, n_good in BAD:
        assert kept.get(node, 0) == n_good, node
    assert kept["dup-1"] == 1
    assert wait_until(lambda: len(rows(influx, 'SELECT * FROM "rejects"')) >= len(BAD) + 3, 10)
    rejects = rows(influx, 'SELECT * FROM "rejects"')
    by_node: dict[str, set[str]] = {}
    for r in rejects:
        by_node.setdefault(r.get("node") or "", set()).add(r["reason"])
        assert r["detail"] and r["topic"] and len(r["payload"]) <= 4096
    for node, _, reasons, _ in BAD:
        assert by_node[node] == reasons, node
    assert {rd.R_TOPIC} == by_node[""] | {rd.R_TOPIC}  # no node tag when the topic is unreadable
    assert sum(1 for r in rejects if r["reason"] == rd.R_TOPIC) == 2
    big = next(r for r in rejects if r.get("node") == "bad-d")
    assert len(big["payload"]) == 4096 and big["payload"].startswith('{"ts": 1, "pad": "xxx')
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'rivermon_ingest_rejects_total{reason="too_large"} 1' in metrics
    assert 'rivermon_ingest_rejects_total{reason="bad_topic"} 2' in metrics
    assert 'rivermon_ingest_rejects_total{reason="field_out_of_range"} 2' in metrics


def test_influx_refusing_part_of_a_batch_keeps_the_good_points(ingest, pub, influx, prefix):
    _, base = ingest(ingest_batch_ms=300)
    t = f"{prefix}/huanglong/hl2-s1/telemetry"
    # `flow_flag` is well formed but arrives first as a number, then as a boolean: InfluxDB
    # refuses the second (field type conflict) and must keep everything else in the batch.
    pub.publish(t, [{"ts": NOW - 100 + i, "do_mg_l": 5.0, "flow_flag": 1.0} for i in range(10)])
    pub.publish(t, [{"ts": NOW - 50 + i, "do_mg_l": 5.0, **({"flow_flag": True} if i == 3 else {})}
                    for i in range(10)])
    assert pub.wait_all(10)
    assert wait_until(lambda: rows(influx, 'SELECT * FROM "rejects" WHERE "reason" = \'influx_refused\''), 10)
    assert len(telemetry_points(influx)) == 19
    rej = rows(influx, 'SELECT * FROM "rejects" WHERE "reason" = \'influx_refused\'')
    assert len(rej) == 1 and "conflict" in rej[0]["detail"] and "flow_flag=true" in rej[0]["payload"]
    assert rej[0]["node"] == "hl2-s1" and rej[0]["topic"] == t
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'rivermon_ingest_rejects_total{reason="influx_refused"} 1' in metrics


def test_status_online_offline_last_will_and_unregistered_nodes(ingest, pub, influx, prefix, broker_url):
    from rivermon.core.mqtt import make_client, parse_broker_url

    t = f"{prefix}/huanglong"
    pub.publish(f"{t}/hl1-s1/status", {"state": "online", "fw": "1.4.2"}, retain=True)
    assert pub.wait_all(5)
    _, base = ingest()  # the retained status arrives on subscription
    node = make_client(broker_url, "node-hl3-s1")
    node.will_set(f"{t}/hl3-s1/status", json.dumps({"state": "offline"}), qos=1, retain=True)
    b = parse_broker_url(broker_url)
    node.connect(b.host, b.port, keepalive=1)
    node.loop_start()
    node.publish(f"{t}/hl3-s1/status", json.dumps({"state": "online", "fw": "2.0"}), qos=1, retain=True).wait_for_publish(5)
    pub.publish(f"{t}/ghost-9/telemetry", {"ts": NOW - 5, "seq": 1, "do_mg_l": 5.0, "battery_v": 3.3})
    pub.publish(f"{t}/ghost-9/telemetry", {"ts": NOW - 4, "seq": 4, "do_mg_l": 5.0, "battery_v": 3.2})
    pub.publish(f"{t}/ghost-9/telemetry", {"ts": NOW - 4, "seq": 4, "do_mg_l": 5.0, "battery_v": 3.2})
    pub.publish(f"{t}/ghost-9/status", b"{\"state\": \"sleepy\"}")
    assert pub.wait_all(5)
    assert wait_until(lambda: len(rows(influx, 'SELECT * FROM "node_status"')) == 2, 10)
    node._sock_close()  # the node vanishes without DISCONNECT: the broker sends its will
    node.loop_stop()
    assert wait_until(lambda: len(rows(influx, 'SELECT * FROM "node_status"')) == 3, 15)
    states = [(r["node"], r["state"]) for r in rows(influx, 'SELECT * FROM "node_status"')]
    assert states[0] == ("hl1-s1", "online") and states[1:] == [("hl3-s1", "online"), ("hl3-s1", "offline")]
    st = rows(influx, 'SELECT * FROM "node_status"')[0]
    assert (st["segment"], st["fw"], st["registered"]) == ("hl-1", "1.4.2", True)
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'rivermon_ingest_node_online{creek="huanglong",node="hl3-s1",segment="hl-3",kind="sensor",registered="true"} 0' in metrics
    ghost = '{creek="huanglong",node="ghost-9",segment="unassigned",kind="sensor",registered="false"}'
    assert f"rivermon_ingest_node_seq_gaps{ghost} 2" in metrics
    assert f"rivermon_ingest_node_seq_repeats{ghost} 1" in metrics
    assert f"rivermon_ingest_node_battery_volts{ghost} 3.2" in metrics
    assert "rivermon_ingest_unregistered_nodes 1" in metrics
    assert 'rivermon_ingest_rejects_total{reason="status_invalid"} 1' in metrics
    assert requests.get(base + "/livez", timeout=5).status_code == 200


def test_mqtt_311_works_too(ingest, pub, influx, prefix):
    ingest(mqtt_protocol="3.1.1")
    for i in range(50):
        pub.publish(f"{prefix}/huanglong/hl1-s2/telemetry", {"ts": NOW - 100 + i, "do_mg_l": 5.0})
    assert pub.wait_all(10)
    assert wait_until(lambda: len(telemetry_points(influx)) == 50, 10)

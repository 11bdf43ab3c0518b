"""The shared alert store: lifecycle, transitions, several processes, emitting."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from rivermon.core.alerts import (KIND_NAMES, Alert, AlertError, AlertNotFound, AlertStore,
                                  InvalidTransition, alert_line, audience_of, publish_alert)
from rivermon.core.mqtt import make_client, parse_broker_url

T0 = 1795753440.0  # 2026-11-27T12:24:00+08:00

SUMMARY = {"zh": "疑似排污", "en": "Suspected discharge"}


@pytest.fixture
def store(tmp_path):
    s = AlertStore(tmp_path / "alerts.sqlite")
    yield s
    s.close()


def _open(store, kind="discharge", node="hl3-s1", segment="hl-3", severity="warning", start=T0, now=None):
    return store.open_or_update("huanglong", segment, node, kind, severity, start, SUMMARY,
                                {"outlets": ["ol-l3"]}, now=now or start)


def test_id_format_and_event_shape(store):
    a, change = _open(store)
    assert change == "opened"
    assert a.id == "a-20261127-0001"
    ev = a.to_event()
    for key in ("id", "creek", "segment", "node", "kind", "severity", "start", "end", "state",
                "summary", "evidence"):
        assert key in ev
    assert ev["start"] == "2026-11-27T12:24:00+08:00"
    assert ev["end"] is None and ev["state"] == "open"
    assert ev["audience"] == "water"
    assert Alert.from_event(json.loads(json.dumps(ev))) == a


def test_one_alert_per_ongoing_event(store):
    a, _ = _open(store)
    b, change = _open(store, now=T0 + 60)
    assert b.id == a.id and change == "updated"
    c, change = _open(store, severity="critical", now=T0 + 120)
    assert c.id == a.id and change == "severity" and c.severity == "critical"
    d, change = _open(store, node="hl4-s1", segment="hl-4")
    assert d.id != a.id and change == "opened"
    assert len(store.list()) == 2


def test_lifecycle_with_who_and_when(store):
    a, _ = _open(store)
    a = store.acknowledge(a.id, "cleaner-li", at=T0 + 300)
    assert (a.state, a.acknowledged_by, a.acknowledged_at) == ("acknowledged", "cleaner-li", T0 + 300)
    a = store.add_note(a.id, "cleaner-li", "油膜，已通知", at=T0 + 400)
    assert a.notes == [{"by": "cleaner-li", "at": T0 + 400, "text": "油膜，已通知"}]
    # still ongoing: the same alert keeps being updated, staying acknowledged
    b, change = _open(store, now=T0 + 500)
    assert b.id == a.id and b.state == "acknowledged" and change == "updated"
    a = store.resolve(a.id, "cleaner-li", at=T0 + 900)
    assert (a.state, a.resolved_by, a.end) == ("resolved", "cleaner-li", T0 + 900)
    # after resolution the same condition opens a new alert
    c, change = _open(store, start=T0 + 1000)
    assert change == "opened" and c.id != a.id
    assert store.get(a.id).state == "resolved"


def test_invalid_transitions_are_refused_clearly(store):
    a, _ = _open(store)
    store.resolve(a.id, "auto", at=T0 + 60, end=T0 + 30)
    assert store.get(a.id).end == T0 + 30
    with pytest.raises(InvalidTransition, match="already resolved by auto"):
        store.acknowledge(a.id, "li")
    with pytest.raises(InvalidTransition, match="already resolved"):
        store.resolve(a.id, "li")
    b, _ = _open(store, start=T0 + 100)
    store.acknowledge(b.id, "li")
    with pytest.raises(InvalidTransition, match="already acknowledged by li"):
        store.acknowledge(b.id, "wang")
    with pytest.raises(AlertNotFound):
        store.acknowledge("a-20990101-0001", "li")
    with pytest.raises(AlertError, match="non-empty"):
        store.acknowledge(b.id, " ")
    with pytest.raises(AlertError, match="text"):
        store.add_note(b.id, "li", "")
    with pytest.raises(AlertError, match="severity"):
        _open(store, severity="bad")
    with pytest.raises(AlertError, match="kind"):
        _open(store, kind="nonsense")


def test_filters_and_counts(store):
    _open(store)
    _open(store, kind="sensor_stuck", start=T0 + 10)
    x, _ = _open(store, kind="low_do", node="hl4-s1", segment="hl-4", start=T0 + 20, severity="critical")
    store.resolve(x.id, "auto", at=T0 + 3000)
    assert {a.kind for a in store.list(state="open")} == {"discharge", "sensor_stuck"}
    assert [a.kind for a in store.list(segment="hl-4")] == ["low_do"]
    assert [a.kind for a in store.list(kind="sensor_stuck")] == ["sensor_stuck"]
    assert [a.kind for a in store.list(since=T0 + 5, until=T0 + 15)] == ["sensor_stuck"]
    assert store.open_counts_by_segment() == {"hl-3": 2}
    assert store.worst_open_by_segment() == {"hl-3": "warning"}
    assert store.get(store.list(kind="sensor_stuck")[0].id).audience == "equipment"


def test_survives_restart(tmp_path):
    path = tmp_path / "a.sqlite"
    with AlertStore(path) as s:
        a, _ = _open(s)
        s.acknowledge(a.id, "li", at=T0 + 1)
    with AlertStore(path) as s:
        assert s.get(a.id).acknowledged_by == "li"
        b, change = _open(s, now=T0 + 2)
        assert b.id == a.id and change == "updated"
        c, _ = _open(s, kind="rain", node=None, segment="")
        assert c.id == "a-20261127-0002" and c.node is None


def _worker(path: str, n: int, k: int) -> None:
    with AlertStore(path) as s:
        for i in range(n):
            a, _ = s.open_or_update("huanglong", f"hl-{k}", f"n{k}-{i}", "sensor_spike", "info",
                                    T0 + i, SUMMARY, now=T0 + i)
            s.add_note(a.id, f"w{k}", f"note {i}")


def test_several_processes_share_the_store(tmp_path):
    path = str(tmp_path / "a.sqlite")
    AlertStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(path, 25, k)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with AlertStore(path) as s:
        alerts = s.list()
        assert len(alerts) == 75
        assert len({a.id for a in alerts}) == 75
        assert all(len(a.notes) == 1 for a in alerts)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def test_kinds_and_audiences():
    for kind in ("low_do", "black_odorous", "discharge", "turbidity_spike", "rain", "sensor_stuck",
                 "sensor_spike", "sensor_drift", "node_offline", "aerator_fault"):
        assert kind in KIND_NAMES and KIND_NAMES[kind]["zh"] and KIND_NAMES[kind]["en"]
    assert audience_of("discharge") == "water"
    assert audience_of("aerator_fault") == "equipment"
    assert audience_of("node_offline") == "equipment"


def test_alert_line_and_publish(store, broker_url, prefix, collector, influx):
    a, _ = _open(store)
    text = alert_line(a)
    assert text.startswith("alerts,creek=huanglong,kind=discharge,segment=hl-3,severity=warning ")
    influx.write_lines(text)
    rows = influx.rows('SELECT * FROM "alerts"')
    assert rows[0]["id"] == a.id and rows[0]["state"] == "open" and rows[0]["summary"] == "疑似排污"
    assert json.loads(rows[0]["evidence"]) == {"outlets": ["ol-l3"]}

    col = collector([f"{prefix}/+/alerts"])
    client = make_client(broker_url, "pub-test")
    u = parse_broker_url(broker_url)
    client.connect(u.host, u.port)
    client.loop_start()
    try:
        publish_alert(client, prefix, a).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    assert col.wait_for(lambda ms: len(ms) == 1)
    msg = col.messages[0]
    assert msg.topic == f"{prefix}/huanglong/alerts" and msg.qos == 1
    assert json.loads(msg.payload)["id"] == a.id


def test_alert_points_wait_while_influxdb_is_down_and_are_written_in_order_after(store, influx):
    from rivermon.core.alerts import AlertPoints
    from rivermon.core.influx import InfluxClient
    from rivermon.core.servers import free_port

    down = InfluxClient(f"http://127.0.0.1:{free_port()}", influx.database, timeout=1)
    points = AlertPoints(down, "Asia/Shanghai")
    first, _ = _open(store)
    second = store.acknowledge(first.id, "cleaner-1", at=T0 + 60)
    points.add(first)
    points.add(second)
    assert points.flush() is False and len(points.lines) == 2  # nothing dropped while down
    down.close()
    points.influx = influx
    assert points.flush() is True and points.lines == []
    rows = influx.rows('SELECT "id", "state" FROM "alerts"')
    assert [r["state"] for r in rows] == ["acknowledged"]  # one point per alert start: the latest wins
    assert rows[0]["id"] == first.id


def test_alert_points_refused_as_malformed_are_not_retried_forever(store, influx_url):
    from rivermon.core.alerts import AlertPoints
    from rivermon.core.influx import InfluxClient

    missing = InfluxClient(influx_url, "no_such_database_here")
    points = AlertPoints(missing, "Asia/Shanghai")
    points.add(_open(store)[0])
    assert points.flush() is True and points.lines == []  # 404: logged, the alert store keeps it
    missing.close()

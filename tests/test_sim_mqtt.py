"""The simulator on a real broker: what the truth file says was injected is what a subscriber saw."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.sim.truth import read_truth

pytestmark = pytest.mark.e2e

FAULTS = """
name = "wire-faults"
duration = "3h"
season = "summer"

[[events]]
kind = "battery"
node = "hl2-s1"
at = "20m"
rate_v_per_d = 12

[[events]]
kind = "node_dies"
node = "hlb1-s1"
at = "2h"

[[events]]
kind = "radio_outage"
node = "hl6-s1"
at = "30m"
duration = "1h"

[[events]]
kind = "duplicates"
node = "hl1-s1"
at = "10m"
duration = "1h"
prob = 0.3

[[events]]
kind = "discharge"
outlet = "ol-l3"
at = "1h"
duration = "40m"
"""


def _sim(broker_url: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", "--broker", broker_url,
                        "--topic-prefix", prefix, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def _by_node(messages, prefix: str) -> dict[str, list[tuple[str, bytes]]]:
    out: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for m in messages:
        creek, node, channel = m.topic[len(prefix) + 1:].split("/")
        out[node].append((channel, m.payload))
    return out


def test_truth_matches_what_a_subscriber_saw(broker_url, prefix, collector, tmp_path: Path):
    scenario = tmp_path / "wire-faults.toml"
    scenario.write_text(FAULTS, encoding="utf-8")
    truth_path = tmp_path / "truth.jsonl"
    sub = collector([f"{prefix}/#"])
    _sim(broker_url, prefix, "--scenario", str(scenario), "--seed", "5", "--speed", "0",
         "--truth", str(truth_path))
    assert sub.wait_for(lambda ms: sum(1 for m in ms if m.topic.endswith("/telemetry")) >= 3000, 20)
    time.sleep(0.5)
    seen = _by_node(sub.messages, prefix)
    truth = read_truth(truth_path)
    kinds = sorted(t["kind"] for t in truth)
    assert kinds == ["discharge", "low_battery", "net_backlog", "net_duplicate", "node_offline",
                     "node_offline"]
    for t in truth:
        node = t["node"]
        msgs = seen.get(node, [])
        if t["kind"] == "node_offline":
            states = [json.loads(p)["state"] for ch, p in msgs if ch == "status"]
            assert states[-1] == "offline", (node, states)  # the broker published the will
            last_status = max(i for i, (ch, _) in enumerate(msgs) if ch == "status")
            assert all(ch == "status" for ch, _ in msgs[last_status:]), "a dead node stays silent"
            stamps = [json.loads(p)["ts"] for ch, p in msgs if ch == "telemetry"]
            assert max(stamps) <= t["start_ts"] + 1
        elif t["kind"] == "net_backlog":
            arrays = [json.loads(p) for ch, p in msgs if ch == "telemetry" and p.startswith(b"[")]
            assert len(arrays) == 1
            stamps = [r["ts"] for r in arrays[0]]
            assert all(t["start_ts"] - 60 <= s <= t["end_ts"] + 60 for s in stamps)
            assert len(stamps) == pytest.approx(t["params"]["expected_readings"], abs=2)
            states = [json.loads(p)["state"] for ch, p in msgs if ch == "status"]
            assert states == ["online", "offline", "online"]
        elif t["kind"] == "net_duplicate":
            payloads = [p for ch, p in msgs if ch == "telemetry"]
            assert len(payloads) - len(set(payloads)) >= 5
        elif t["kind"] == "discharge":
            assert t["outlet"] == "ol-l3" and t["params"]["nodes"][0] == "hl3-s1"
    # Nothing was stamped in the future of the wall clock (the ingestor refuses > 5 min ahead).
    stamps = [r["ts"] for msgs in seen.values() for ch, p in msgs if ch == "telemetry"
              for r in (json.loads(p) if p.startswith(b"[") else [json.loads(p)])]
    assert max(stamps) <= time.time()
    # Nodes without faults delivered every reading exactly once.
    readings = [json.loads(p) for ch, p in seen["hl4-s1"] if ch == "telemetry"]
    assert [r["seq"] for r in readings] == list(range(1, 181))


def test_same_seed_publishes_the_same_stream(broker_url, collector):
    streams = []
    for run in range(2):
        prefix = f"same{run}{time.time_ns() % 10**8}/v1"
        sub = collector([f"{prefix}/+/+/telemetry"])
        _sim(broker_url, prefix, "--scenario", "network-faults", "--seed", "9", "--speed", "0",
             "--duration", "90m", "--start", "2026-07-02T00:00:00+08:00", "--interval", "60")
        assert sub.wait_for(lambda ms: len(ms) >= 1790, 20)
        time.sleep(0.3)
        streams.append(_by_node(sub.messages, prefix))
    assert streams[0] == streams[1]
    assert sum(len(v) for v in streams[0].values()) >= 1790


def test_aerators_obey_cmd_and_confirm_at_once(broker_url, prefix, collector, service):
    sub = collector([f"{prefix}/huanglong/hl3-a1/#"])
    svc = service("sim", "--broker", broker_url, "--topic-prefix", prefix, "--scenario",
                  "normal-week", "--speed", "1", "--duration", "10m")
    assert sub.wait_for(lambda ms: any(m.topic.endswith("/status") and b"online" in m.payload
                                       for m in ms), 20), svc.log()
    pub = make_client(parse_broker_url(broker_url), "test-cmd")
    b = parse_broker_url(broker_url)
    pub.connect(b.host, b.port)
    pub.loop_start()
    try:
        for wanted in (False, True, False):
            n = len(sub.messages)
            pub.publish(f"{prefix}/huanglong/hl3-a1/cmd",
                        json.dumps({"aerator_on": wanted, "reason": "test", "ts": time.time()}),
                        qos=1).wait_for_publish(5)

            def confirmed(ms, n=n, wanted=wanted):
                for m in ms[n:]:
                    if m.topic.endswith("/telemetry"):
                        r = json.loads(m.payload)
                        return r["aerator_on"] is wanted and (r["power_w"] > 1500) is wanted
                return False

            assert sub.wait_for(confirmed, 10), (wanted, svc.log()[-2000:])
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_copies_publish_as_separate_creeks_with_pooled_clients(broker_url, prefix, collector):
    sub = collector([f"{prefix}/#"])
    _sim(broker_url, prefix, "--scenario", "normal-week", "--copies", "2", "--clients", "pooled",
         "--speed", "0", "--duration", "30m")
    assert sub.wait_for(lambda ms: sum(1 for m in ms if m.topic.endswith("/telemetry")) >= 1200, 20)
    creeks = defaultdict(set)
    for m in sub.messages:
        creek, node, channel = m.topic[len(prefix) + 1:].split("/")
        creeks[(creek, channel)].add(node)
    assert len(creeks[("huanglong", "telemetry")]) == 20
    assert creeks[("huanglong-2", "telemetry")] == creeks[("huanglong", "telemetry")]
    assert len(creeks[("huanglong-2", "status")]) == 20


@pytest.mark.faults
def test_killing_the_simulator_makes_the_broker_publish_every_will(broker_url, prefix, collector, service):
    sub = collector([f"{prefix}/+/+/status"])
    svc = service("sim", "--broker", broker_url, "--topic-prefix", prefix, "--scenario",
                  "normal-week", "--speed", "1", "--duration", "10m")
    online = lambda ms: len({m.topic for m in ms if b'"online"' in m.payload}) == 20  # noqa: E731
    assert sub.wait_for(online, 20), svc.log()[-2000:]
    svc.kill9()
    offline = lambda ms: len({m.topic for m in ms if b'"offline"' in m.payload}) == 20  # noqa: E731
    assert sub.wait_for(offline, 15)


def test_an_injected_discharge_starts_is_recorded_and_reaches_the_water(broker_url, prefix, collector,
                                                                        service, tmp_path: Path):
    truth = tmp_path / "truth.jsonl"
    sub = collector([f"{prefix}/huanglong/hl2-s1/telemetry"])
    svc = service("sim", "--broker", broker_url, "--topic-prefix", prefix, "--scenario",
                  "normal-week", "--speed", "600", "--duration", "2h", "--truth", str(truth))
    assert sub.wait_for(lambda ms: len(ms) >= 5, 20), svc.log()[-2000:]
    base = max(json.loads(m.payload)["turbidity_ntu"] for m in sub.messages)
    p = subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", "--broker", broker_url,
                        "--topic-prefix", prefix, "--inject",
                        '{"kind": "discharge", "outlet": "ol-l2", "duration": "30m"}'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert sub.wait_for(lambda ms: any(json.loads(m.payload)["turbidity_ntu"] > base + 3 for m in ms), 20)
    records = read_truth(truth)
    assert [(r["kind"], r["outlet"]) for r in records] == [("discharge", "ol-l2")]
    bad = subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", "--broker", broker_url,
                          "--topic-prefix", prefix, "--inject", '{"kind": "discharge", "duration": "1h"}'],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--inject.outlet: missing" in bad.stderr

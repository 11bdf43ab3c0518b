"""The live model service: accepted readings in, one alert per event out, state survives restarts."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from rivermon.core.alerts import AlertStore
from rivermon.core.config import load_config
from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.models import inject
from rivermon.models.service import DetectService

T0 = 1795708800.0  # 2026-11-27T00:00:00+08:00


def _creek_batches(topology, hours: float, outlet: str | None, at_h: float, seed: int = 5):
    creek = topology.creeks[0]
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(0, hours * 3600, 60.0)
    series = inject.creek_series(creek, t, rng)
    if outlet:
        inject.discharge(creek, series, t, outlet, T0 + at_h * 3600, hold_s=3600)
    batches = []
    for i0 in range(0, t.size, 10):
        batch = []
        for node, cols in series.items():
            for i in range(i0, min(i0 + 10, t.size)):
                r = {"node": node, "segment": creek.node(node).segment, "kind": "sensor",
                     "ts": float(t[i])}
                r.update({k: float(v[i]) for k, v in cols.items()})
                batch.append(r)
        batches.append(batch)
    return batches


def _cfg(tmp_path, influx, broker_url, prefix, **extra):
    return load_config(env={}, overrides={
        "broker": broker_url, "influx": influx.url, "influx_db": influx.database,
        "topic_prefix": prefix, "var": str(tmp_path / "var"), "alert_autoresolve_s": 900,
        "detect_client_id": f"detect-{prefix.split('/')[0]}", **extra})


def test_discharge_raises_one_alert_naming_the_outlet(tmp_path, influx, broker_url, prefix, topology):
    svc = DetectService(_cfg(tmp_path, influx, broker_url, prefix), topology)
    try:
        for batch in _creek_batches(topology, 8, "ol-l3", 3.0):
            svc.apply(svc.handle(f"{prefix}/_accepted/huanglong", json.dumps(batch).encode()))
        svc.apply(svc.engine.tick(T0 + 8 * 3600))
        alerts = svc.store.list(kind="discharge")
        assert len(alerts) == 1, [a.to_event() for a in svc.store.list()]
        a = alerts[0]
        assert a.evidence["outlets"][0] == "ol-l3"
        assert a.segment == "hl-3" and a.node == "hl3-s1"
        assert a.start - (T0 + 3 * 3600) < 10 * 60  # within 10 simulated minutes of the onset
        assert a.state == "resolved" and a.resolved_by == "auto"
        assert "ol-l3" in a.summary["en"] and "ol-l3" in a.summary["zh"]
        assert a.audience == "water"
        rows = influx.rows('SELECT * FROM "alerts"')
        assert {r["id"] for r in rows} >= {a.id}
        assert not svc.store.list(kind="sensor_stuck") and not svc.store.list(kind="node_offline")
    finally:
        svc.shutdown()
    state = json.loads((tmp_path / "var" / "model-state.json").read_text())
    assert len(state["nodes"]) == 10


def test_last_will_and_silence_mark_a_node_offline(tmp_path, influx, broker_url, prefix, topology):
    svc = DetectService(_cfg(tmp_path, influx, broker_url, prefix), topology)
    try:
        for batch in _creek_batches(topology, 1, None, 0):
            svc.apply(svc.handle(f"{prefix}/_accepted/huanglong", json.dumps(batch).encode()))
        svc.apply(svc.handle(f"{prefix}/huanglong/hl2-s1/status", b'{"state": "offline"}'))
        (a,) = svc.store.list(kind="node_offline")
        assert a.node == "hl2-s1" and a.audience == "equipment" and a.evidence["source"] == "will"
        svc.apply(svc.engine.tick(T0 + 3 * 3600))  # everyone silent for two hours
        assert len(svc.store.list(kind="node_offline")) == 10
    finally:
        svc.shutdown()


@pytest.mark.e2e
def test_detect_service_end_to_end(tmp_path, influx, broker_url, prefix, topology, service, collector):
    var = tmp_path / "var"
    args = ["detect", "--broker", broker_url, "--influx", influx.url, "--influx-db", influx.database,
            "--topic-prefix", prefix, "--var", str(var), "--alert-autoresolve-s", "900",
            "--detect-client-id", f"detect-e2e-{prefix[:8]}", "--detect-state-interval-s", "1"]
    alerts = collector([f"{prefix}/+/alerts"])
    svc = service(*args, env={"RIVERMON_DETECT_TICK_S": "0.5"})
    _wait(lambda: (var / "alerts.sqlite").exists(), svc)
    time.sleep(1.0)  # let it subscribe
    pub = make_client(broker_url, f"pub-{prefix[:8]}")
    u = parse_broker_url(broker_url)
    pub.connect(u.host, u.port)
    pub.loop_start()
    try:
        for batch in _creek_batches(topology, 5, "ol-l3", 3.0):
            pub.publish(f"{prefix}/_accepted/huanglong", json.dumps(batch), qos=1).wait_for_publish(5)
        assert alerts.wait_for(lambda ms: any(json.loads(m.payload)["kind"] == "discharge" for m in ms), 20), svc.log()
        events = [json.loads(m.payload) for m in alerts.messages]
        (d,) = [e for e in events if e["kind"] == "discharge"]
        assert d["evidence"]["outlets"][0] == "ol-l3" and d["state"] == "open"
        assert d["start"].startswith("2026-11-27T03:")
        assert svc.stop() == 0
        assert (var / "model-state.json").exists()
        # a restart resumes: the same discharge is updated, not raised again
        svc2 = service(*args, env={"RIVERMON_DETECT_TICK_S": "0.5"})
        _wait(lambda: "resumed" in svc2.log() and "subscribed" in svc2.log(), svc2)
        more = _creek_batches(topology, 5.5, "ol-l3", 3.0)[30:]
        for batch in more:
            pub.publish(f"{prefix}/_accepted/huanglong", json.dumps(batch), qos=1).wait_for_publish(5)
        time.sleep(2.0)
        assert svc2.stop() == 0
    finally:
        pub.loop_stop()
        pub.disconnect()
    with AlertStore(var / "alerts.sqlite") as store:
        assert len(store.list(kind="discharge")) == 1
    assert '"resumed": true' in svc2.log()


def _wait(pred, svc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; service log:\n{svc.log()}")


def test_a_drained_inbox_gives_the_same_alerts(tmp_path, influx, broker_url, prefix, topology):
    svc = DetectService(_cfg(tmp_path, influx, broker_url, prefix), topology)
    try:
        msgs = [(f"{prefix}/_accepted/huanglong", json.dumps(b).encode())
                for b in _creek_batches(topology, 6, "ol-l3", 3.0)]
        msgs.insert(5, (f"{prefix}/huanglong/hl7-s1/status", b'{"state": "online"}'))
        msgs.insert(7, (f"{prefix}/_accepted/huanglong", b"not json"))
        for i in range(0, len(msgs), 7):
            svc.apply(svc.handle_many(msgs[i:i + 7]))
        (d,) = svc.store.list(kind="discharge")
        assert d.evidence["outlets"][0] == "ol-l3" and d.node == "hl3-s1"
        assert svc.stats["bad_messages"] == 1
        assert svc.stats["readings"] == 6 * 60 * 10
    finally:
        svc.shutdown()


@pytest.mark.e2e
def test_a_kill_9_of_the_model_loses_no_reading_it_had_not_checkpointed(
        service, broker_url, influx, prefix, tmp_path):
    """Messages are acknowledged only once a checkpoint holds them: after a kill -9 between two
    checkpoints the broker redelivers them and the restarted model sees every reading."""
    var = tmp_path / "var"
    args = ["detect", "--broker", broker_url, "--influx", influx.url, "--influx-db", influx.database,
            "--topic-prefix", prefix, "--var", str(var), "--detect-client-id", "detect-k9",
            "--detect-state-interval-s", "600"]
    first = service(*args)
    deadline = time.monotonic() + 30
    while "subscribed" not in first.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    pub = make_client(broker_url, "k9-pub")
    b = parse_broker_url(broker_url)
    pub.connect(b.host, b.port)
    pub.loop_start()
    last = T0 + 9 * 60
    for i in range(10):  # fewer messages than the acknowledgement window: no checkpoint yet
        reading = {"node": "hl1-s1", "segment": "hl-1", "kind": "sensor", "ts": T0 + 60 * i,
                   "do_mg_l": 6.0 + 0.01 * i, "turbidity_ntu": 10.0}
        pub.publish(f"{prefix}/_accepted/huanglong", json.dumps([reading]), qos=1).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    time.sleep(2)  # handled by the model, not yet checkpointed
    first.kill9()
    second = service(*args)
    deadline = time.monotonic() + 30
    while "subscribed" not in second.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # redelivered messages handled
    assert second.stop() == 0, second.log()
    state = json.loads((var / "model-state.json").read_text())
    node = next(n for n in state["nodes"] if n["node"] == "hl1-s1")
    assert node["state"]["last_t"] == last, second.log()[-2000:]

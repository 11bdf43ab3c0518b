"""The controller against the simulated creek on the real broker: `rivermon sim` (aerators that
fail), `rivermon ingest` and `rivermon control` as child processes. An aerator that trips
(confirms 'on' at standby power) and one whose relay ignores commands both raise aerator_fault."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from rivermon.core import aeration as store
from rivermon.core.alerts import AlertStore
from rivermon.core.servers import free_port

SCENARIO = """
name = "control-e2e"
duration = "6h"
season = "summer"

[[events]]
kind = "aerator_failure"
node = "hl3-a1"
mode = "stopped"
at = "0s"

[[events]]
kind = "aerator_failure"
node = "hl4-a1"
mode = "ignores_cmd"
at = "0s"
"""


def _wait(pred, timeout: float, step: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.e2e
def test_failed_aerators_of_the_simulator_raise_aerator_faults(service, broker_url, influx, prefix,
                                                               collector, tmp_path):
    var = tmp_path / "var"
    port = free_port()
    ingest = service("ingest", "--broker", broker_url, "--influx", influx.url, "--influx-db",
                     influx.database, "--topic-prefix", prefix, "--var", str(tmp_path / "ingest-var"),
                     "--ingest-metrics-port", str(port), "--ingest-batch-ms", "50",
                     "--ingest-client-id", f"ctl-test-{uuid.uuid4().hex[:8]}")
    assert _wait(lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 30), ingest.log()[-2000:]
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    seen = collector([f"{prefix}/_accepted/+", f"{prefix}/huanglong/alerts"])
    sim = service("sim", "--broker", broker_url, "--topic-prefix", prefix, "--scenario", str(scenario),
                  "--speed", "600", "--seed", "4", "--aerators", "off")
    # the simulator's aerators listen for commands once its readings flow
    assert _wait(lambda: len(seen.messages) > 0, 30), sim.log()[-2000:]
    # operators order both failing aerators on (the panel's call)
    until = time.time() + 600
    for node in ("hl3-a1", "hl4-a1"):
        store.set_override(node, "on", until, "operator1", var=var)
    ctl = service("control", "--broker", broker_url, "--influx", influx.url, "--influx-db",
                  influx.database, "--topic-prefix", prefix, "--var", str(var),
                  "--control-tick-s", "0.3", "--control-confirm-s", "3")

    def faults() -> dict[str, dict]:
        with seen.lock:
            events = [json.loads(m.payload) for m in seen.messages if m.topic.endswith("/alerts")]
        return {e["node"]: e for e in events if e["kind"] == "aerator_fault"}

    try:
        assert _wait(lambda: {"hl3-a1", "hl4-a1"} <= set(faults()), 20), ctl.log()[-3000:]
        f = faults()
        assert f["hl3-a1"]["evidence"]["mode"] == "on_without_power"
        assert f["hl3-a1"]["evidence"]["power_w"] < 10 and f["hl3-a1"]["segment"] == "hl-3"
        assert f["hl4-a1"]["evidence"]["mode"] == "unconfirmed"
        assert f["hl4-a1"]["evidence"]["reported_on"] is False
        with AlertStore(var / "alerts.sqlite") as alerts:
            active = {a.node for a in alerts.active("huanglong") if a.kind == "aerator_fault"}
        assert {"hl3-a1", "hl4-a1"} <= active
        manual = [c for c in store.recent_commands(var=var) if c["mode"] == "manual"]
        assert {c["node"] for c in manual} == {"hl3-a1", "hl4-a1"}
        assert all(c["aerator_on"] and "operator1" in c["reason"]["en"] for c in manual)
        # the healthy aerators were commanded too and obeyed: no fault for them yet
        others = {c["node"] for c in store.recent_commands(var=var)} - {"hl3-a1", "hl4-a1"}
        assert others and not (others & set(faults())), faults().keys()
    finally:
        assert ctl.stop() == 0, ctl.log()[-2000:]
        sim.stop()
        ingest.stop()

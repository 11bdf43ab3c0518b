"""`rivermon control` against the real broker: commands with reasons, the command log, faults
for unconfirmed commands and for 'on' without power (merged with the model's alert), overrides."""

from __future__ import annotations

import json
import time

import pytest

from rivermon.core import aeration as store
from rivermon.core.alerts import AlertStore
from rivermon.core.mqtt import make_client, parse_broker_url

TOPOLOGY = """
[[creeks]]
id = "tc"
name = { zh = "测试涌", en = "Test creek" }
  [[creeks.channels]]
  id = "main"
  name = { zh = "主涌", en = "Main" }
  length_m = 100
  [[creeks.segments]]
  id = "s-1"
  channel = "main"
  start_m = 0
  end_m = 100
  name = { zh = "一段", en = "Reach 1" }
  [[creeks.nodes]]
  id = "t-s1"
  kind = "sensor"
  channel = "main"
  chainage_m = 90
  [[creeks.nodes]]
  id = "t-a1"
  kind = "aerator"
  aerator = "micropore"
  rated_w = 2000
  channel = "main"
  chainage_m = 20
  [[creeks.nodes]]
  id = "t-a2"
  kind = "aerator"
  aerator = "fountain"
  rated_w = 3000
  channel = "main"
  chainage_m = 40
  [[creeks.nodes]]
  id = "t-a3"
  kind = "aerator"
  aerator = "micropore"
  rated_w = 1500
  channel = "main"
  chainage_m = 60
"""


def _wait(pred, timeout: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.mark.e2e
def test_control_commands_confirms_and_raises_aerator_faults(tmp_path, broker_url, influx, influx_url,
                                                             prefix, collector, service):
    topo = tmp_path / "tc.toml"
    topo.write_text(TOPOLOGY, encoding="utf-8")
    var = tmp_path / "var"
    # the model already has an aerator_fault open for t-a2 (DO does not respond): ours must merge
    with AlertStore(var / "alerts.sqlite") as alerts:
        model_alert, _ = alerts.open_or_update("tc", "s-1", "t-a2", "aerator_fault", "warning",
                                               time.time() - 3600, {"zh": "模型", "en": "model"},
                                               {"mode": "no_response"})
    seen = collector([f"{prefix}/tc/+/cmd", f"{prefix}/tc/alerts"])
    svc = service("control", "--broker", broker_url, "--influx", influx_url,
                  "--influx-db", influx.database, "--topology", str(topo), "--var", str(var),
                  "--topic-prefix", prefix, "--control-tick-s", "0.3", "--control-confirm-s", "2",
                  "--control-fountain-hours", "", "--control-min-on-s", "0",
                  "--control-min-off-s", "0")
    pub = make_client(broker_url, "test-ingest-double")
    b = parse_broker_url(broker_url)
    pub.connect(b.host, b.port)
    pub.loop_start()

    def accepted(*readings) -> None:
        pub.publish(f"{prefix}/_accepted/tc", json.dumps(list(readings)), qos=1).wait_for_publish(5)

    def cmds(node: str) -> list[dict]:
        with seen.lock:
            return [json.loads(m.payload) for m in seen.messages if m.topic == f"{prefix}/tc/{node}/cmd"]

    def alert_events() -> list[dict]:
        with seen.lock:
            return [json.loads(m.payload) for m in seen.messages if m.topic.endswith("/alerts")]

    try:
        # low DO in the segment: every aerator is told to run, with the reason
        assert _wait(lambda: (accepted({"node": "t-s1", "segment": "s-1", "kind": "sensor",
                                        "ts": time.time(), "do_mg_l": 2.5}) or
                              all(cmds(n) for n in ("t-a1", "t-a2", "t-a3"))), 20, 0.5), svc.log()
        sent_at = time.time()
        for n in ("t-a1", "t-a2", "t-a3"):
            c = cmds(n)[0]
            assert c["aerator_on"] is True and "2.5" in c["reason"] and "溶解氧" in c["reason"]
            assert c["control_mode"] == "auto" and isinstance(c["ts"], float)
        # t-a1 confirms properly, t-a3 confirms without power, t-a2 stays silent
        now = time.time()
        accepted({"node": "t-a1", "segment": "s-1", "kind": "aerator", "ts": now, "aerator_on": True,
                  "power_w": 1920.0},
                 {"node": "t-a3", "segment": "s-1", "kind": "aerator", "ts": now, "aerator_on": True,
                  "power_w": 2.5})
        assert _wait(lambda: any(e["node"] == "t-a3" for e in alert_events()), 10), svc.log()
        [ev] = [e for e in alert_events() if e["node"] == "t-a3"]
        assert ev["kind"] == "aerator_fault" and ev["segment"] == "s-1" and ev["state"] == "open"
        assert ev["evidence"]["mode"] == "on_without_power" and "2.5 W" in ev["summary"]["en"]
        assert time.time() - sent_at < 10

        def active_faults(node):
            with AlertStore(var / "alerts.sqlite") as a:
                return [x for x in a.active("tc") if x.kind == "aerator_fault" and x.node == node]

        assert _wait(lambda: "control" in active_faults("t-a2")[0].evidence, 10), svc.log()
        [merged] = active_faults("t-a2")            # one alert for one event, the model's
        assert merged.id == model_alert.id and merged.evidence["mode"] == "no_response"
        assert merged.evidence["control"]["mode"] == "unconfirmed"
        assert "t-a2" in merged.summary["en"] and "未确认" in merged.summary["zh"]
        assert active_faults("t-a1") == []
        rows = influx.rows(f"SELECT * FROM alerts WHERE node = 't-a3'")
        assert rows and rows[0]["kind"] == "aerator_fault"

        # the command log, as the panel reads it
        log = store.recent_commands("s-1", var=var)
        assert {c["node"] for c in log} == {"t-a1", "t-a2", "t-a3"}
        # DO 2.5 switches on by day (low_do) and by night (night): the test runs at any hour
        assert all(c["mode"] == "auto" and c["rule"] in ("low_do", "night") and c["aerator_on"]
                   for c in log), log

        # the running controller beats, so the panel leaves orders to it
        assert store.controller_alive(var=var, max_age_s=30)
        assert not store.controller_alive(var=var, max_age_s=30, now=time.time() + 60)
        # a manual order beats low DO, is published with its reason and logged as manual
        store.set_override("t-a1", "off", time.time() + 600, "operator1", var=var)
        assert _wait(lambda: any(c["aerator_on"] is False for c in cmds("t-a1")), 10), svc.log()
        off = [c for c in cmds("t-a1") if c["aerator_on"] is False][0]
        assert off["control_mode"] == "manual" and "operator1" in off["reason"]
        assert store.recent_commands(node="t-a1", var=var)[0]["mode"] == "manual"
        assert store.aerator_states(var=var)["t-a1"]["mode"] == "manual"
    finally:
        pub.loop_stop()
        pub.disconnect()
        assert svc.stop() == 0, svc.log()
    assert '"msg": "aerator command"' in svc.log()

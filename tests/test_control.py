"""Aeration control: the controller's decisions on scripted DO series, overrides, the DO board,
command confirmation, and a short closed-loop evaluation in the simulator."""

from __future__ import annotations

import argparse
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from rivermon.control import evaluate
from rivermon.core import aeration as store
from rivermon.control.board import DoBoard
from rivermon.control.daylight import NightClock, parse_windows
from rivermon.control.feedback import NO_POWER, UNCONFIRMED, Confirmations
from rivermon.control.policy import (NIGHT_DEADBAND_MG_L, Aerator, ControlParams, Override,
                                     SegmentController)
from rivermon.core.config import load_config

TZ = "Asia/Shanghai"
FIXED_NIGHT = NightClock(TZ, (20.0, 6.0))


def local(hh: int, mm: int = 0, day: int = 1, month: int = 7) -> float:
    return datetime(2026, month, day, hh, mm, tzinfo=ZoneInfo(TZ)).timestamp()


def controller(min_on: float = 0.0, min_off: float = 0.0, fountain_hours=(),
               aerators=(Aerator("a1", "micropore", 2000.0),), night=FIXED_NIGHT) -> SegmentController:
    p = ControlParams(on_below_mg_l=4.0, off_above_mg_l=5.5, night_comfort_mg_l=6.0,
                      min_on_s=min_on, min_off_s=min_off, fountain_hours=tuple(fountain_hours),
                      night=night)
    return SegmentController("hl-3", list(aerators), p)


def run_series(ctl: SegmentController, series: list[tuple[float, float | None]], node: str = "a1"):
    out = []
    for t, do in series:
        d = next(x for x in ctl.decide(t, do, "probe offline") if x.node == node)
        assert d.reason["zh"] and d.reason["en"], "every decision has a reason in zh and en"
        out.append(d)
    return out


# ---- the controller ------------------------------------------------------------------------

def test_day_hysteresis_switches_on_below_and_off_above_the_set_points():
    ctl = controller()
    t0 = local(10)
    dos = [6.0, 5.0, 4.2, 3.9, 4.5, 5.4, 5.5, 4.5, 3.95]
    ds = run_series(ctl, [(t0 + 600 * i, v) for i, v in enumerate(dos)])
    assert [d.on for d in ds] == [False, False, False, True, True, True, False, False, True]
    assert [d.changed for d in ds] == [True, False, False, True, False, False, True, False, True]
    assert ds[3].rule == "low_do" and "3.9" in ds[3].reason["en"] and "3.9" in ds[3].reason["zh"]
    assert ds[4].rule == "hysteresis" and ds[6].rule == "do_recovered"
    assert all(d.mode == "auto" for d in ds)


def test_minimum_on_and_off_times_hold_early_switches():
    ctl = controller(min_on=1800, min_off=900)
    t0 = local(11)
    ds = run_series(ctl, [(t0, 3.0),            # on
                          (t0 + 600, 6.5),      # would be off: held, min on 30 min
                          (t0 + 1800, 6.5),     # now off
                          (t0 + 2100, 3.0),     # would be on: held, min off 15 min
                          (t0 + 2700, 3.0)])    # now on
    assert [d.on for d in ds] == [True, True, False, False, True]
    assert [d.rule for d in ds] == ["low_do", "hold_min_on", "do_recovered", "hold_min_off", "low_do"]
    assert [d.changed for d in ds] == [True, False, True, False, True]
    assert "minimum on time 30 min" in ds[1].reason["en"] and "最短运行" in ds[1].reason["zh"]


def test_night_rule_runs_from_dusk_to_dawn_unless_do_is_comfortably_high():
    ctl = controller()
    ds = run_series(ctl, [(local(19, 30), 5.0),   # day, between set points: stays off
                          (local(20, 30), 5.0),   # night: on although above the day on point
                          (local(22), 6.1),       # above comfort but inside the deadband: on
                          (local(22, 30), 6.0 + NIGHT_DEADBAND_MG_L - 0.05),  # still inside: on
                          (local(23), 6.0 + NIGHT_DEADBAND_MG_L),  # comfortably high: off
                          (local(23, 30), 6.1),   # off: above comfort
                          (local(1, day=2), 5.8),  # below comfort: on again
                          (local(7, day=2), 5.0)])  # morning: hysteresis keeps it on
    assert [d.on for d in ds] == [False, True, True, True, False, False, True, True]
    assert [d.rule for d in ds] == ["hysteresis", "night", "night", "night", "night_comfortable",
                                    "night_comfortable", "night", "hysteresis"]
    assert "20:00" in ds[1].reason["en"] and "夜间" in ds[1].reason["zh"]


def test_fast_fall_switches_on_early_by_day():
    ctl = controller()
    t0 = local(14)
    assert not ctl.decide(t0, 5.0, "", None, -0.4)[0].on          # a slow afternoon decline
    d = ctl.decide(t0 + 300, 4.8, "", None, -1.5)[0]               # a plume arrives
    assert d.on and d.rule == "do_falling" and "1.5" in d.reason["en"] and "下降" in d.reason["zh"]
    assert not controller().decide(t0, 5.6, "", None, -3.0)[0].on  # above the off point: no


def test_a_low_reach_downstream_switches_this_reach_on_by_day():
    t0 = local(11)
    d = controller().decide(t0, 5.0, "", None, None, ("hl-4", 3.6))[0]
    assert d.on and d.rule == "downstream_low" and "hl-4" in d.reason["en"] and "下游" in d.reason["zh"]
    # a healthy reach below, or a comfortably high reach here, changes nothing
    assert not controller().decide(t0, 5.0, "", None, None, ("hl-4", 5.0))[0].on
    assert not controller().decide(t0, 6.5, "", None, None, ("hl-4", 3.6))[0].on


def test_solar_night_for_foshan():
    clock = NightClock(TZ)
    dusk, dawn = clock.dusk_dawn(local(12))          # 1 July
    assert 19.0 < dusk < 19.5 and 5.5 < dawn < 6.0   # about 19:13 and 05:45
    dusk_w, dawn_w = clock.dusk_dawn(local(12, day=21, month=12))
    assert 17.5 < dusk_w < 18.0 and 6.9 < dawn_w < 7.3
    assert clock.is_night(local(23)) and clock.is_night(local(5)) and not clock.is_night(local(12))


def test_fountains_run_in_their_hours_and_otherwise_follow_do():
    aer = (Aerator("mp", "micropore", 2200.0), Aerator("ft", "fountain", 3000.0))
    ctl = controller(aerators=aer, fountain_hours=parse_windows("08:00-10:00", "x"))
    at9 = {d.node: d for d in ctl.decide(local(9), 7.0)}
    assert at9["ft"].on and at9["ft"].rule == "fountain_hours" and "08:00" in at9["ft"].reason["en"]
    assert not at9["mp"].on
    at11 = {d.node: d for d in ctl.decide(local(11), 7.0)}
    assert not at11["ft"].on and at11["ft"].changed
    low = {d.node: d for d in ctl.decide(local(12), 3.5)}
    assert low["ft"].on and low["mp"].on and low["ft"].rule == "low_do"


def test_unknown_do_falls_back_to_the_schedule():
    aer = (Aerator("mp", "micropore", 2200.0), Aerator("ft", "fountain", 3000.0))
    ctl = controller(aerators=aer, fountain_hours=parse_windows("08:00-10:00", "x"))
    night = {d.node: d for d in ctl.decide(local(23), None, "hl3-s1 offline")}
    assert night["mp"].on and night["ft"].on
    assert night["mp"].mode == "fallback" and night["mp"].rule == "fallback_night"
    assert "hl3-s1 offline" in night["mp"].reason["en"] and "溶解氧未知" in night["mp"].reason["zh"]
    day = {d.node: d for d in ctl.decide(local(12, day=2), None, "hl3-s1 stale 20 min")}
    assert not day["mp"].on and day["mp"].rule == "fallback_day"
    morning = {d.node: d for d in ctl.decide(local(9, day=3), None, "no reading")}
    assert morning["ft"].on and morning["ft"].rule == "fountain_hours" and not morning["mp"].on
    # DO comes back: normal control resumes
    back = {d.node: d for d in ctl.decide(local(12, 30, day=3), 3.0)}
    assert back["mp"].on and back["mp"].mode == "auto"


def test_override_takes_precedence_and_expires():
    ctl = controller(min_on=1800, min_off=900)
    t0 = local(12)
    ov = {"a1": Override("a1", "on", t0 + 1200, "operator1")}
    d = ctl.decide(t0, 7.0, "", ov)[0]
    assert d.on and d.changed and d.mode == "manual" and d.rule == "override"
    assert "operator1" in d.reason["en"] and "人工开启" in d.reason["zh"]
    d = ctl.decide(t0 + 600, 7.0, "", ov)[0]
    assert d.on and not d.changed and d.mode == "manual"
    # expired: back to auto; DO is high, but the minimum on time counts from the manual switch
    d = ctl.decide(t0 + 1200, 7.0, "", ov)[0]
    assert d.on and d.mode == "auto" and d.rule == "hold_min_on"
    d = ctl.decide(t0 + 1800, 7.0, "", ov)[0]
    assert not d.on and d.changed and d.rule == "do_recovered"
    # an order to stop beats low DO and the minimum off time does not bind it
    d = ctl.decide(t0 + 1900, 2.0, "", {"a1": Override("a1", "off", t0 + 9999, "op")})[0]
    assert not d.on and not d.changed and d.mode == "manual"
    d = ctl.decide(t0 + 2000, 2.0, "", {"a1": Override("a1", "on", t0 + 9999, "op")})[0]
    assert d.on and d.changed


def test_settings_build_the_parameters_and_bad_ones_are_named():
    cfg = load_config(env={})
    p = ControlParams.from_config(cfg, TZ)
    assert p.on_below_mg_l < p.off_above_mg_l and p.fountain_hours == ((8.0, 10.0), (19.0, 21.0))
    with pytest.raises(ValueError, match="control_off_above_mg_l"):
        ControlParams.from_config(cfg.replace(control_off_above_mg_l=3.0), TZ)
    with pytest.raises(ValueError, match="control_night"):
        ControlParams.from_config(cfg.replace(control_night="dusk"), TZ)
    with pytest.raises(ValueError, match="control_fountain_hours.*25:00"):
        ControlParams.from_config(cfg.replace(control_fountain_hours="08:00-25:00"), TZ)
    assert ControlParams.from_config(cfg.replace(control_night="18:30-06:30"), TZ).night.fixed == (18.5, 6.5)


# ---- the override store (the panel's API) ----------------------------------------------------

def test_override_store_precedence_expiry_and_refusals(tmp_path):
    var = tmp_path / "var"
    now = 1_780_000_000.0
    got = store.set_override("hl3-a1", "on", now + 3600, "operator1", var=var, now=now)
    assert got["mode"] == "on" and got["by"] == "operator1"
    assert [o["node"] for o in store.overrides(var=var, now=now + 10)] == ["hl3-a1"]
    assert store.overrides(var=var, now=now + 3600) == []        # expired
    store.set_override("hl3-a1", "off", now + 600, "operator2", var=var, now=now + 20)
    [o] = store.overrides(var=var, now=now + 30)
    assert (o["mode"], o["by"]) == ("off", "operator2")          # the newest order wins
    store.set_override("hl3-a1", "auto", None, "operator2", var=var, now=now + 40)
    assert store.overrides(var=var, now=now + 50) == []
    with store.ControlStore(store.store_path(var)) as s:
        assert [x["mode"] for x in s.override_log("hl3-a1")] == ["auto", "off", "on"]
    for args, match in [(("HL3", "on", now + 60, "x"), "node"),
                        (("hl3-a1\n", "on", now + 60, "x"), "node"),
                        (("hl3-a1", "fast", now + 60, "x"), "mode 'fast'"),
                        (("hl3-a1", "on", None, "x"), "needs `until`"),
                        (("hl3-a1", "on", now - 1, "x"), "not in the future"),
                        (("hl3-a1", "on", now + 30 * 86400, "x"), "at most 7 days"),
                        (("hl3-a1", "on", now + 60, " "), "non-empty")]:
        with pytest.raises(store.ControlError, match=match):
            store.set_override(*args, var=var, now=now)


def test_command_log_is_readable_per_segment_and_per_aerator(tmp_path):
    var = tmp_path / "var"
    with store.ControlStore(store.store_path(var)) as s:
        for i, (seg, node, on) in enumerate([("hl-3", "hl3-a1", True), ("hl-3", "hl3-a2", True),
                                             ("hl-4", "hl4-a1", False), ("hl-3", "hl3-a1", False)]):
            s.log_command(creek="huanglong", segment=seg, node=node, aerator_on=on, mode="auto",
                          rule="low_do", reason={"zh": "溶解氧低", "en": "DO low"}, do_mg_l=3.2, ts=100.0 + i)
    cmds = store.recent_commands("hl-3", var=var)
    assert [(c["node"], c["aerator_on"]) for c in cmds] == [("hl3-a1", False), ("hl3-a2", True),
                                                           ("hl3-a1", True)]
    assert cmds[0]["reason"] == {"zh": "溶解氧低", "en": "DO low"} and cmds[0]["mode"] == "auto"
    store.set_override("hl4-a1", "on", 10_000.0, "op", var=var, now=200.0)
    states = store.aerator_states(var=var, now=300.0)
    assert states["hl3-a1"]["last_command"]["aerator_on"] is False and states["hl3-a1"]["mode"] == "auto"
    assert states["hl4-a1"]["mode"] == "manual" and states["hl4-a1"]["override"]["by"] == "op"


# ---- the DO board and confirmations ------------------------------------------------------------

def test_board_takes_median_of_three_lowest_usable_sensor_and_says_why_unknown(topology):
    creek = topology.creek("huanglong")
    b = DoBoard(creek, stale_s=900)
    for i, (v1, v2) in enumerate([(5.0, 6.0), (14.0, 6.1), (5.2, 6.2)]):   # a spike on hl3-s1
        b.reading("hl3-s1", 1000.0 + 60 * i, v1)
        b.reading("hl3-s2", 1000.0 + 60 * i, v2)
    assert b.segment_do("hl-3", 1200.0) == (5.2, "")
    b.set_faulty("hl3-s1", True)
    assert b.segment_do("hl-3", 1200.0) == (6.1, "")
    b.set_online("hl3-s2", False)
    do, why = b.segment_do("hl-3", 1200.0)
    assert do is None and "hl3-s1 sensor fault" in why and "hl3-s2 offline" in why
    b.set_faulty("hl3-s1", False)
    do, why = b.segment_do("hl-3", 1120.0 + 901)
    assert do is None and "stale" in why
    assert b.segment_do("hl-4", 1200.0) == (None, "hl4-s1 no reading yet")
    for i in range(7):                                    # 0.5 mg/L per 5 min = -6 mg/L per hour
        b.reading("hl4-s1", 5000.0 + 300 * i, 7.0 - 0.5 * i)
    assert b.segment_trend("hl-4", 6800.0) == pytest.approx(-6.0)
    assert b.segment_trend("hl-3", 6800.0) is None          # stale sensors have no trend


def test_confirmations_flag_silence_and_no_power():
    c = Confirmations(confirm_s=60, min_power_frac=0.1)
    c.sent("a1", True, 0.0, rated_w=2200)
    c.sent("a2", True, 0.0, rated_w=2200)
    c.sent("a3", False, 0.0, rated_w=2200)
    assert c.telemetry("a1", True, 2100.0, 5.0) == ("confirmed", None)
    status, fault = c.telemetry("a2", True, 2.5, 5.0)
    assert fault is not None and fault.mode == NO_POWER and "2.5 W" in fault.summary()["en"]
    assert c.telemetry("a3", True, 2100.0, 10.0) is None     # still the old state: not yet settled
    assert c.due(59.0) == []
    [late] = c.due(60.0)
    assert late.node == "a3" and late.mode == UNCONFIRMED and late.evidence["reported_on"] is True
    assert "60" in late.summary()["en"] and "未确认关闭" in late.summary()["zh"]
    assert c.due(200.0) == []                                 # reported once


# ---- the evaluation ---------------------------------------------------------------------------

def test_evaluation_runs_three_policies_in_closed_loop(tmp_path, capsys):
    p = argparse.ArgumentParser()
    evaluate.add_arguments(p)
    args = p.parse_args(["--days", "2", "--scenario", "normal-week", "--interval", "600",
                         "--json", str(tmp_path / "e.json")])
    code = evaluate.run(args, load_config(env={}))
    out = capsys.readouterr().out
    assert "always" in out and "timer" in out and "controller" in out and "hl-3" in out
    assert ("PASS" in out) == (code == 0)
    assert code == 0, out   # the target holds on a normal two days too
    import json
    res = json.loads((tmp_path / "e.json").read_text())["results"]
    assert res["always"]["switchings"] == 0 and res["controller"]["switchings"] > 0
    assert res["controller"]["energy_kwh"] < 0.7 * res["always"]["energy_kwh"]
    assert abs(res["always"]["energy_kwh"] - 48 * 19200 * 0.96 / 1000) < 50   # all rated power, 48 h
    assert set(res["controller"]["segments"]) == {"hl-1", "hl-2", "hl-3", "hl-4", "hl-5", "hl-6",
                                                  "hl-7", "hlb-1", "hlb-2"}


# ---- the service, in process (no broker: dry run) ----------------------------------------------

def test_service_dry_run_logs_decisions_and_uses_sensor_faults_and_status(tmp_path):
    import json
    import time

    from rivermon.control.service import ControlService

    cfg = load_config(env={}, overrides={"var": str(tmp_path), "control_dry_run": True,
                                         "topic_prefix": "p/v1", "control_tick_s": 0.0})
    svc = ControlService(cfg)
    try:
        svc.handle("p/v1/_accepted/huanglong", b"not json")
        assert svc.stats["bad_messages"] == 1
        now = time.time()
        rows = [{"node": n, "segment": "hl-3", "kind": "sensor", "ts": now - 60 * i, "do_mg_l": v}
                for i in range(3) for n, v in (("hl3-s1", 3.0), ("hl3-s2", 7.0))]
        svc.handle("p/v1/_accepted/huanglong", json.dumps(rows).encode())
        sent = {d.node: d for d in svc.tick()}
        assert sent["hl3-a1"].on and sent["hl3-a1"].do_mg_l == 3.0 and sent["hl3-a1"].mode == "auto"
        assert sent["hl1-a1"].mode == "fallback"              # no reading from hl-1
        log = store.recent_commands("hl-3", var=tmp_path)
        assert {c["node"] for c in log} == {"hl3-a1", "hl3-a2"}
        assert all(c["mode"] == "dry-run" for c in log)
        # a dry run publishes nothing, so it does not tell the panel that orders are handled
        assert not store.controller_alive(var=tmp_path)
        board = svc.creeks["huanglong"].board
        svc.handle("p/v1/huanglong/alerts", json.dumps({"kind": "sensor_stuck", "creek": "huanglong",
                                                        "node": "hl3-s1", "state": "open"}).encode())
        assert board.segment_do("hl-3", svc.creek_now()) == (7.0, "")
        svc.handle("p/v1/huanglong/hl3-s2/status", b'{"state": "offline", "fw": "x"}')
        do, why = board.segment_do("hl-3", svc.creek_now())
        assert do is None and "hl3-s1 sensor fault" in why and "hl3-s2 offline" in why
        svc.handle("p/v1/huanglong/hl3-s2/status", b'{"state": "sleeping"}')   # refused, no change
        assert board.segment_do("hl-3", svc.creek_now())[0] is None
    finally:
        svc.shutdown()


def test_service_without_broker_link_decides_nothing_and_offline_aerators_raise_no_fault(tmp_path):
    from rivermon.control.feedback import Fault
    from rivermon.control.service import ControlService
    from rivermon.core.alerts import AlertStore

    cfg = load_config(env={}, overrides={"var": str(tmp_path), "topic_prefix": "p/v1",
                                         "control_tick_s": 0.0})
    svc = ControlService(cfg)
    try:
        assert svc.tick() == [] and svc.link_down          # commands could not go out: none decided
        assert store.recent_commands(var=tmp_path) == []
        assert not store.controller_alive(var=tmp_path)    # the panel sends orders itself meanwhile
        svc.handle("p/v1/huanglong/hl3-a1/status", b'{"state": "offline"}')
        cc = svc.creeks["huanglong"]
        svc._fault(cc, Fault("hl3-a1", UNCONFIRMED, True, 1.0, {"mode": UNCONFIRMED}))
        with AlertStore(tmp_path / "alerts.sqlite") as alerts:
            assert alerts.active() == []                   # node_offline (the model's) covers it
    finally:
        svc.shutdown()

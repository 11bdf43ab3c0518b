"""Every detector on targeted synthetic series: it fires, and it stays quiet on a normal day."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rivermon.models import inject
from rivermon.models.engine import Engine
from rivermon.models.node import NodeModel as _NodeModel
from rivermon.models.replay import Series, run

T0 = 1795708800.0  # 2026-11-27T00:00:00+08:00


class NodeModel(_NodeModel):
    """The node model without its hourly ``level`` reports (inputs to the neighbour checks)."""

    def process(self, t, cols):
        return [s for s in super().process(t, cols) if s.kind != "level"]

    def score_many(self, t, cols):
        return [s for s in super().score_many(t, cols) if s.kind != "level"]
DAY = 86400.0


def normal(days: float = 3, step: float = 60.0, seed: int = 1, jitter: float = 0.0):
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(0, days * DAY, step)
    if jitter:
        t = np.sort(t + rng.uniform(-jitter, jitter, t.size))
    return t, inject.diurnal_day(t, rng)


def kinds(spans) -> set[str]:
    return {s.kind for s in spans}


@pytest.mark.parametrize("step,jitter", [(10.0, 0.0), (60.0, 20.0), (900.0, 120.0)])
def test_quiet_on_normal_diurnal_days(step, jitter):
    t, cols = normal(4 if step < 60 else 7, step, jitter=jitter)
    spans = NodeModel("n1").process(t, cols)
    assert spans == [], [(s.kind, s.field, s.evidence) for s in spans]


def test_standards_need_duration_and_word_risk_without_confirmation():
    t, cols = normal(2)
    do = cols["do_mg_l"].copy()
    one = do.copy()
    one[int(1.5 * 1440)] = 1.0  # one low sample is never enough
    assert "black_odorous" not in kinds(NodeModel("n").process(t, {"do_mg_l": one}))
    low = (t >= T0 + 1.5 * DAY) & (t < T0 + 1.5 * DAY + 3600)
    do[low] = 1.2 + 0.05 * np.sin(np.arange(low.sum()))
    m = NodeModel("n")
    spans = m.process(t, {"do_mg_l": do})
    bo = [s for s in spans if s.kind == "black_odorous"]
    assert len(bo) == 1 and bo[0].severity == "warning" and bo[0].evidence["confirmed_by"] == []
    assert bo[0].first - bo[0].onset >= 1800  # the duration condition
    assert abs(bo[0].onset - (T0 + 1.5 * DAY)) <= 120
    # ORP in the black-odorous band confirms it
    orp = np.full(t.size, 120.0)
    orp[low] = -250.0
    spans = NodeModel("n").process(t, {"do_mg_l": do, "orp_mv": orp})
    (bo,) = [s for s in spans if s.kind == "black_odorous"]
    assert bo.severity == "critical" and bo.evidence["confirmed_by"] == ["orp_mv"]


def test_low_do_below_class_iv():
    t, cols = normal(2)
    do = cols["do_mg_l"].copy()
    sel = (t >= T0 + 1.2 * DAY) & (t < T0 + 1.2 * DAY + 5400)
    do[sel] = 2.6
    do[sel] += np.random.default_rng(3).normal(0, 0.05, sel.sum())
    assert "low_do" in kinds(NodeModel("n").process(t, {"do_mg_l": do}))


def test_turbidity_jump_and_do_sag_are_water_signals():
    t, cols = normal(3)
    do, turb = inject.plume(t, cols["do_mg_l"], cols["turbidity_ntu"], T0 + 2.3 * DAY, 900, 3600, 3600, 3.0, 5.0)
    spans = NodeModel("n").process(t, {**cols, "do_mg_l": do, "turbidity_ntu": turb})
    found = {s.kind: s for s in spans}
    assert {"turb_rise", "do_drop"} <= set(found)
    assert found["turb_rise"].first - (T0 + 2.3 * DAY) < 600
    assert not kinds(spans) & {"sensor_spike", "sensor_stuck", "sensor_out_of_range"}


def test_generic_field_departure_after_warm_up_only():
    t, _ = normal(3)
    rng = np.random.default_rng(4)
    cond = 320 + 5 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.5, t.size)
    early = cond.copy()
    early[(t > T0 + 3600) & (t < T0 + 3 * 3600)] += 40  # during warm-up: no baseline yet
    assert [s for s in NodeModel("n").process(t, {"cond_us_cm": early}) if s.first < T0 + 4 * 3600] == []
    late = cond.copy()
    late[(t > T0 + 2 * DAY) & (t < T0 + 2 * DAY + 7200)] += 40
    (s,) = NodeModel("n").process(t, {"cond_us_cm": late})
    assert s.kind == "baseline_departure" and s.evidence["direction"] == "up"


def test_spike_is_a_sensor_fault_not_water():
    t, cols = normal(2)
    do, at = inject.spike(t, cols["do_mg_l"], T0 + 1.4 * DAY, 6.0)
    spans = NodeModel("n").process(t, {**cols, "do_mg_l": do})
    assert kinds(spans) == {"sensor_spike"}
    assert spans[0].onset == at and spans[0].evidence["value"] == pytest.approx(do[np.searchsorted(t, at)])


def test_stuck_probe():
    t, cols = normal(2)
    turb = inject.stuck(t, cols["turbidity_ntu"], T0 + 1.2 * DAY, T0 + 1.5 * DAY)
    spans = NodeModel("n").process(t, {**cols, "turbidity_ntu": turb})
    assert kinds(spans) == {"sensor_stuck"}
    assert spans[0].field == "turbidity_ntu"
    assert spans[0].first - (T0 + 1.2 * DAY) <= 3600


def test_out_of_range_gap_and_offline():
    t, cols = normal(1)
    do = cols["do_mg_l"].copy()
    do[500] = 40.0
    keep = inject.drop_readings(t, T0 + 0.5 * DAY, T0 + 0.5 * DAY + 1500) & \
        inject.drop_readings(t, T0 + 0.7 * DAY, T0 + 0.7 * DAY + 7200)
    m = NodeModel("n")
    spans = m.process(t[keep], {k: (do if k == "do_mg_l" else v)[keep] for k, v in cols.items()})
    assert kinds(spans) == {"sensor_out_of_range", "sensor_gap", "node_offline"}
    (off,) = [s for s in spans if s.kind == "node_offline"]
    assert off.last - off.onset == pytest.approx(7260)
    before = json.dumps(m.state)
    assert m.silence(t[-1] + 60) is None
    assert m.silence(t[-1] + 4 * 3600).kind == "node_offline"
    assert json.dumps(m.state) == before


def test_low_battery():
    t, cols = normal(1)
    batt = np.linspace(3.9, 3.3, t.size)
    (s,) = NodeModel("n").process(t, {"battery_v": batt})
    assert s.kind == "low_battery" and s.evidence["threshold"] == 3.5


def test_aerator_on_without_power():
    t = T0 + np.arange(0, 6 * 3600, 60.0)
    on = np.ones(t.size)
    pw = np.full(t.size, 2100.0)
    pw[180:240] = 3.0
    m = NodeModel("hl3-a1", kind="aerator", rated_w=2200)
    (s,) = m.process(t, {"aerator_on": on, "power_w": pw})
    assert s.kind == "aerator_fault" and s.evidence["mode"] == "on_without_power"
    off = on.copy()
    off[180:240] = 0.0  # switched off: no power is expected
    assert NodeModel("hl3-a1", kind="aerator", rated_w=2200).process(t, {"aerator_on": off, "power_w": pw}) == []


# ---- the generic contract of every detector ----------------------------------------------------

def _faulty_day():
    t, cols = normal(3)
    cols = dict(cols)
    cols["do_mg_l"], _ = inject.spike(t, cols["do_mg_l"], T0 + 2.1 * DAY, 5.0)
    cols["turbidity_ntu"] = inject.stuck(t, cols["turbidity_ntu"], T0 + 2.3 * DAY, T0 + 2.6 * DAY)
    cols["cond_us_cm"] = 300 + np.random.default_rng(2).normal(0, 1, t.size)
    return t, cols


def test_scoring_never_mutates_and_state_round_trips():
    t, cols = _faulty_day()
    half = t.size // 2
    m = NodeModel("n")
    m.learn_many(t[:half], {k: v[:half] for k, v in cols.items()})
    frozen = json.dumps(m.state, sort_keys=True)
    rest = (t[half:], {k: v[half:] for k, v in cols.items()})
    scored = m.score_many(*rest)
    assert json.dumps(m.state, sort_keys=True) == frozen
    m.score_one(float(t[half]), {k: float(v[half]) for k, v in cols.items()})
    assert json.dumps(m.state, sort_keys=True) == frozen
    clone = NodeModel("n", state=json.loads(frozen))
    assert [vars(s) for s in clone.process(*rest)] == [vars(s) for s in scored]
    assert [vars(s) for s in m.process(*rest)] == [vars(s) for s in scored]
    assert m.learn_one(float(t[-1]) + 60, {"do_mg_l": 6.0}) is None


def _merged(spans):
    out: dict[tuple, list] = {}
    for s in sorted(spans, key=lambda s: s.first):
        key = (s.kind, s.field)
        if key in out and s.first - out[key][-1][1] <= 600:
            out[key][-1][1] = s.last
        else:
            out.setdefault(key, []).append([s.onset, s.last])
    return out


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_chunking_does_not_change_the_answer(chunk):
    t, cols = _faulty_day()
    t, cols = t[2000:3600], {k: v[2000:3600] for k, v in cols.items()}  # keep chunk=1 fast
    whole = NodeModel("n").process(t, cols)
    m = NodeModel("n")
    parts = []
    for i in range(0, t.size, chunk):
        parts += m.process(t[i:i + chunk], {k: v[i:i + chunk] for k, v in cols.items()})
    assert _merged(parts) == _merged(whole)


def test_warm_up_is_quiet_and_late_readings_are_skipped():
    t, cols = normal(0.2)
    m = NodeModel("n")
    assert m.process(t, {"ph": 7 + 0.01 * np.sin(t), "cond_us_cm": np.full(t.size, 300.0)}) == []
    assert m.process(t[:5], {"do_mg_l": np.full(5, 6.0)}) == []
    assert m.state["late"] == 5


# ---- spatial: discharges, flow direction, rain ------------------------------------------------------

def _creek(topology, days=2.0, seed=11):
    creek = topology.creeks[0]
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(0, days * DAY, 60.0)
    return creek, t, inject.creek_series(creek, t, rng)


@pytest.mark.parametrize("outlet", ["ol-l1", "ol-l2", "ol-l3", "ol-l4"])
def test_discharge_names_its_outlet(topology, outlet):
    creek, t, series = _creek(topology)
    truth = inject.discharge(creek, series, t, outlet, T0 + 1.4 * DAY)
    eps = run([Series(creek.id, n, t, c) for n, c in series.items()], topology)
    dis = [e for e in eps if e.kind == "discharge"]
    assert len(dis) == 1, [(e.kind, e.node, e.evidence.get("outlets")) for e in eps]
    assert dis[0].evidence["outlets"][0] == outlet
    first = creek.node(dis[0].node)
    o = next(x for x in creek.outlets if x.id == outlet)
    travel = (first.chainage_m - o.chainage_m) / 0.05
    assert dis[0].detected - (truth.start + travel) <= 600
    assert not [e for e in eps if e.kind in ("rain", "sensor_stuck", "sensor_spike")]


def test_reversed_flow_is_read_from_arrival_order(topology):
    creek, t, series = _creek(topology)
    inject.discharge(creek, series, t, "ol-l4", T0 + 1.4 * DAY, reverse=True)
    eps = run([Series(creek.id, n, t, c) for n, c in series.items()], topology)
    (d,) = [e for e in eps if e.kind == "discharge"]
    assert d.evidence["flow"] == "reversed"
    assert d.evidence["outlets"][0] == "ol-l4"


def test_rain_is_creek_wide_not_a_discharge(topology):
    creek, t, series = _creek(topology)
    start = T0 + 1.5 * DAY
    for n, s in series.items():
        s["do_mg_l"], s["turbidity_ntu"] = inject.plume(t, s["do_mg_l"], s["turbidity_ntu"],
                                                        start + 60 * (hash(n) % 5), 600, 5400, 3600, 0.8, 4.0)
    eps = run([Series(creek.id, n, t, c) for n, c in series.items()], topology)
    assert [e.kind for e in eps if e.kind in ("rain", "discharge")] == ["rain"]
    (r,) = [e for e in eps if e.kind == "rain"]
    assert r.segment == "" and r.node == "" and abs(r.start - start) < 900


def test_a_faulty_probe_is_not_a_water_event(topology):
    creek, t, series = _creek(topology)
    series["hl3-s1"]["turbidity_ntu"] = inject.stuck(t, series["hl3-s1"]["turbidity_ntu"], T0 + 1.2 * DAY, T0 + 1.6 * DAY)
    series["hl5-s1"]["do_mg_l"], _ = inject.spike(t, series["hl5-s1"]["do_mg_l"], T0 + 1.3 * DAY, -4.0)
    eps = run([Series(creek.id, n, t, c) for n, c in series.items()], topology)
    assert sorted(e.kind for e in eps) == ["sensor_spike", "sensor_stuck"]
    assert all(e.evidence["sentence"]["zh"] and e.evidence["sentence"]["en"] for e in eps)


def test_engine_state_round_trips_through_json(topology):
    creek, t, series = _creek(topology, days=1.0)
    eng = Engine(topology)
    half = t.size // 2
    for n, c in series.items():
        eng.feed(creek.id, n, t[:half], {k: v[:half] for k, v in c.items()})
    state = json.loads(json.dumps(eng.to_state()))
    other = Engine(topology)
    other.load_state(state)
    assert json.dumps(other.to_state(), sort_keys=True) == json.dumps(eng.to_state(), sort_keys=True)


def test_discharge_sentence_names_two_outlets_only_when_they_cannot_be_told_apart():
    from rivermon.models import texts
    ev = {"first_evidence": {"turb": {"value": 80.0, "baseline": 12.0}}, "arrival": [["hl4-s1", 0.0]],
          "upstream_normal": ["hl3-s2"], "outlets": ["ol-s6", "ol-s5"], "outlet_ambiguous": True}
    s = texts.sentence("discharge", "hl4-s1", ev)
    assert "ol-s6 or ol-s5" in s["en"] and "cannot tell which" in s["en"]
    assert "ol-s6 或 ol-s5" in s["zh"]
    ev["outlet_ambiguous"] = False
    s = texts.sentence("discharge", "hl4-s1", ev)
    assert "likely outlet: ol-s6 (then ol-s5)" in s["en"]


def test_a_turbidity_rise_beyond_quiet_nodes_is_a_second_discharge(topology):
    from rivermon.models.spatial import Spatial
    sp = Spatial(topology.creeks[0])
    alive = lambda n, t: True  # noqa: E731
    faulty = lambda n, t: False  # noqa: E731
    turb = {"field": "turbidity_ntu", "direction": "up", "value": 60.0, "baseline": 12.0, "z": 9.0}
    # water followed at the downstream end (hl7-s1) ...
    for t in range(0, 600, 30):
        f = sp.observe("hl7-s1", "turb", 0.0, float(t), float(t + 30), turb, alive, faulty)
    assert f and f[0].node == "hl7-s1"
    # ... then a rise at hl3-s1 with hl4-s1, hl5-s1, hl6-s1 working and quiet in between
    for t in range(600, 1200, 30):
        sp.observe("hl7-s1", "turb", 0.0, float(t), float(t + 30), turb, alive, faulty)
        f = sp.observe("hl3-s1", "turb", 590.0, float(t), float(t + 30), turb, alive, faulty)
    assert f[0].kind == "discharge" and f[0].node == "hl3-s1"
    assert "hl7-s1" not in [a[0] for a in f[0].evidence["arrival"]]


# ---- combined departure over several generic fields (multi-parameter data) ---------------------------

def _three_fields(shift: float, days: float = 4, seed: int = 5):
    """ph, conductivity and chlorophyll with a daily swing and noise; from day 3 for 40 min all
    three move together by ``shift`` times their noise."""
    t, _ = normal(days)
    rng = np.random.default_rng(seed)
    day = np.sin(2 * np.pi * t / DAY)
    cols = {"ph": 7.5 + 0.05 * day + rng.normal(0, 0.01, t.size),
            "cond_us_cm": 320 + 5 * day + rng.normal(0, 0.5, t.size),
            "chl_ug_l": 4 + 0.3 * day + rng.normal(0, 0.05, t.size)}
    ev = (t >= T0 + 3 * DAY + 3600) & (t < T0 + 3 * DAY + 3600 + 2400)
    cols["ph"][ev] += shift * 0.01
    cols["cond_us_cm"][ev] -= shift * 0.5
    cols["chl_ug_l"][ev] += shift * 0.05
    return t, cols, (T0 + 3 * DAY + 3600, T0 + 3 * DAY + 3600 + 2400)


COMBINE = dict(z_on=8.0, z_off=5.0, departure_min_s=300.0)
SHIFT = 6.0  # each field alone reaches z ~6.3 (< z_on 8); together sqrt(3) x that


def test_combined_departure_sees_fields_moving_together():
    from rivermon.models.node import Params

    t, cols, (a, b) = _three_fields(SHIFT)
    alone = NodeModel("n", params=Params(**COMBINE)).process(t, cols)
    assert [s for s in alone if s.kind == "baseline_departure"] == []  # each field alone is too small
    spans = NodeModel("n", params=Params(combine="rss", **COMBINE)).process(t, cols)
    (s,) = [s for s in spans if s.kind == "baseline_departure"]
    assert a - 600 <= s.onset <= a + 300 and b - 300 <= s.last <= b + 300
    assert set(s.evidence["fields"]) == {"ph", "cond_us_cm", "chl_ug_l"} and s.evidence["z"] > 8


def test_combined_departure_quiet_on_normal_days_and_chunk_free():
    from rivermon.models.node import Params

    t, cols, _ = _three_fields(0.0)
    assert NodeModel("n", params=Params(combine="rss", **COMBINE)).process(t, cols) == []
    t, cols, _ = _three_fields(SHIFT)
    sl = slice(int(2.9 * DAY / 60), int(3.2 * DAY / 60))
    t, cols = t[sl], {k: v[sl] for k, v in cols.items()}
    warm, _, _ = _three_fields(SHIFT)
    whole_m = NodeModel("n", params=Params(combine="rss", **COMBINE))
    whole_m.learn_many(warm[warm < t[0]], {k: v[warm < t[0]] for k, v in _three_fields(SHIFT)[1].items()})
    state = json.loads(json.dumps(whole_m.state))
    whole = whole_m.process(t, cols)
    m = NodeModel("n", params=Params(combine="rss", **COMBINE), state=state)
    parts = []
    for i in range(0, t.size, 37):
        parts += m.process(t[i:i + 37], {k: v[i:i + 37] for k, v in cols.items()})
    assert any(s.kind == "baseline_departure" for s in whole)
    assert _merged(parts) == _merged(whole)


def test_hourly_node_learns_its_interval_and_a_burst_does_not_make_every_reading_a_gap():
    t = T0 + 3600.0 * np.arange(24 * 20)
    burst = T0 + 10 * DAY + 600.0 + np.array([0.0, 300.0, 600.0])  # three readings 5 min apart
    t = np.sort(np.concatenate([t, burst]))
    rng = np.random.default_rng(3)
    cond = 320 + 5 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.5, t.size)
    m = NodeModel("n")
    spans = m.process(t, {"cond_us_cm": cond})
    assert not kinds(spans) & {"sensor_gap", "node_offline"}, [(s.kind, s.evidence) for s in spans]
    assert m.state["dt"] == 3600.0
    late = m.process(t[-1:] + 6 * 3600.0, {"cond_us_cm": cond[-1:]})  # six hours silent: a gap
    assert kinds(late) == {"sensor_gap"}


def test_a_one_step_blip_on_a_mostly_flat_field_is_not_a_spike():
    t, _ = normal(3)
    x = np.full(t.size, 749.0)  # a coarse probe that mostly repeats its reading
    x[np.arange(500, t.size, 400)] = 750.0  # now and then one reading one step up
    spike = np.flatnonzero(t > T0 + 2.5 * DAY)[0]
    x[spike] = 800.0
    spans = NodeModel("n").process(t, {"redox": x})
    found = [s for s in spans if s.kind == "sensor_spike"]
    assert [(s.onset, s.evidence["value"]) for s in found] == [(t[spike], 800.0)]

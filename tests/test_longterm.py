"""The slow-divergence detector (models/longterm.py): a probe's offset or drift against the
field's own long pattern, told apart from a rain or flood that moves the water itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rivermon.models.engine import Engine
from rivermon.models.node import NodeModel

T0 = 1795708800.0  # 2026-11-27T00:00:00+08:00
DAY = 86400.0


def river(days: float = 24, step: float = 900.0, seed: int = 4):
    """A quiet river node: turbidity with a small daily swing, a water level flat at its 1-cm
    resolution for hours at a time, conductivity rising slowly with the dry season."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(0, days * DAY, step)
    hour = ((t + 8 * 3600) % DAY) / 3600.0
    turb = 3.0 * np.exp(rng.normal(0, 0.08, t.size)) * (1 + 0.15 * np.sin(2 * np.pi * hour / 24))
    level = np.round(14.20 + 0.004 * np.sin(2 * np.pi * (t - T0) / (5 * DAY)) + rng.normal(0, 0.002, t.size), 2)
    cond = 250.0 + 1.5 * (t - T0) / DAY + rng.normal(0, 0.8, t.size)
    return t, {"turbidity_ntu": np.round(turb, 2), "level_m": level, "cond_us_cm": np.round(cond, 1)}


def own_drift(spans):
    return [s for s in spans if s.kind == "sensor_drift" and s.evidence.get("source") == "own_pattern"]


def rain(t, cols, at: float):
    """A rain: the level rises, conductivity dilutes and turbidity jumps, all recovering over
    days (a tail much longer than the detector's 24 h)."""
    el = np.clip((t - at) / DAY, 0, None)
    shape = np.where(t >= at, np.exp(-el / 2.5), 0.0)
    out = dict(cols)
    out["turbidity_ntu"] = np.round(cols["turbidity_ntu"] * (1 + 25 * shape), 2)
    out["level_m"] = np.round(cols["level_m"] + 0.8 * shape, 2)
    out["cond_us_cm"] = np.round(cols["cond_us_cm"] * (1 - 0.5 * shape), 1)
    return out


@pytest.mark.parametrize("step", [900.0, 3600.0])
def test_a_calibration_offset_on_one_probe_is_flagged_as_drift(step):
    t, cols = river(step=step)
    start, end = T0 + 14.3 * DAY, T0 + 21.3 * DAY
    off = (t >= start) & (t < end)
    cols["turbidity_ntu"] = np.where(off, cols["turbidity_ntu"] + 8.0, cols["turbidity_ntu"])
    found = own_drift(NodeModel("n").process(t, cols))
    assert found, "a week-long turbidity offset with nothing else changing is a probe fault"
    assert {s.field for s in found} == {"turbidity_ntu"}
    assert abs(found[0].onset - start) <= 3 * 3600.0  # dated from the shift's start
    assert found[0].first - start <= 2 * DAY  # flagged within two days
    assert start + 6.5 * DAY <= found[-1].last <= end + 6 * 3600.0  # held while it lasts, ends after
    ev = found[-1].evidence
    assert ev["direction"] == "up" and ev["value"] > ev["usual_hi"] > 3.0
    eng = Engine(None)
    events = eng.feed("c", "n", t, cols)
    drift = [ep for ep, _ in events if ep.kind == "sensor_drift"]
    assert len({id(ep) for ep in drift}) == 1  # one alert for the whole offset, not one per hour
    assert "usual range" in drift[0].evidence["sentence"]["en"]


def test_a_slow_fouling_ramp_is_flagged():
    t, cols = river(days=26)
    start = T0 + 14 * DAY
    ramp = np.clip((t - start) / DAY, 0, None)  # +25 % of the reading per day
    cols["turbidity_ntu"] = np.round(cols["turbidity_ntu"] * (1 + 0.25 * ramp), 2)
    found = own_drift(NodeModel("n").process(t, cols))
    assert found and found[0].field == "turbidity_ntu" and found[0].evidence["direction"] == "up"
    assert found[0].first < T0 + 22 * DAY


def test_quiet_on_a_normal_river_with_a_flood_whose_tail_lasts_days():
    t, cols = river(days=30)
    wet = rain(t, cols, T0 + 15.5 * DAY)
    spans = NodeModel("n").process(t, wet)
    assert own_drift(spans) == [], [(s.field, s.evidence) for s in own_drift(spans)]
    assert own_drift(NodeModel("n").process(t, cols)) == []


def test_quiet_when_the_shift_came_with_the_water_on_a_single_turbidity_probe_only_if_short():
    # a turbidity-only node cannot be corroborated: a one-day rain is still no drift (24 h rule)
    t, cols = river(days=24)
    el = (t - T0 - 15 * DAY) / 3600.0
    bump = np.where((el >= 0) & (el < 18), 10.0 * np.exp(-el / 6.0), 0.0)
    spans = NodeModel("n").process(t, {"turbidity_ntu": np.round(cols["turbidity_ntu"] * (1 + bump), 2)})
    assert own_drift(spans) == []


def test_a_flat_hourly_water_level_is_not_a_stuck_probe():
    # hourly readings of a level that moves every hour after a rain, then stays flat for days at
    # its 1-cm resolution: the repeat rate must be learned from one-step hours too
    t = T0 + 3600.0 * np.arange(24 * 20)
    wiggle = np.where(np.arange(t.size) % 2 == 0, 0.01, 0.0)  # moves every hour at first
    level = np.where(t < T0 + 3 * DAY, 14.28 + wiggle, 14.28)
    level = np.round(level + np.where(np.arange(t.size) % 29 == 0, 0.01, 0.0), 2)
    spans = NodeModel("n").process(t, {"level_m": level})
    assert not [s for s in spans if s.kind == "sensor_stuck"], [(s.onset, s.evidence) for s in spans]


def test_state_round_trips_mid_excursion_and_chunking_does_not_matter():
    t, cols = river(step=3600.0)
    off = t >= T0 + 14.3 * DAY
    cols["turbidity_ntu"] = np.where(off, cols["turbidity_ntu"] + 8.0, cols["turbidity_ntu"])
    whole = own_drift(NodeModel("n").process(t, cols))
    cut = int(np.searchsorted(t, T0 + 15 * DAY))  # inside the excursion, before it is flagged
    m = NodeModel("n")
    first = own_drift(m.process(t[:cut], {k: v[:cut] for k, v in cols.items()}))
    frozen = json.dumps(m.state, sort_keys=True)
    rest = (t[cut:], {k: v[cut:] for k, v in cols.items()})
    scored = own_drift(m.score_many(*rest))
    assert json.dumps(m.state, sort_keys=True) == frozen  # scoring never mutates
    resumed = own_drift(NodeModel("n", state=json.loads(frozen)).process(*rest))
    assert [vars(s) for s in resumed] == [vars(s) for s in scored]
    assert [vars(s) for s in first + resumed] == [vars(s) for s in whole]
    m2, parts = NodeModel("n"), []
    for i in range(0, t.size, 5):
        parts += own_drift(m2.process(t[i:i + 5], {k: v[i:i + 5] for k, v in cols.items()}))
    spans_whole = [(s.onset, s.last) for s in whole]
    merged: list[list[float]] = []
    for s in parts:
        if merged and s.first <= merged[-1][1]:
            merged[-1][1] = s.last
        else:
            merged.append([s.onset, s.last])
    assert [tuple(x) for x in merged] == [(spans_whole[0][0], spans_whole[-1][1])]


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_a_whole_series_learns_what_a_trickle_learns(chunk):
    """A replay scores a whole series before the long pattern judges its hours: what it learns
    (the other fields' abrupt changes near each hour, the hourly scale the range is widened by)
    must be what the same readings teach in small chunks, as live."""
    t, cols = river(days=30, step=3600.0)
    cols = rain(t, cols, T0 + 8.2 * DAY)
    cols = rain(t, cols, T0 + 26.4 * DAY)  # a late abrupt change that must not prune the early ones
    off = (t >= T0 + 16.3 * DAY) & (t < T0 + 22 * DAY)
    cols["turbidity_ntu"] = np.where(off, cols["turbidity_ntu"] + 8.0, cols["turbidity_ntu"])
    whole = NodeModel("n")
    whole.process(t, cols)
    parts = NodeModel("n")
    for i in range(0, t.size, chunk):
        parts.process(t[i:i + chunk], {k: v[i:i + chunk] for k, v in cols.items()})
    assert json.dumps(whole.state, sort_keys=True) == json.dumps(parts.state, sort_keys=True)

"""A small outlet's plume (+4 NTU over half an hour against 0.2 NTU of probe noise) is a turbidity
rise at its node, even when the node's daily pattern was first learned over a rain
(models/diurnal.py); a normal day whose turbidity swings as far is not."""

from __future__ import annotations

import numpy as np
import pytest

from rivermon.models.node import NodeModel

T0 = 1795708800.0  # 2026-11-27T00:00:00+08:00
HOUR, DAY = 3600.0, 86400.0


def _turbidity(t: np.ndarray, seed: int = 2) -> np.ndarray:
    """A flat creek at 10.4 NTU with the probe's 0.2 NTU noise, at the probe's 0.1 NTU resolution."""
    rng = np.random.default_rng(seed)
    return 10.4 + rng.normal(0.0, 0.2, t.size)


def _plume(t: np.ndarray, x: np.ndarray, start: float, rise: float = 4.2, ramp_s: float = 2400.0,
           hold_s: float = 1800.0) -> np.ndarray:
    """A smooth rise of ``rise`` NTU over ``ramp_s``, held, then a smooth fall (a small outlet's
    dispersed plume at the next node)."""
    up = np.clip((t - start) / ramp_s, 0.0, 1.0)
    down = np.clip((t - start - ramp_s - hold_s) / ramp_s, 0.0, 1.0)
    return x + rise * (0.5 - 0.5 * np.cos(np.pi * up)) * (1.0 - (0.5 - 0.5 * np.cos(np.pi * down)))


def _rain(t: np.ndarray, x: np.ndarray, start: float) -> np.ndarray:
    """A rain on the first day: ten times as turbid for a few hours, receding slowly."""
    dt = t - start
    return x + np.where(dt > 0, 100.0 * (1 - np.exp(-dt / 1800.0)) * np.exp(-dt / 12000.0), 0.0)


def _rises(t: np.ndarray, x: np.ndarray) -> list:
    m = NodeModel("n1")
    out = []
    for i0 in range(0, t.size, 240):  # the live service's small chunks
        out += m.process(t[i0:i0 + 240], {"turbidity_ntu": np.round(x[i0:i0 + 240], 1)})
    return [s for s in out if s.kind == "turb_rise"]


def test_small_plume_after_a_first_day_rain_at_the_same_hour():
    # the rain on day 0 at 10:30 must not teach "late morning is turbid"; the plume on day 3 at
    # 11:00 rises 4.2 NTU and is flagged (before: the profile expected 2-7x the turbidity there)
    t = T0 + 60.0 * np.arange(int(4 * DAY / 60))
    x = _rain(t, _turbidity(t), T0 + 10.5 * HOUR)
    start = T0 + 3 * DAY + 11 * HOUR
    spans = [s for s in _rises(t, _plume(t, x, start)) if s.first > T0 + 2 * DAY]
    assert spans and len({s.onset for s in spans}) == 1, spans  # one rise (cut at the hour)
    assert start < spans[0].first < start + 2400.0


@pytest.mark.xfail(strict=True, reason="known limit (docs/model.md): until the profile is known at "
                   "an hour the band is 2.5x wider, and a +4 NTU plume at 10 NTU scores z 2.3 < 3.4")
def test_small_plume_in_the_first_night_before_the_daily_pattern_is_known():
    # the demo's case: the model starts at 17:00, a plume reaches the node at 04:25 the next
    # morning. Not flagged: dropping the first-day widening for a flat turbidity day caught it,
    # but gave NEON Pringle Creek two false discharges on its first day (its afternoon
    # turbidity doubles at 1 NTU), so a one-node rule cannot tell them apart on day one
    t = T0 - 7 * HOUR + 60.0 * np.arange(int(14 * HOUR / 60))
    start = T0 + 4 * HOUR + 25 * 60
    spans = _rises(t, _plume(t, _turbidity(t), start))
    assert spans and len({s.onset for s in spans}) == 1, spans  # one rise (cut at the hour)
    assert start < spans[0].first < start + 2400.0


def test_a_normal_day_with_the_same_turbidity_range_is_quiet():
    # turbidity swinging by the plume's 4.2 NTU every day (a tide, a daily flow pattern): from
    # the first evening on, through four days, never a turbidity rise
    t = T0 - 7 * HOUR + 60.0 * np.arange(int(4 * DAY / 60))
    hour = ((t + 8 * 3600) % DAY) / HOUR
    x = _turbidity(t) + 2.1 * (1 - np.cos(2 * np.pi * (hour - 3.0) / 24.0))
    assert _rises(t, x) == []


def test_a_flat_day_with_slow_weather_drift_is_quiet():
    # a flat creek whose base turbidity wanders by 1 NTU over days: no rise either
    t = T0 - 7 * HOUR + 60.0 * np.arange(int(5 * DAY / 60))
    x = _turbidity(t, seed=5) + 1.0 * np.sin(2 * np.pi * (t - t[0]) / (3.3 * DAY))
    assert _rises(t, x) == []

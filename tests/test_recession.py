"""The departure ends on a receding river and after a step it has reported (Leigh's Pioneer).

The node's hourly sampling becomes 90-minute sampling locked to the clock (16 readings a day at
the same times), as the Pioneer River station's did: 8 of the 24 diurnal-profile bins are never
visited again and keep the level of weeks before. The departure must still end within a day of a
flood on a smooth recession, flag a short event all through, and report a lasting step at its
start and then learn it."""

from __future__ import annotations

import numpy as np
import pytest

from rivermon.models.datasets import REAL_DEPARTURE
from rivermon.models.node import NodeModel, Params

T0 = 1795708800.0  # 2026-11-27T00:00:00+08:00
DAY = 86400.0
AT = T0 + 30 * DAY + 3 * 3600.0  # the event, 10 days into the 90-minute sampling


def _times() -> np.ndarray:
    hourly = T0 + 600.0 + np.arange(0, 20 * DAY, 3600.0)
    locked = T0 + 20 * DAY + 600.0 + np.arange(0, 22 * DAY, 5400.0)
    return np.concatenate([hourly, locked])


def _river(kind: str, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A 1-cm level: 1.6 m while sampled hourly, slowly falling to about 1.0 m after (the dry
    season), a small daily swing, and the event."""
    rng = np.random.default_rng(seed)
    t = _times()
    days = (t - T0) / DAY
    season = 1.0 + 0.6 * np.exp(-np.maximum(days - 18.0, 0.0) / 4.0)
    x = season + 0.01 * np.sin(2 * np.pi * days) + rng.normal(0, 0.003, t.size)
    if kind == "flood":  # up 1 m in 3 h, then back down with a 3-day time constant
        rise = np.clip((t - AT) / 10800.0, 0.0, 1.0)
        x += rise * np.where(t > AT + 10800.0, np.exp(-(t - AT - 10800.0) / (3 * DAY)), 1.0)
    elif kind == "short":
        x += np.where((t >= AT) & (t < AT + 6 * 3600.0), 0.3, 0.0)
    elif kind == "step":
        x += np.where(t >= AT, 0.3, 0.0)
    return t, np.round(x, 2)


def _departures(kind: str, params: Params) -> tuple[np.ndarray, list]:
    t, x = _river(kind)
    spans = NodeModel("n", params=params).process(t, {"level_m": x})
    return t, [s for s in spans if s.kind == "baseline_departure"]


PARAMS = [Params(tz_offset_s=8 * 3600.0), Params(tz_offset_s=8 * 3600.0, **REAL_DEPARTURE)]


@pytest.mark.parametrize("params", PARAMS)
def test_quiet_on_a_slow_dry_season_fall_with_clock_locked_sampling(params):
    t, dep = _departures("none", params)
    assert dep == [], [(round((s.first - T0) / DAY, 2), round((s.last - T0) / DAY, 2)) for s in dep]


@pytest.mark.parametrize("params", PARAMS)
def test_a_flood_on_a_slow_recession_ends_its_departure_within_a_day(params):
    t, dep = _departures("flood", params)
    assert dep, "the flood's rise is reported"
    assert min(s.onset for s in dep) <= AT + 3 * 5400.0  # within three readings
    assert max(s.last for s in dep) <= AT + DAY, [((s.first - AT) / 3600, (s.last - AT) / 3600) for s in dep]


@pytest.mark.parametrize("params", PARAMS)
def test_a_short_event_is_flagged_all_through(params):
    t, dep = _departures("short", params)
    inside = t[(t >= AT) & (t < AT + 6 * 3600.0)]
    flagged = [any(s.onset <= ti <= s.last for s in dep) for ti in inside]
    # every reading of the event after its first (the median of 3 needs a second reading)
    assert all(flagged[1:]), flagged
    assert max(s.last for s in dep) <= AT + 6 * 3600.0 + 5400.0


@pytest.mark.parametrize("params", PARAMS)
def test_a_step_is_reported_at_its_start_then_learned(params):
    t, dep = _departures("step", params)
    # the median of 3 sees the step at its second reading (90 min apart)
    assert dep and min(s.onset for s in dep) <= AT + 2 * 5400.0
    assert max(s.last for s in dep) <= AT + DAY


@pytest.mark.parametrize("params", PARAMS)
def test_a_profile_bin_that_learned_a_flood_is_relearned_within_days(params):
    """A bin of the daily profile holding a flood's level (learned while the reference had
    lapsed) makes every normal day at that hour look odd; odd hours teach the bin slowly, so it
    would take weeks to unlearn. Contradicted the same way three visits in a row, it is
    replaced: the departures at that hour stop within four days."""
    rng = np.random.default_rng(3)
    t = T0 + 600.0 + np.arange(0, 24 * DAY, 3600.0)
    x = np.round(1.0 + 0.01 * np.sin(2 * np.pi * (t - T0) / DAY) + rng.normal(0, 0.003, t.size), 2)
    m = NodeModel("n", params=params)
    cut = int(np.searchsorted(t, T0 + 10 * DAY))
    m.process(t[:cut], {"level_m": x[:cut]})
    fs = m.state["fields"]["level_m"]
    fs["prof_m"][7] += 0.5  # the flood's hour
    fs["prof_m"][19] -= 0.4  # and a bin learned low at a flood's recession
    spans = m.process(t[cut:], {"level_m": x[cut:]})
    dep = [s for s in spans if s.kind == "baseline_departure"]
    assert dep, "the wrong bins are seen"
    assert max(s.last for s in dep) <= T0 + 14 * DAY, [(round((s.onset - T0) / DAY, 2), round((s.last - T0) / DAY, 2)) for s in dep]

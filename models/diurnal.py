"""Guards on a node's learned daily pattern (the 24 hourly bins of :mod:`rivermon.models.node`).

The departure detector subtracts the node's diurnal profile from every reading. Two ways that
profile can hide a plume, both seen on the simulator (docs/model.md, "small outlets"):

- **founding**: a bin's first value is adopted as it is. When that first hour is an anomaly (the
  first day's rain, a discharge an hour into the demo), the bin says "this hour is 2-10 times
  as turbid as the others"; later normal days then depart from it, count as odd hours and teach
  it at a crawl, so the wrong bump lasts for weeks and masks any plume at that time of day.
  A bin is therefore founded only by an hour that was back within ``z_off`` scales of the
  node's reference level, or by the second hour at that time of day that departed: a pattern
  that recurs is the river's, a one-off is not.
- **widening**: until the profile is known at an hour, the band is widened (``no_profile_scale``)
  because a field with a large daily swing (DO) would otherwise depart every morning. A field
  whose known part of the day (at least ``FLAT_MIN_BINS`` hours) stays within ``z_off`` scales
  (its 10th to 90th percentile: one bin founded by an anomaly that passed as settled while the
  scale was still the prior's does not make a flat day look swinging) has no such swing to
  fear, and is scored at its own scale there instead.

Both rules are read from the node's own history only; no parameter is tuned on labelled data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLAT_MIN_BINS = 12  # hours of the day known before a flat daily pattern is trusted


def settled(dev: float, scale: float | None, z_off: float) -> bool:
    """Whether an hour's level ``dev`` from the reference is back within ``z_off`` scales."""
    return not scale or abs(dev) <= z_off * scale


def may_found(fs: dict[str, Any], h: int, settled: bool) -> bool:
    """Whether an hour may found the empty bin ``h``: it was back near the reference level
    (``settled``), or a departing hour was already seen at this time of day once before."""
    wait = fs.setdefault("prof_wait", [0] * 24)
    if settled or wait[h] >= 1:
        wait[h] = 0
        return True
    wait[h] += 1
    return False


def flat_day(fs: dict[str, Any], scale: float, z_off: float, min_n: int) -> bool:
    """Whether the daily pattern known so far (at least FLAT_MIN_BINS founded hours) spans, from
    its 10th to its 90th percentile, less than ``z_off`` scales: then an hour whose profile is not known yet needs no wider band."""
    known = [v for v, n in zip(fs["prof_m"], fs["prof_n"]) if n >= min_n]
    if len(known) < FLAT_MIN_BINS:
        return False
    lo, hi = np.percentile(known, [10.0, 90.0])
    return bool(hi - lo < z_off * scale)

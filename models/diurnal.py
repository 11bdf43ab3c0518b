"""A guard on how a node's daily pattern (the 24 hourly bins of :mod:`rivermon.models.node`) is founded.

The departure detector subtracts the node's diurnal profile from every reading. A bin's first
value used to be adopted as it was. When that first hour is an anomaly (the first day's rain, a
discharge an hour into the demo), the bin says "this hour is 2-10 times as turbid as the
others"; later normal days then depart from it, count as odd hours (``z_on`` scales off) and
teach it at a crawl (half the learning rate, clipped), so the wrong bump lasts for weeks and
masks every plume at that time of day: on the simulator's month (seed 1) the first day's rain
at hl7-s1 (100 NTU, 10:30-16:00) left the profile expecting +2.2 (log) at 11:00-16:00 on day 2
and still +0.85 on day 28, and both small ``ol-s10`` discharges (+4.5 NTU, at 10:53 on day 4
and 14:17 on day 22) scored z = -15 and -20 instead of about +6.

So a bin is founded only by an hour that was back within ``z_off`` scales of the node's
reference level, or by the second hour at that time of day that departed (a pattern that
recurs is the river's, a one-off is not). Only for fields whose normal day is flat
(``FieldPrior.flat_day``: turbidity): DO's daily swing makes its rising and falling hours
depart from the reference of the hours before, and founding those bins a day later than their
neighbours gave a profile with a step in it (false DO drops every afternoon in the relapse
scenario). Nothing here is tuned on labelled data.
"""

from __future__ import annotations

from typing import Any


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

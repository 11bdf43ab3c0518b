"""A field's slow divergence from its own long pattern: a probe's offset or drift.

The departure detector in :mod:`rivermon.models.node` follows the node's recent level (hours):
it flags the start of a shift and then learns it. A probe that is miscalibrated by a constant
offset, or drifts while it fouls, keeps reading wrong for days or weeks; this detector compares
each field with its *long* pattern instead, one that never adapts into the anomaly:

- the usual range is learned from the node's own days judged normal: the 10th-90th percentile
  of the last ``LT_DAYS`` daily medians of its hourly levels, widened on each side by that
  width (at least ``SCALE_MARGIN`` times the field's learned hourly scale and ``RES_MARGIN``
  steps of its resolution). A day spent outside
  the range is not learned, so an offset never becomes the new normal; a slow seasonal trend
  stays inside the widened range day by day and is followed;
- an *excursion* begins at the first hour whose level (median of the last ``SHORT_H`` hourly
  levels) is outside the range, and lasts while it stays out on the same side;
- it is the water's, not the probe's, when another field of the node changed abruptly (its own
  departure z above ``z_on``) within ``WATER_WIN_H`` hours of that start, or that field's day's
  level left its own long range before it (a drying pool raises turbidity and conductivity
  together, slowly), or its level in the hours after the start differs from the day before by
  ``STEP_K`` of its usual day-to-day changes: a flood moves level, conductivity and turbidity together and its tail
  lingers for weeks, a probe's offset moves one field alone. A water excursion that lasts ``RELEARN_WATER_D`` days is learned as the river's
  new normal;
- ``sensor_drift`` (equipment) once an unexplained excursion has lasted ``SUSTAIN_H`` hours and
  the day's median (last ``ROLL_H`` hourly levels) is outside the range too, dated from the
  excursion's start; it ends when the level comes back.

Only fields where a shift lasting days with nothing else changing can only be the probe are
watched (``FieldPrior.own_drift``: turbidity); DO, conductivity, level and temperature follow
season, weather and flow for weeks. Every parameter is chosen on physical grounds
(a calibration offset outlasts any rain; a day's median removes the daily swing), not tuned on
labelled data. It runs once per closed hour of each field, in time order across the node's
fields, so its answer does not depend on how readings were chunked; its state is plain JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rivermon.models import fields as F

LT_DAYS = 28            # four weeks of normal days: longer than any offset we must keep alarmed
LT_WARM_DAYS = 5        # days learned before the range is trusted
DAY_MIN_HOURS = 12      # a day with fewer hourly levels is not learned
SCALE_MARGIN = 3.0      # the range is widened by at least this many hourly scales
RES_MARGIN = 3.0        # ... and by at least this many steps of the probe's resolution
SHORT_H = 3             # hours whose median says the level is (still) outside
ROLL_H = 24             # hours whose median is the day's level
SUSTAIN_H = 24.0        # an excursion must last this long: longer than any rain's own rise
WATER_WIN_H = 12        # another field changing this close to the start: the water moved
RELEARN_WATER_D = 7.0   # a water excursion this long is the river's new normal
MAX_GAP_H = 24          # a longer silence ends any excursion (nothing known in between)
HRS_KEEP = 48           # hourly levels kept: a day before an excursion and its first hours
STEP_K = 4.0            # another field moving this many usual day-to-day changes: the water moved
JUMP_KEEP_H = 72        # how long another field's abrupt changes are remembered


def new_lt() -> dict[str, Any]:
    return {"days": [], "day": None, "cur": [], "hrs": [], "band": None,
            "exc": None, "emit": None, "dout": None}


def tracked(f: str) -> bool:
    """Whether a field's long range is kept: every field whose changes are water signals (the
    others' ranges say whether the water moved too)."""
    return F.prior(f).water != "none"


def watched(f: str) -> bool:
    """Whether a field's own long pattern is watched: only where a shift that lasts for days
    with nothing else changing can only be the probe (``FieldPrior.own_drift``, turbidity).
    Conductivity, DO and level follow season, weather and flow for weeks without an abrupt
    sign (NEON Pringle Creek's clean conductivity leaves any four-week range for a month)."""
    return F.prior(f).own_drift


def note_jumps(fs: dict[str, Any], buckets: np.ndarray) -> None:
    """Remember the hours in which this field changed abruptly (departure z above z_on)."""
    if buckets.size == 0:
        return
    # pruned in step() from the hours judged, not from the newest jump: a replay scores a whole
    # series before judging its hours, and must still see the jumps near each hour it judges
    fs["jumps"] = sorted(set(fs.get("jumps", ())) | set(int(b) for b in np.unique(buckets)))


def step(node: str, st: dict[str, Any], closes: list[tuple[int, str, float]],
         bucket_s: float, tz_offset_s: float, make_span) -> list:
    """Judge the closed hours ``(bucket, field, level)`` of one node in time order."""
    out = []
    closes.sort(key=lambda c: (c[0], c[1]))
    for b, f, level, *learned in closes:
        fs = st["fields"][f]
        lt = fs.get("lt")
        if lt is None:
            lt = fs["lt"] = new_lt()
        scale, res = learned if learned else (fs.get("scale"), fs.get("res"))
        sp = _hour(lt, fs, st, f, b, level, scale, res, bucket_s, tz_offset_s, make_span, node)
        if sp is not None:
            out.append(sp)
    if closes:
        keep_from = closes[-1][0] - JUMP_KEEP_H
        for fs in st["fields"].values():
            if fs.get("jumps") and fs["jumps"][0] < keep_from:
                fs["jumps"] = [j for j in fs["jumps"] if j >= keep_from]
    return out


def _hour(lt: dict[str, Any], fs: dict[str, Any], st: dict[str, Any], f: str, b: int,
          level: float, scale: float | None, res: float | None, bucket_s: float, tz: float, make_span, node: str):
    if lt["hrs"] and b - lt["hrs"][-1][0] > MAX_GAP_H:
        lt["exc"], lt["emit"], lt["hrs"] = None, None, []
    day = b // 24
    if lt["day"] is not None and day != lt["day"]:
        _close_day(lt, fs, f)
    lt["day"] = day
    lt["hrs"] = (lt["hrs"] + [[b, level]])[-HRS_KEEP:]
    lt["cur"].append(level)
    band = lt["band"]
    if band is None:
        return None
    lo, hi, width = band[:3]
    # at least a few hourly scales, and a few steps of the probe's resolution (linear fields)
    floor = max(SCALE_MARGIN * (scale or 0.0), 0.0 if F.prior(f).log else RES_MARGIN * (res or 0.0))
    m = max(width, floor)
    lo, hi = lo - m, hi + m
    day_level = _median([h[1] for h in lt["hrs"] if h[0] > b - ROLL_H])
    dside = 1 if day_level > hi else (-1 if day_level < lo else 0)
    if dside == 0:
        lt["dout"] = None
    elif lt.get("dout") is None or lt["dout"][0] != dside:
        lt["dout"] = [dside, b]  # the day's level left the range here (seen by the other fields)
    if not watched(f):
        return None
    recent = [h[1] for h in lt["hrs"] if h[0] > b - SHORT_H]
    short = _median(recent)
    side = 1 if short > hi else (-1 if short < lo else 0)
    exc = lt["exc"]
    if side == 0 or (exc is not None and exc["side"] != side):
        lt["exc"] = exc = None
        lt["emit"] = None
    if side == 0:
        return None
    if exc is None:
        exc = lt["exc"] = {"side": side, "b0": b, "water": None}
    hours = b + 1 - exc["b0"]
    if exc["water"] is None and hours > WATER_WIN_H:
        # judged once, when the hours around the start are all known (chunk-invariant)
        exc["water"] = _water(st, f, exc["b0"])
    if exc["water"] or hours < SUSTAIN_H:
        return None
    if dside != side:
        lt["emit"] = None
        return None
    start = exc["b0"] * bucket_s - tz
    end = (b + 1) * bucket_s - tz
    first = lt["emit"] if lt["emit"] is not None else b * bucket_s - tz
    lt["emit"] = end
    pr = F.prior(f)
    raw = (lambda v: math.expm1(v)) if pr.log else (lambda v: v)
    ev = {"field": f, "source": "own_pattern", "direction": "up" if side > 0 else "down",
          "value": round(raw(day_level), 4), "usual_lo": round(raw(lo), 4),
          "usual_hi": round(raw(hi), 4), "hours": round(hours, 1)}
    return make_span("sensor_drift", node, start, first, end, "warning", f, ev)


def _water(st: dict[str, Any], f: str, b0: int) -> bool:
    """Whether the water moved too: another field of the node changed abruptly near the
    excursion's start, or its own day's level left its long range before the start (or soon
    after): a slow change of the water (a drying pool) moves several fields at once."""
    for g, gs in st["fields"].items():
        if g == f:
            continue
        if any(abs(j - b0) <= WATER_WIN_H for j in gs.get("jumps", ())):
            return True
        lt = gs.get("lt") or {}
        out = lt.get("dout")
        if out is not None and out[1] <= b0 + WATER_WIN_H:
            return True
        if _stepped(lt, g, gs, b0):
            return True
    return False


def _stepped(lt: dict[str, Any], g: str, gs: dict[str, Any], b0: int) -> bool:
    """Whether field ``g``'s level in the hours after ``b0`` differs from the day before by
    ``STEP_K`` of its usual day-to-day changes (a rise of the water level, a drop of
    conductivity: the same water that carries the turbidity), whatever its hourly scale."""
    band = lt.get("band")
    if not band or len(band) < 4:
        return False
    before = [v for bb, v in lt.get("hrs", ()) if b0 - 24 <= bb < b0]
    after = [v for bb, v in lt.get("hrs", ()) if b0 <= bb <= b0 + WATER_WIN_H]
    if not before or not after:
        return False
    res = 0.0 if F.prior(g).log else RES_MARGIN * (gs.get("res") or 0.0)
    return abs(_median(after) - _median(before)) > max(STEP_K * band[3], res, 1e-12)


def _close_day(lt: dict[str, Any], fs: dict[str, Any], f: str) -> None:
    cur, lt["cur"] = lt["cur"], []
    if len(cur) < DAY_MIN_HOURS:
        return
    now = lt["hrs"][-1][0] + 1 if lt["hrs"] else 0
    exc, out = lt["exc"], lt.get("dout")
    if exc is not None and not (exc["water"] and now - exc["b0"] >= 24 * RELEARN_WATER_D):
        return  # never adapt into an anomaly (a water one is learned once it has lasted)
    if out is not None and not watched(f) and now - out[1] < 24 * RELEARN_WATER_D:
        return
    lt["days"] = (lt["days"] + [_median(cur)])[-LT_DAYS:]
    if len(lt["days"]) >= LT_WARM_DAYS:
        q10, q90 = np.percentile(lt["days"], [10, 90])
        typ = float(np.median(np.abs(np.diff(lt["days"]))))  # the usual day-to-day change
        lt["band"] = [float(q10), float(q90), float(q90 - q10), typ]


def _median(a: list[float]) -> float:
    s = sorted(a)
    k = len(s) // 2
    return s[k] if len(s) % 2 else 0.5 * (s[k - 1] + s[k])

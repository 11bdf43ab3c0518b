"""The per-node streaming model: every single-node detector, river-style.

``score_many`` / ``score_one`` never change the model; ``learn_many`` / ``learn_one`` return
nothing; ``process`` does both in one pass (what the live service and replay call). The state
is a plain JSON-able dict, so a restart resumes exactly where the model stopped.

Learning happens when a time bucket (an hour of the node's own clock) closes: its readings that
no detector flagged update the node's recent level, its diurnal profile (24 hourly bins), its
typical noise and sampling interval. Scoring inside a bucket uses what was learned before it,
so the answer does not depend on how the readings were chunked on arrival.

Findings come out as :class:`Span` objects: one run of consecutive flagged readings of one kind,
with the time the condition began (``onset``), the first and last flagged reading, and evidence.

>>> import numpy as np
>>> m = NodeModel("n1")
>>> t = 1.7e9 + 60.0 * np.arange(5)
>>> spans = m.process(t, {"do_mg_l": np.array([6.0, 6.1, 6.0, 50.0, 6.1])})
>>> [s.kind for s in spans]
['sensor_out_of_range']
"""

from __future__ import annotations

import bisect
import copy
import math
from dataclasses import asdict, dataclass, field as dc_field
from typing import Any, Mapping

import numpy as np

from rivermon.models import fields as F
from rivermon.models import diurnal, longterm
from rivermon.models.kernels import hysteresis, median3, run_lengths, run_start

NAN = float("nan")
PROFILE_BINS = 24
PROFILE_WRONG_DAYS = 3
# Fields whose hourly level is reported for comparison between neighbouring nodes.
LEVEL_FIELDS = frozenset({"do_mg_l"})


@dataclass
class Params:
    """Detector settings (the defaults are what `rivermon eval` reports)."""

    bucket_s: float = 3600.0
    tz_offset_s: float = 8 * 3600.0
    # departure from the node's own recent level and diurnal profile
    z_on: float = 4.0
    z_off: float = 2.0
    turbidity_z_factor: float = 0.85  # turbidity barely swings by day: watch it a little closer
    departure_min_s: float = 60.0
    history_buckets: int = 6
    warm_buckets: int = 3
    no_profile_scale: float = 2.5   # widen the band until the node's daily pattern is known
    learn_rate: float = 0.08
    profile_min_n: int = 1
    # a profile bin not learned for this long while others were is from another regime (a node
    # whose sampling locks onto some hours of the day never visits the others again, and they
    # keep the level of weeks ago): the profile is then read from the fresh bins alone, as long
    # as there are at least profile_fresh_min of them (after a long outage the old profile is
    # kept until a quarter of the day has been learned again)
    profile_stale_s: float = 3 * 86400.0
    profile_fresh_min: int = 6
    # sensor faults
    spike_k: float = 10.0           # times the median step
    spike_k95: float = 4.0          # times the 95th-percentile step (fields with jumpy noise)
    stuck_min_s: float = 1800.0
    stuck_min_n: int = 8
    gap_factor: float = 5.0
    gap_min_s: float = 900.0
    offline_factor: float = 10.0
    offline_min_s: float = 1800.0
    low_battery_v: float = 3.5
    low_battery_frac: float = 0.85
    aerator_min_power_frac: float = 0.1
    aerator_fault_s: float = 120.0
    # standards (GB 3838 DO classes, black-odorous DO bands)
    do_low_mg_l: float = 3.0
    do_black_mg_l: float = 2.0
    do_black_severe_mg_l: float = 0.2
    standards_duration_s: float = 1800.0
    standards_hysteresis_mg_l: float = 0.3
    min_fields: int = 1             # fields that must depart together (multi-parameter data)
    # "rss": the generic fields' departures are judged together, on the root-sum-square of their
    # z (a Mahalanobis distance with a diagonal covariance): several fields moving a little at
    # once count as much as one moving a lot (multi-parameter water-quality events)
    combine: str = ""
    standards: bool = True          # GB 3838 / black-odorous bands (Chinese standards)
    # fields never scored (e.g. operational ones in a data set)
    ignore_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Span:
    """A run of consecutive flagged readings of one kind at one node."""

    kind: str
    node: str
    onset: float
    first: float
    last: float
    severity: str = "warning"
    field: str = ""
    evidence: dict[str, Any] = dc_field(default_factory=dict)


def _new_field_state() -> dict[str, Any]:
    return {
        "prev": [], "prev_t": [], "m3": [], "hist": [],
        "prof_m": [0.0] * PROFILE_BINS, "prof_s": [0.0] * PROFILE_BINS, "prof_n": [0] * PROFILE_BINS,
        "prof_b": [None] * PROFILE_BINS, "prof_use": None,
        "scale": None, "scale_n": 0, "noise": None, "peq": None, "res": None,
        "stuck": [None, 0], "dep": {}, "bx": [], "bt": [], "cur": None,
    }


def new_state(node: str) -> dict[str, Any]:
    return {"node": node, "last_t": None, "dt": None, "bucket": None, "n_buckets": 0,
            "late": 0, "bdt": [], "fields": {}, "std": {}, "batt": {"vmax": None},
            "aer": {}, "confirm": {}}


class NodeModel:
    """All single-node detectors for one node; see the module docstring."""

    def __init__(self, node: str, segment: str = "", kind: str = "sensor",
                 rated_w: float | None = None, params: Params | None = None,
                 state: dict[str, Any] | None = None):
        self.node, self.segment, self.kind, self.rated_w = node, segment, kind, rated_w
        self.params = params or Params()
        self.state = state if state is not None else new_state(node)

    # -- the river-style interface ---------------------------------------------------------
    def score_many(self, t: np.ndarray, cols: Mapping[str, np.ndarray]) -> list[Span]:
        """Findings for these readings, without changing the model."""
        return _run(self, copy.deepcopy(self.state), t, cols)[0]

    def learn_many(self, t: np.ndarray, cols: Mapping[str, np.ndarray]) -> None:
        """Update the model with these readings."""
        self.state = _run(self, copy.deepcopy(self.state), t, cols)[1]

    def process(self, t: np.ndarray, cols: Mapping[str, np.ndarray]) -> list[Span]:
        """Score, then learn, in one pass; returns the findings."""
        spans, self.state = _run(self, self.state, t, cols)
        return spans

    def score_one(self, ts: float, x: Mapping[str, float]) -> list[Span]:
        return self.score_many(*_one(ts, x))

    def learn_one(self, ts: float, x: Mapping[str, float]) -> None:
        self.learn_many(*_one(ts, x))

    def silence(self, now: float) -> Span | None:
        """Deadman: a node_offline finding when the node has been silent too long (pure)."""
        last = self.state["last_t"]
        if last is None:
            return None
        limit = _offline_after(self.params, self.state["dt"])
        if now - last <= limit:
            return None
        return Span("node_offline", self.node, last, now, now, "warning", "",
                    {"silent_s": round(now - last), "limit_s": round(limit), "source": "silence"})

    def to_state(self) -> dict[str, Any]:
        return self.state

    @property
    def last_t(self) -> float | None:
        return self.state["last_t"]


def _one(ts: float, x: Mapping[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return np.array([float(ts)]), {k: np.array([float(v)]) for k, v in x.items()}


def _offline_after(p: Params, dt: float | None) -> float:
    return max(p.offline_factor * (dt or 60.0), p.offline_min_s)


def _gap_after(p: Params, dt: float | None) -> float:
    return max(p.gap_factor * (dt or 60.0), p.gap_min_s)


# ---- the pass over a chunk -------------------------------------------------------------------

def _run(m: NodeModel, st: dict[str, Any], t: np.ndarray,
         cols: Mapping[str, np.ndarray]) -> tuple[list[Span], dict[str, Any]]:
    t = np.asarray(t, dtype=float)
    if t.size == 0:
        return [], st
    if t.size > 1 and not (np.diff(t) > 0).all():
        order = np.argsort(t, kind="stable")
        t = t[order]
        cols = {k: np.asarray(v, dtype=float)[order] for k, v in cols.items()}
        keep = np.ones(t.size, bool)
        keep[1:] = t[1:] > t[:-1]  # the same timestamp twice is one reading
    else:
        keep = np.ones(t.size, bool)
    cols = {k: np.asarray(v, dtype=float) for k, v in cols.items() if k not in m.params.ignore_fields}
    if st["last_t"] is not None:
        keep &= t > st["last_t"]  # late readings were already judged in order; skip them
    if not keep.all():
        st["late"] += int(t.size - keep.sum())
        t = t[keep]
        cols = {k: v[keep] for k, v in cols.items()}
    if t.size == 0:
        return [], st
    p = m.params
    bid = np.floor((t + p.tz_offset_s) / p.bucket_s).astype(np.int64)
    cuts = [0, *(np.flatnonzero(np.diff(bid)) + 1).tolist(), t.size]
    segs = [(int(bid[i0]), i0, i1) for i0, i1 in zip(cuts[:-1], cuts[1:])]
    spans = _timing(m, st, t, segs)
    do_track = None
    confirm: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    dep_count = np.zeros(t.size, int)
    dep_fields: dict[str, np.ndarray] = {}
    zsq: np.ndarray | None = None
    zfields: dict[str, np.ndarray] = {}
    for f, x in cols.items():
        valid = ~np.isnan(x)
        if not valid.any():
            continue
        allv = bool(valid.all())
        tt, xx = (t, x) if allv else (t[valid], x[valid])
        if f == "battery_v":
            spans += _battery(m, st, tt, xx)
        elif f == "aerator_on" and "power_w" in cols:
            spans += _aerator(m, st, tt, xx, cols["power_w"] if allv else cols["power_w"][valid])
        if f in CONFIRM:
            confirm[f] = (tt, xx)
        if not F.is_water_field(f):
            continue
        fs = st["fields"].setdefault(f, _new_field_state())
        fsegs = segs if allv else _segments(tt, p)
        found, y_t, y = _field(m, fs, f, tt, xx, fsegs)
        spans += found
        dep = fs.pop("_dep", None)
        zc = fs.pop("_zc", None)
        if zc is not None and y_t.size:
            zf = np.zeros(t.size)
            zf[np.searchsorted(t, y_t)] = zc
            zsq = zf * zf if zsq is None else zsq + zf * zf
            zfields[f] = zf
        if dep is not None:
            idx = np.searchsorted(t, y_t)
            dep_count[idx[dep]] += 1
            dep_fields.setdefault(f, np.zeros(t.size, bool))[idx[dep]] = True
        if f == "do_mg_l":
            do_track = (y_t, y)
    closes = [(e[0], f, *e[1:]) for f, fs in st["fields"].items() for e in fs.pop("_lt", ())]
    if closes:
        spans += longterm.step(m.node, st, closes, m.params.bucket_s, m.params.tz_offset_s, Span)
    if dep_fields:
        spans += _multi_departure(m, t, dep_count, dep_fields)
    if zsq is not None:
        spans += _combined_departure(m, st, t, np.sqrt(zsq), zfields)
    if do_track is not None and do_track[0].size and m.params.standards:
        spans += _standards(m, st, *do_track, confirm)
    for f, (tt, xx) in confirm.items():
        st["confirm"][f] = [float(tt[-1]), float(xx[-1])]
    return spans, st


def _multi_departure(m: NodeModel, t: np.ndarray, count: np.ndarray,
                     fields: dict[str, np.ndarray]) -> list[Span]:
    """A departure only when several fields depart together (``min_fields``), as one finding."""
    flag = count >= m.params.min_fields
    return _spans(m, "baseline_departure", flag, t, None, "warning", "",
                  lambda i0, i1: {"fields": sorted(f for f, a in fields.items() if a[i0:i1].any()),
                                  "direction": "both", "value": None, "baseline": None,
                                  "z": None})


def _combined_departure(m: NodeModel, st: dict[str, Any], t: np.ndarray, score: np.ndarray,
                        zfields: dict[str, np.ndarray]) -> list[Span]:
    """One departure over the node's generic fields together (``combine``): the same latch as a
    single field's (``z_on`` for ``departure_min_s``, held until below ``z_off``) on their
    root-sum-square z; the evidence names the fields that moved.

    The scores come from a running median of three readings, which follows a step one reading
    late on both sides: the departure is dated by the middle reading (its onset one reading
    earlier, and it ends with the last departed reading, not the first one back), while it is
    still *detected* when the reading that showed it arrived."""
    p = m.params
    car = st.setdefault("comb", {"on": None, "off": None, "al": False, "tp": None})
    mid = np.concatenate([[t[0] if car.get("tp") is None else car["tp"]], t[:-1]])
    car["tp"] = float(t[-1])
    on_c, off_c = score > p.z_on, score > p.z_off
    rs_on, car["on"] = run_start(on_c, t, car["on"])
    enter = on_c & (t - rs_on >= p.departure_min_s)
    alarm, car["al"] = hysteresis(enter, ~off_c, car["al"])
    rs_off, car["off"] = run_start(off_c | alarm, mid, car["off"])
    out: list[Span] = []
    for i0, i1 in run_lengths(alarm):
        peaks = {f: float(z[i0:i1].max()) for f, z in zfields.items()}
        top = max(peaks, key=peaks.get)
        moved = sorted(f for f, v in peaks.items() if v >= COMBINE_NOTABLE_Z or f == top)
        ev = {"fields": moved, "direction": "both", "value": None, "baseline": None,
              "z": round(float(score[i0:i1].max()), 2), "field_z": {f: round(peaks[f], 2) for f in moved}}
        first = float(t[i0])
        onset = float(rs_off[i0]) if not math.isnan(rs_off[i0]) else first
        out.append(Span("baseline_departure", m.node, min(onset, first), first,
                        max(float(mid[i1 - 1]), first), "warning", "", ev))
    return out


# a field is named in a combined departure's evidence when its own |z| reached this
COMBINE_NOTABLE_Z = 3.0


def _segments(t: np.ndarray, p: Params) -> list[tuple[int, int, int]]:
    bid = np.floor((t + p.tz_offset_s) / p.bucket_s).astype(np.int64)
    cuts = [0, *(np.flatnonzero(np.diff(bid)) + 1).tolist(), t.size]
    return [(int(bid[i0]), i0, i1) for i0, i1 in zip(cuts[:-1], cuts[1:])]


def _spans(m: NodeModel, kind: str, flag: np.ndarray, t: np.ndarray, onset: np.ndarray | None,
           severity: str, fld: str, evidence) -> list[Span]:
    out = []
    for i0, i1 in run_lengths(flag):
        on = float(onset[i0]) if onset is not None and not math.isnan(onset[i0]) else float(t[i0])
        ev = evidence(i0, i1) if callable(evidence) else dict(evidence)
        sev = ev.pop("_severity", severity)
        out.append(Span(kind, m.node, min(on, float(t[i0])), float(t[i0]), float(t[i1 - 1]), sev, fld, ev))
    return out


# how many of the latest steps between readings the sampling interval is the median of
STEP_WINDOW = 64


def _timing(m: NodeModel, st: dict[str, Any], t: np.ndarray,
            segs: list[tuple[int, int, int]]) -> list[Span]:
    """Gaps and node_offline from the time between readings; learns the sampling interval."""
    p = m.params
    prev_t = st["last_t"] if st["last_t"] is not None else t[0]
    before = np.concatenate([[prev_t], t[:-1]])
    dt = t - before
    off_lim = np.empty(t.size)
    gap_lim = np.empty(t.size)
    for b, i0, i1 in segs:
        if st["dt"] is None:
            off_lim[i0:i1] = gap_lim[i0:i1] = np.inf
        if st["bucket"] is not None and b != st["bucket"] and st["bdt"]:
            # the median of the last steps, long ones included: robust to gaps and bursts, and
            # it follows a node whose sampling slows down (an hourly node is learned at all)
            st["dt"] = _med(np.asarray(st["bdt"], float))
        if st["bucket"] != b:
            st["n_buckets"] += 1
        st["bucket"] = b
        g = _gap_after(p, st["dt"])
        if st["dt"] is not None:
            off_lim[i0:i1] = _offline_after(p, st["dt"])
            gap_lim[i0:i1] = g
        d = dt[i0:i1]
        st["bdt"] = (st["bdt"] + d[d > 0][-STEP_WINDOW:].tolist())[-STEP_WINDOW:]
    st["last_t"] = float(t[-1])
    off = dt > off_lim
    gap = (dt > gap_lim) & ~off
    spans: list[Span] = []
    if off.any():
        spans += _spans(m, "node_offline", off, t, before, "warning", "",
                        lambda i0, i1: {"silent_s": round(float(dt[i0])), "limit_s": round(float(off_lim[i0])),
                                        "source": "gap"})
    if gap.any():
        spans += _spans(m, "sensor_gap", gap, t, before, "info", "",
                        lambda i0, i1: {"gap_s": round(float(dt[i0])), "limit_s": round(float(gap_lim[i0]))})
    return spans


# ---- one field: range, spike, stuck, departure ------------------------------------------------

def _field(m: NodeModel, fs: dict[str, Any], f: str, tt: np.ndarray, xx: np.ndarray,
           segs: list[tuple[int, int, int]]) -> tuple[list[Span], np.ndarray, np.ndarray]:
    p, pr = m.params, F.prior(f)
    spans: list[Span] = []
    bad = (xx < pr.lo) | (xx > pr.hi)
    if bad.any():
        spans += _spans(m, "sensor_out_of_range", bad, tt, None, "warning", f,
                        lambda i0, i1: {"field": f, "value": float(xx[i0]), "lo": pr.lo, "hi": pr.hi})
        tt, xx = tt[~bad], xx[~bad]
        segs = _segments(tt, p)
    n = tt.size
    if n == 0:
        return spans, tt, xx
    yv = np.log1p(np.maximum(xx, 0.0)) if pr.log else xx
    y = median3(yv, fs["m3"])
    fs["m3"] = (list(fs["m3"]) + yv[-2:].tolist())[-2:]
    # what was learned before each bucket, one value per bucket, spread over its readings below
    NONE = (NAN, NAN, NAN, NAN, 0.0, 0.0)
    per_seg: list[tuple] = []
    # the hours that both open and close in this chunk are summarised at once (numpy), and
    # what the loop looks up for them is handed to their closing instead of looked up again
    pre = _hour_stats(yv, xx, segs)
    closing: dict[int, tuple] = {}
    for k, (b, i0, i1) in enumerate(segs):
        if fs["cur"] is not None and b != fs["cur"]:
            _close_field_bucket(m, fs, f, pr, *closing.pop(k - 1, ()))
            if fs.get("_lt") and fs["_lt"][-1][0] == fs["cur"]:
                # the scale and resolution as this hour left them, for the long-pattern judgement
                # after the chunk (not as the whole chunk leaves them: chunk-invariant)
                fs["_lt"][-1] += [fs["scale"], fs["res"]]
        fs["cur"] = b
        r, tr, base = _reference_and_profile(m, fs, b)
        # ref, its time, the start of the bucket and the profile's move from the reference
        # time to the bucket's start and across it: within an hour the interpolated profile is
        # a straight line between two scalars (the daily pattern as known before this bucket)
        pd = NONE if r is None else (r, tr, NAN, NAN, 0.0, 0.0)
        if r is not None:
            t_start = b * p.bucket_s - p.tz_offset_s
            pa = _profile_scalar(m, fs, t_start)
            pb = _profile_scalar(m, fs, t_start + p.bucket_s)
            if base is not None and pa is not None and pb is not None:
                pd = (r, tr, t_start, 1.0, pa - base, pb - pa)
        s = _scale(m, fs, pr)
        sc = NAN
        if s:
            mid = (b + 0.5) * p.bucket_s - p.tz_offset_s
            learned = fs["scale_n"] >= p.warm_buckets and fs["scale"] is not None
            known = not learned or _profile_scalar(m, fs, mid) is not None
            # DO swings most with the time of day: until its pattern is known, only a drop
            # far beyond the day's swing counts
            widen = p.no_profile_scale * (1.6 if f == "do_mg_l" else 1.0)
            sc = s if known else s * widen
        nz = fs["noise"] if fs["noise"] is not None else pr.noise
        nzv = NAN if nz is None else max(nz, p.spike_k95 / p.spike_k * (fs.get("step95") or 0.0))
        nd = _stuck_need(p, fs["peq"], pr.noise is not None)
        if pr.noise is None and tt[i1 - 1] - tt[i0] >= 0:
            nd = max(float(nd), 2 * p.stuck_min_n)
        per_seg.append((*pd, sc, nzv, nd))
        if k in pre:
            closing[k] = (pre[k], (r, tr, base, s))
        else:
            fs["bx"].extend(xx[i0:i1].tolist())
            fs["bt"].extend(tt[i0:i1].tolist())
    lens = [i1 - i0 for _, i0, i1 in segs]
    ref, _tref, t_start, has_pd, pd0, pd1, scale, noise, need = np.repeat(np.array(per_seg).T, lens, axis=1)
    pdelta = np.where(has_pd == 1.0, pd0 + pd1 * ((tt - t_start) / p.bucket_s), 0.0)
    for b, level in fs.pop("_out", []):
        end = (b + 1) * p.bucket_s - p.tz_offset_s
        spans.append(Span("level", m.node, end - p.bucket_s, end, end, "info", f,
                          {"hour": b, f: level}))
    P = len(fs["prev"])
    ext = np.concatenate([np.asarray(fs["prev"], float), xx])
    ext_t = np.concatenate([np.asarray(fs["prev_t"], float), tt])
    fs["prev"], fs["prev_t"] = ext[-2:].tolist(), ext_t[-2:].tolist()

    # spike: one sample far from both neighbours, which agree with each other
    if ext.size >= 3:
        a = ext[1:-1] - ext[:-2]
        b_ = ext[1:-1] - ext[2:]
        mag = np.minimum(np.abs(a), np.abs(b_))
        k0 = max(0, 2 - P)
        # a field that mostly repeats its value (median step 0) is not spiking on every one-step
        # blip: the threshold is at least spike_k steps of its resolution
        floor = max(pr.spike_min, p.spike_k * (fs["res"] or 0.0), 1e-12)
        thr = np.maximum(p.spike_k * np.nan_to_num(noise, nan=np.inf), floor)
        det = np.zeros(n, bool)
        sl = slice(k0 + P - 2, None)
        det[k0:] = (a[sl] * b_[sl] > 0) & (mag[sl] > thr[k0:]) & (np.abs(ext[2:] - ext[:-2])[sl] < 0.5 * mag[sl])
        if det.any():
            j = np.arange(n) + P - 1
            spans += _spans(m, "sensor_spike", det, tt, ext_t[np.maximum(j, 0)], "info", f,
                            lambda i0, i1: {"field": f, "value": float(ext[i0 + P - 1]),
                                            "neighbours": [float(ext[i0 + P - 2]), float(ext[i0 + P])],
                                            "threshold": round(float(thr[i0]), 4)})

    # stuck: flat at the probe's resolution for longer than the field ever is
    if ext.size >= 2:
        d = np.diff(ext)[P - 1:] if P else np.concatenate([[np.nan], np.diff(ext)])
        eq = np.abs(d) <= 1e-9 * np.maximum(1.0, np.abs(xx))
        starts, carry = run_start(eq, tt, fs["stuck"][0])
        idx = np.arange(n)
        brk = np.maximum.accumulate(np.where(~eq, idx, -1))
        cnt = np.where(brk < 0, fs["stuck"][1] + idx + 1, idx - brk)
        fs["stuck"] = [carry, int(cnt[-1]) if eq[-1] else 0]
        min_s = p.stuck_min_s if pr.noise is not None else 4 * p.stuck_min_s
        stuck = eq & (cnt >= need) & (tt - starts >= min_s)
        if stuck.any():
            spans += _spans(m, "sensor_stuck", stuck, tt, starts, "warning", f,
                            lambda i0, i1: {"field": f, "value": float(xx[i0]),
                                            "flat_s": round(float(tt[i1 - 1] - starts[i0])),
                                            "samples": int(cnt[i1 - 1])})

    # departure from the recent level, corrected by the learned diurnal profile
    dev = y - ref - pdelta
    z = dev / scale
    jump = np.abs(np.nan_to_num(z, nan=0.0)) > p.z_on
    if jump.any():  # an abrupt change: a shift of another field starting now is the water's
        longterm.note_jumps(fs, np.floor((tt[jump] + p.tz_offset_s) / p.bucket_s).astype(np.int64))
    combined = p.combine == "rss"
    if combined:
        zc = np.zeros(n)
        for sgn in (-1, 1):
            if _departure_kind(f, pr.water, sgn) == "baseline_departure":
                zc = np.maximum(zc, np.nan_to_num(sgn * z, nan=0.0))
        fs["_zc"] = zc  # judged with the node's other fields in _combined_departure
    for sgn in (-1, 1):
        kind = _departure_kind(f, pr.water, sgn)
        if not kind or (combined and kind == "baseline_departure"):
            continue
        zz = np.nan_to_num(sgn * z, nan=0.0)
        key = "lo" if sgn < 0 else "hi"
        car = fs["dep"].setdefault(key, {"on": None, "off": None, "al": False})
        zon = p.z_on * (p.turbidity_z_factor if f == "turbidity_ntu" else 1.0)
        on_c, off_c = zz > zon, zz > p.z_off
        rs_on, car["on"] = run_start(on_c, tt, car["on"])
        enter = on_c & (tt - rs_on >= p.departure_min_s)
        alarm, car["al"] = hysteresis(enter, ~off_c, car["al"])
        rs_off, car["off"] = run_start(off_c | alarm, tt, car["off"])
        if kind == "baseline_departure" and p.min_fields > 1:
            fs["_dep"] = fs.get("_dep", np.zeros(n, bool)) | alarm  # combined across fields below
            continue
        if alarm.any():
            spans += _spans(m, kind, alarm, tt, rs_off, "warning", f,
                            _departure_evidence(f, pr, sgn, z, xx, ref, tt, kind))
    return spans, tt, y


def _stuck_need(p: Params, peq: float | None, known: bool) -> float:
    """How many equal readings in a row are suspicious for a field that changes this often."""
    if peq is None and not known:
        return float("inf")  # a new kind of field: learn how often it repeats first
    peq = 0.1 if peq is None else peq
    if peq > 0.6:
        return float("inf")  # this field is normally flat (a slow or coarse probe)
    if peq <= 0:
        return float(p.stuck_min_n)
    return float(max(p.stuck_min_n, math.ceil(math.log(1e-4) / math.log(peq))))


def _departure_kind(f: str, water: str, sgn: int) -> str | None:
    if f == "do_mg_l":
        return "do_drop" if sgn < 0 else None
    if f == "turbidity_ntu":
        return "turb_rise" if sgn > 0 else None
    if water == "none" or (water == "down" and sgn > 0) or (water == "up" and sgn < 0):
        return None
    return "baseline_departure"


# The creek reasoning reads how a turbidity rise grows (models/spatial.py: which outlet): the
# first readings of a span, at most one a minute, are kept as its ``trace``.
TRACE_N = 12
TRACE_STEP_S = 55.0


def _departure_evidence(f: str, pr: F.FieldPrior, sgn: int, z: np.ndarray, xx: np.ndarray,
                        ref: np.ndarray, tt: np.ndarray | None = None, kind: str = ""):
    def ev(i0: int, i1: int) -> dict[str, Any]:
        seg = xx[i0:i1]
        extreme = float(seg.min() if sgn < 0 else seg.max())
        zs = z[i0:i1]
        peak = float(np.nanmin(zs) if sgn < 0 else np.nanmax(zs)) if np.isfinite(zs).any() else 0.0
        r = float(ref[i0])
        base = None if math.isnan(r) else (math.expm1(r) if pr.log else r)
        out = {"field": f, "direction": "down" if sgn < 0 else "up", "value": extreme,
               "baseline": None if base is None else round(base, 4), "z": round(peak, 2)}
        if kind == "turb_rise" and tt is not None:
            out["trace"] = _trace(tt[i0:min(i1, i0 + 60 * TRACE_N)], seg[:60 * TRACE_N])
        return out
    return ev


def _trace(t: np.ndarray, x: np.ndarray) -> list[list[float]]:
    """Up to TRACE_N readings at least TRACE_STEP_S apart, from the first."""
    keep = [0]
    for i in range(1, t.size):
        if t[i] - t[keep[-1]] >= TRACE_STEP_S:
            keep.append(i)
            if len(keep) >= TRACE_N:
                break
    return [[float(t[i]), round(float(x[i]), 4)] for i in keep]


def _reference(m: NodeModel, fs: dict[str, Any], bucket: int) -> tuple[float | None, float | None]:
    """The node's recent level (median of the last three learned hours, each moved to the
    newest hour's time of day by the diurnal profile) and the time it stands for."""
    return _reference_and_profile(m, fs, bucket)[:2]


def _reference_and_profile(m: NodeModel, fs: dict[str, Any], bucket: int
                           ) -> tuple[float | None, float | None, float | None]:
    """:func:`_reference` and the diurnal profile at its time (looked up once for both)."""
    p = m.params
    hist = [h for h in fs["hist"][-3:] if bucket - h[0] <= p.history_buckets]
    if not hist:
        return None, None, None
    hb = hist[-1][0]
    tref = (hb + 0.5) * p.bucket_s - p.tz_offset_s
    at_ref = _profile_scalar(m, fs, tref)
    if len(hist) == 1:
        return hist[0][1], tref, at_ref
    moved = []
    for b, level in hist:
        pb = at_ref if b == hb else _profile_scalar(m, fs, (b + 0.5) * p.bucket_s - p.tz_offset_s)
        moved.append(level + (at_ref - pb) if (at_ref is not None and pb is not None) else level)
    moved.sort()
    k = len(moved) // 2
    return (moved[k] if len(moved) % 2 else 0.5 * (moved[k - 1] + moved[k])), tref, at_ref


def _profile_at(m: NodeModel, fs: dict[str, Any], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = m.params
    hf = ((t + p.tz_offset_s) % 86400.0) / 3600.0 - 0.5
    fl = np.floor(hf)
    i0 = fl.astype(int) % PROFILE_BINS
    i1 = (i0 + 1) % PROFILE_BINS
    w = hf - fl
    pm = np.asarray(fs["prof_m"], float)
    pn = np.asarray(fs["prof_n"], int)
    ready = (pn[i0] >= p.profile_min_n) & (pn[i1] >= p.profile_min_n)
    return pm[i0] * (1 - w) + pm[i1] * w, ready


def _profile_delta(m: NodeModel, fs: dict[str, Any], t: np.ndarray, tref: np.ndarray) -> np.ndarray:
    if min(fs["prof_n"]) < m.params.profile_min_n and max(fs["prof_n"]) < m.params.profile_min_n:
        return np.zeros(t.size)
    at, ok = _profile_at(m, fs, t)
    base, ok0 = _profile_at(m, fs, np.nan_to_num(tref))
    return np.where(ok & ok0 & ~np.isnan(tref), at - base, 0.0)


def _scale(m: NodeModel, fs: dict[str, Any], pr: F.FieldPrior) -> float | None:
    floor = 0.5 * pr.scale if pr.scale else 0.0
    if fs["res"] and not pr.log:
        floor = max(floor, 2.0 * fs["res"])
    warm = m.params.warm_buckets if pr.scale else 2 * m.params.warm_buckets
    if fs["scale_n"] >= warm and fs["scale"] is not None:
        return max(fs["scale"], floor, 1e-9)
    if pr.scale:
        return 1.5 * pr.scale
    return None


# ---- standards: GB 3838 DO classes and the black-odorous DO bands -------------------------------

def _standards(m: NodeModel, st: dict[str, Any], tt: np.ndarray, y: np.ndarray,
               confirm: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Span]:
    p = m.params
    spans: list[Span] = []
    alarms: dict[str, np.ndarray] = {}
    for kind, thr in (("black_odorous", p.do_black_mg_l), ("low_do", p.do_low_mg_l)):
        car = st["std"].setdefault(kind, {"rs": None, "al": False, "onset": None})
        below = y < thr
        rs, car["rs"] = run_start(below, tt, car["rs"])
        enter = below & (tt - rs >= p.standards_duration_s)
        alarm, car["al"] = hysteresis(enter, y > thr + p.standards_hysteresis_mg_l, car["al"])
        onset = np.where(enter, rs, np.nan)
        # carry the onset of an alarm that continues from the previous chunk
        first = car["onset"] if car["onset"] is not None else np.nan
        li = np.maximum.accumulate(np.where(~np.isnan(onset) | ~alarm, np.arange(tt.size), -1))
        onset_ff = np.where(li >= 0, onset[np.maximum(li, 0)], first)
        car["onset"] = float(onset_ff[-1]) if alarm[-1] and not np.isnan(onset_ff[-1]) else None
        alarms[kind] = (alarm, onset_ff, thr)
    bo, bo_on, bo_thr = alarms["black_odorous"]
    low, low_on, low_thr = alarms["low_do"]
    if bo.any():
        def ev_bo(i0: int, i1: int) -> dict[str, Any]:
            lo = float(y[i0:i1].min())
            severe = lo < p.do_black_severe_mg_l
            conf = _confirmations(st, confirm, float(tt[i0]) - 3600.0, float(tt[i1 - 1]))
            return {"field": "do_mg_l", "value": round(lo, 3), "threshold": bo_thr,
                    "severe_threshold": p.do_black_severe_mg_l, "band": "severe" if severe else "light",
                    "duration_s": round(float(tt[i1 - 1] - bo_on[i0])), "confirmed_by": conf,
                    "_severity": "critical" if (severe or conf) else "warning"}
        spans += _spans(m, "black_odorous", bo, tt, bo_on, "warning", "do_mg_l", ev_bo)
    if low.any():
        spans += _spans(m, "low_do", low, tt, low_on, "warning", "do_mg_l",
                        lambda i0, i1: {"field": "do_mg_l", "value": round(float(y[i0:i1].min()), 3),
                                        "threshold": low_thr, "class": "IV",
                                        "duration_s": round(float(tt[i1 - 1] - low_on[i0]))})
    return spans


CONFIRM = {"orp_mv": lambda v: v < 50.0, "nh3n_mg_l": lambda v: v > 8.0,
           "transparency_cm": lambda v: v < 25.0}


def _confirmations(st: dict[str, Any], confirm: dict[str, tuple[np.ndarray, np.ndarray]],
                   lo: float, hi: float) -> list[str]:
    """Which black-odorous indicators besides DO were in their band between ``lo`` and ``hi``."""
    out = []
    for f, test in CONFIRM.items():
        seen = st["confirm"].get(f)
        hit = bool(seen and lo <= seen[0] <= hi and test(seen[1]))
        if not hit and f in confirm:
            tt, xx = confirm[f]
            sel = (tt >= lo) & (tt <= hi)
            hit = bool(sel.any() and test(xx[sel]).any())
        if hit:
            out.append(f)
    return out


# ---- battery and aerator -------------------------------------------------------------------------

def _battery(m: NodeModel, st: dict[str, Any], tt: np.ndarray, xx: np.ndarray) -> list[Span]:
    p = m.params
    b = st["batt"]
    vmax = max(b["vmax"] or 0.0, float(xx.max()))
    b["vmax"] = vmax
    thr = p.low_battery_v if vmax < 6.0 else p.low_battery_frac * vmax
    below = xx < thr
    rs, b["rs"] = run_start(below, tt, b.get("rs"))
    alarm, b["al"] = hysteresis(below & (tt - rs >= 600.0), xx > thr + 0.1 * (thr / 3.5),
                                b.get("al", False))
    return _spans(m, "low_battery", alarm, tt, rs, "info", "battery_v",
                  lambda i0, i1: {"field": "battery_v", "value": float(xx[i0:i1].min()),
                                  "threshold": round(thr, 2)})


def _aerator(m: NodeModel, st: dict[str, Any], tt: np.ndarray, on: np.ndarray,
             pw: np.ndarray) -> list[Span]:
    p = m.params
    a = st["aer"]
    running = (on > 0.5) & ~np.isnan(pw)
    if running.any():
        a["pmax"] = max(a.get("pmax") or 0.0, float(np.nanmax(np.where(running, pw, 0.0))))
    rated = m.rated_w or a.get("pmax") or 0.0
    spans = _duty(m, a, tt, on, pw)
    if rated <= 0:
        return spans
    nopower = running & (pw < p.aerator_min_power_frac * rated)
    rs, a["rs"] = run_start(nopower, tt, a.get("rs"))
    alarm, a["al"] = hysteresis(nopower & (tt - rs >= p.aerator_fault_s), ~nopower, a.get("al", False))
    return spans + _spans(m, "aerator_fault", alarm, tt, rs, "warning", "power_w",
                  lambda i0, i1: {"mode": "on_without_power", "power_w": float(pw[i0:i1].max()),
                                  "rated_w": rated})


def _duty(m: NodeModel, a: dict[str, Any], tt: np.ndarray, on: np.ndarray, pw: np.ndarray) -> list[Span]:
    """Hourly share of time running and mean power, reported when the hour closes."""
    p = m.params
    spans: list[Span] = []
    for b, i0, i1 in _segments(tt, p):
        if a.get("hb") is not None and b != a["hb"] and a.get("n"):
            end = (a["hb"] + 1) * p.bucket_s - p.tz_offset_s
            spans.append(Span("level", m.node, end - p.bucket_s, end, end, "info", "aerator_on",
                              {"hour": a["hb"], "on": a["son"] / a["n"], "power_w": a["spw"] / a["n"]}))
            a["son"] = a["spw"] = a["n"] = 0
        a["hb"] = b
        a["son"] = a.get("son", 0.0) + float(np.sum(on[i0:i1] > 0.5))
        a["spw"] = a.get("spw", 0.0) + float(np.nansum(pw[i0:i1]))
        a["n"] = a.get("n", 0) + (i1 - i0)
    return spans


# ---- learning at the close of a bucket -------------------------------------------------------

def _med(a: np.ndarray) -> float:
    """Median without np.median's per-call overhead (buckets are small)."""
    s = np.sort(a)
    k = s.size // 2
    return float(s[k]) if s.size % 2 else 0.5 * float(s[k - 1] + s[k])


def _profile_scalar(m: NodeModel, fs: dict[str, Any], t: float) -> float | None:
    p = m.params
    hf = ((t + p.tz_offset_s) % 86400.0) / 3600.0 - 0.5
    fl = math.floor(hf)
    i0, w = int(fl) % PROFILE_BINS, hf - fl
    i1 = (i0 + 1) % PROFILE_BINS
    pm = fs["prof_m"]
    use = fs.get("prof_use")
    if use:
        return _fresh_profile(pm, use, hf)
    pn, mn = fs["prof_n"], p.profile_min_n
    if pn[i0] < mn or pn[i1] < mn:
        return None
    return pm[i0] * (1 - w) + pm[i1] * w


def _fresh_profile(pm: list[float], use: list[int], hf: float) -> float:
    """The profile at hour ``hf`` (bin i stands for hour i + 0.5) interpolated between the
    nearest fresh bins on either side (``use``, sorted), around the clock."""
    k = bisect.bisect_right(use, hf)
    lo = use[k - 1] if k else use[-1] - PROFILE_BINS
    hi = use[k] if k < len(use) else use[0] + PROFILE_BINS
    if hi == lo:
        return pm[lo % PROFILE_BINS]
    w = (hf - lo) / (hi - lo)
    return pm[lo % PROFILE_BINS] * (1 - w) + pm[hi % PROFILE_BINS] * w


def _close_field_bucket(m: NodeModel, fs: dict[str, Any], f: str, pr: F.FieldPrior,
                        stats: HourStats | None = None, looked_up: tuple | None = None) -> None:
    """Learn from the bucket that just closed, unless the bucket itself was anomalous.

    ``stats`` are the bucket's statistics when :func:`_hour_stats` already has them (its
    readings are then not kept in ``fs["bx"]``); ``looked_up`` is (reference, its time, the
    profile there, scale) as the scoring of the bucket found them, which closing it has not
    changed.
    """
    p = m.params
    b, lr = fs["cur"], p.learn_rate
    if stats is None:
        bx = np.asarray(fs["bx"], float)
        fs["bx"], fs["bt"] = [], []
        if bx.size == 0:
            return
        stats = _one_hour_stats(bx, fs.get("last_x"), pr.log)
    fs["last_x"] = stats.last
    level = stats.level
    if longterm.tracked(f):
        fs.setdefault("_lt", []).append([b, level])  # judged against its long pattern in _run
    if f in LEVEL_FIELDS:
        fs.setdefault("_out", []).append([b, level])
    if stats.steps == 0:
        _learn_profile(m, fs, b, level, lr)
        fs["hist"] = (fs["hist"] + [[b, level]])[-p.history_buckets:]
        return
    peq = stats.peq
    if fs["peq"] is not None and fs["peq"] < 0.3 and peq > 0.6 and stats.steps >= p.stuck_min_n:
        # a flat bucket in a field that normally moves: a stuck probe, not a lesson. Only with
        # enough steps to say so: an hourly node's one or two steps that did not change are a
        # level that was flat that hour, and must teach the repeat rate (else a level flat for
        # days at the probe's resolution read as stuck forever)
        return
    if looked_up is None:
        ref, tref = _reference(m, fs, b)
        pb = _profile_scalar(m, fs, tref) if ref is not None else None
        scale = _scale(m, fs, pr)
    else:
        ref, tref, pb, scale = looked_up
    if ref is not None:
        mid = (b + 0.5) * p.bucket_s - p.tz_offset_s
        pa = _profile_scalar(m, fs, mid)
        dev_b = level - ref - ((pa - pb) if pa is not None and pb is not None else 0.0)
        odd = bool(scale and abs(dev_b) > p.z_on * scale)
        _learn_profile(m, fs, b, level, lr, odd, not pr.flat_day or diurnal.settled(dev_b, scale, p.z_off))
        if odd:
            return  # the bucket departs from normal: do not learn the anomaly as normal
        spread = stats.spread
        s = math.sqrt(dev_b * dev_b + spread * spread)
        fs["scale"] = s if fs["scale"] is None else fs["scale"] + lr * (s - fs["scale"])
        fs["scale_n"] += 1
    else:
        _learn_profile(m, fs, b, level, lr)
    fs["hist"] = (fs["hist"] + [[b, level]])[-p.history_buckets:]
    noise = stats.noise
    fs["noise"] = noise if fs["noise"] is None else fs["noise"] + lr * (noise - fs["noise"])
    q95 = stats.q95
    old95 = fs.get("step95")
    fs["step95"] = q95 if old95 is None else old95 + lr * (q95 - old95)
    fs["peq"] = peq if fs["peq"] is None else fs["peq"] + lr * (peq - fs["peq"])
    if stats.res is not None:
        fs["res"] = stats.res if fs["res"] is None else min(fs["res"], stats.res)


@dataclass
class HourStats:
    """What a closing bucket teaches, from its readings alone: the median level (of the log for
    log-scaled fields), the spread around it (MAD), and its steps (from the reading before the
    bucket, so hourly or slower sampling still learns its noise): how many, their median and
    95th percentile, the share of zero steps and the smallest nonzero one (the resolution)."""

    last: float
    level: float
    spread: float
    steps: int
    peq: float = 0.0
    noise: float = 0.0
    q95: float = 0.0
    res: float | None = None


def _one_hour_stats(bx: np.ndarray, prev: float | None, log: bool) -> HourStats:
    yv = np.log1p(np.maximum(bx, 0.0)) if log else bx
    level = _med(yv)
    spread = 1.4826 * _med(np.abs(yv - level))
    d = np.abs(np.diff(bx if prev is None else np.concatenate([[prev], bx])))
    if d.size == 0:
        return HourStats(float(bx[-1]), level, spread, 0)
    ds = np.sort(d)  # one sort for the median, the 95th percentile and the resolution
    k = ds.size // 2
    noise = float(ds[k]) if ds.size % 2 else 0.5 * float(ds[k - 1] + ds[k])
    i = int(np.searchsorted(ds, 0.0, side="right"))
    res = float(ds[i]) if i < ds.size and not math.isnan(ds[i]) else None
    return HourStats(float(bx[-1]), level, spread, int(d.size),
                     float(np.count_nonzero(d == 0)) / d.size, noise,
                     float(ds[min(ds.size - 1, int(0.95 * ds.size))]), res)


def _hour_stats(yv: np.ndarray, xx: np.ndarray, segs: list[tuple[int, int, int]]) -> dict[int, HourStats]:
    """:class:`HourStats` of every bucket that opens and closes inside this chunk (all segments
    but the first, which may continue a bucket begun before, and the last, still open), computed
    together: the rows of a NaN-padded matrix, one per bucket, sorted at once. Bit for bit what
    :func:`_one_hour_stats` gives (the same elements picked, the same arithmetic)."""
    if len(segs) < 3:
        return {}
    i0 = np.array([s[1] for s in segs[1:-1]])
    n = np.array([s[2] for s in segs[1:-1]]) - i0
    w = int(n.max())
    if w * n.size > 4 * int(n.sum()) + 4096:  # very uneven hours: padding would cost too much
        return {}
    col = np.arange(w)
    pad = col >= n[:, None]
    pos = np.minimum(i0[:, None] + col, xx.size - 1)
    rows = np.arange(n.size)
    y = np.where(pad, np.nan, yv[pos])
    level = _row_median(np.sort(y, axis=1), n)
    spread = 1.4826 * _row_median(np.sort(np.abs(y - level[:, None]), axis=1), n)
    # steps: from the reading before the bucket (the previous bucket's last) through the bucket
    d = np.where(pad, np.nan, np.abs(xx[pos] - xx[pos - 1]))
    ds = np.sort(d, axis=1)
    noise = _row_median(ds, n)
    zeros = np.count_nonzero(d == 0, axis=1)
    peq = zeros.astype(float) / n
    q95 = ds[rows, np.minimum(n - 1, (0.95 * n).astype(np.int64))]
    first_pos = ds[rows, np.minimum(zeros, w - 1)]
    has_res = (zeros < n) & ~np.isnan(first_pos)
    last = xx[i0 + n - 1]
    return {k + 1: HourStats(*v[:4], *v[4:7], v[7] if ok else None)
            for k, (v, ok) in enumerate(zip(zip(last.tolist(), level.tolist(), spread.tolist(),
                                                n.tolist(), peq.tolist(), noise.tolist(),
                                                q95.tolist(), first_pos.tolist()),
                                            has_res.tolist()))}


def _row_median(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of each row's first n values (rows sorted), as :func:`_med` computes it."""
    rows = np.arange(n.size)
    k = n // 2
    hi = s[rows, k]
    lo = s[rows, np.maximum(k - 1, 0)]
    return np.where(n % 2 == 1, hi, 0.5 * (lo + hi))


def _learn_profile(m: NodeModel, fs: dict[str, Any], b: int, level: float, lr: float,
                   odd: bool = False, settled: bool = True) -> None:
    """One hourly level into its hour-of-day bin; big departures are clipped, not adopted,
    and an hour that had not settled does not found an empty bin (diurnal.may_found)."""
    p = m.params
    h = int(((b * p.bucket_s) % 86400) // 3600) % PROFILE_BINS
    n = fs["prof_n"][h]
    if n == 0 and not diurnal.may_found(fs, h, settled):
        return  # an anomaly does not found the bin (a flat-day field: diurnal.py)
    seen = fs.get("prof_b")
    stale = seen is not None and seen[h] is not None and (b - seen[h]) * p.bucket_s > p.profile_stale_s
    dl = level - fs["prof_m"][h]
    runs = fs.setdefault("prof_odd", [0] * PROFILE_BINS)
    sgn = (1 if dl > 0 else -1) if odd else 0
    runs[h] = runs[h] + sgn if sgn and runs[h] * sgn > 0 else sgn
    if n == 0 or stale or abs(runs[h]) >= PROFILE_WRONG_DAYS:
        # a bin not visited for days (the node's sampling moved to other hours of the day)
        # holds the level of another regime: its first new lesson replaces it. So does a bin
        # that its own hour contradicted, the same way, on PROFILE_WRONG_DAYS visits in a row:
        # the bin is wrong (it learned a flood's hour), not every day at that hour
        fs["prof_m"][h] = level
        runs[h] = 0
    else:
        # an hour that departs from normal teaches slowly: a recurring pattern is still
        # learned within days, a one-off anomaly barely moves the profile
        step = lr / 2 if odd else max(1.0 / (n + 1), lr * 2)
        lim = 3.0 * fs["prof_s"][h] if n >= 3 and fs["prof_s"][h] > 0 else abs(dl)
        fs["prof_m"][h] += step * max(-lim, min(lim, dl))
        fs["prof_s"][h] += step * (abs(dl) - fs["prof_s"][h])
    fs["prof_n"][h] = n + 1
    if seen is not None:  # (a state saved before bins remembered when they were learned: never stale)
        seen[h] = b
        # a bin turns stale only days after its last lesson: looking once a day is enough while
        # every bin is fresh (the common case, and the cheap one)
        if stale or fs.get("prof_use") is not None or b - fs.get("prof_chk", -10**9) >= 24:
            fs["prof_use"] = _fresh_bins(p, fs["prof_n"], seen, b)
            fs["prof_chk"] = b


def _fresh_bins(p: Params, pn: list[int], seen: list[int | None], now: int) -> list[int] | None:
    """The profile bins learned within ``profile_stale_s`` of the newest, when some learned bins
    are older than that (None: every learned bin is fresh, or too few are)."""
    oldest = now - p.profile_stale_s / p.bucket_s
    learned = [i for i in range(PROFILE_BINS) if pn[i] >= p.profile_min_n and seen[i] is not None]
    fresh = [i for i in learned if seen[i] >= oldest]
    if len(fresh) == len(learned) or len(fresh) < p.profile_fresh_min:
        return None
    return fresh

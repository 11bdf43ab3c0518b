"""Compliance over a period: hours in each GB 3838-2002 DO class, black-odorous DO hours, data
completeness per node and segment, and alert handling times.

Shared by ``rivermon report`` and the panel's compliance view, so both show the same figures.
The entry points are :func:`segment_compliance` (telemetry, from InfluxDB) and
:func:`alert_summaries` (alerts, from :class:`~rivermon.core.alerts.AlertStore`).

How hours are counted (time-weighted, so irregular sampling does not bias the result):

* A node's reading stands for the time until that node's next reading, as long as the gap is
  at most ``gap_limit_s`` (default 30 min). After a longer gap the reading stands for one
  *typical interval* of its node only (the median spacing of its readings in the period); the
  rest of the gap counts as **missing**, never as the last value.
* A segment's DO at a moment is the **lowest** DO among its sensor nodes that have a value at
  that moment (the worst water in the reach decides its class); when none has one, the
  segment's DO is missing. Every node's own hours are reported too.
* Classes (minimum mg/L, half-open bands): I ≥ 7.5, II ≥ 6, III ≥ 5, IV ≥ 3, V ≥ 2, below V
  < 2. Black-odorous DO bands (2015 guide): light 0.2 ≤ DO < 2.0, severe DO < 0.2; together
  they are exactly "below V".
* Completeness: a node is expected to send ``period / typical interval`` readings; received
  readings are its points in the period (the most-counted field). A node with fewer than two
  readings takes the median interval of the creek's other nodes (else ``default_interval_s``).
  A segment's completeness is the sum of its nodes' received readings (each capped at its
  expected count) over the sum of expected.

All times are Unix milliseconds; periods are half-open ``[start_ms, end_ms)``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

from rivermon.core.influx import TELEMETRY, InfluxClient, ms_literal, quote_ident, quote_literal
from rivermon.core.topology import Creek

__all__ = [
    "DO_CLASSES", "CLASS_NAMES", "DEFAULT_GAP_LIMIT_S", "DEFAULT_INTERVAL_S",
    "DoHours", "NodeCompliance", "SegmentCompliance", "AlertSummary", "Interval",
    "classify_do", "black_band", "hold_intervals", "merge_min", "do_hours", "typical_interval_ms",
    "segment_compliance", "alert_summary", "alert_summaries", "month_range",
]

DO_FIELD = "do_mg_l"
DO_CLASSES = ("I", "II", "III", "IV", "V", "below_V")
# (class, minimum DO in mg/L), best first: GB 3838-2002 table 1.
CLASS_MIN: tuple[tuple[str, float], ...] = (("I", 7.5), ("II", 6.0), ("III", 5.0), ("IV", 3.0), ("V", 2.0))
BLACK_SEVERE_BELOW = 0.2
BLACK_LIGHT_BELOW = 2.0
CLASS_NAMES: dict[str, dict[str, str]] = {
    "I": {"zh": "I类", "en": "Class I"},
    "II": {"zh": "II类", "en": "Class II"},
    "III": {"zh": "III类", "en": "Class III"},
    "IV": {"zh": "IV类", "en": "Class IV"},
    "V": {"zh": "V类", "en": "Class V"},
    "below_V": {"zh": "劣V类", "en": "Worse than V"},
    "black_light": {"zh": "轻度黑臭", "en": "Light black-odorous"},
    "black_severe": {"zh": "重度黑臭", "en": "Severe black-odorous"},
}

# A 30-minute hole is longer than any normal sampling interval (10 s to 15 min, creek.md)
# yet short enough that a night-time DO minimum is not papered over by the evening value.
DEFAULT_GAP_LIMIT_S = 1800.0
DEFAULT_INTERVAL_S = 600.0
# Rows per query: at most InfluxDB 1.x's common `max-row-limit` (10000), so no answer is cut.
PAGE_ROWS = 10_000
MS_PER_H = 3600_000.0

Interval = tuple[int, int, float]  # [start_ms, end_ms) with one DO value


# ---- classification -------------------------------------------------------------------------

def classify_do(value: float) -> str:
    """The GB 3838-2002 DO class of one value (``below_V`` under 2 mg/L)."""
    for name, minimum in CLASS_MIN:
        if value >= minimum:
            return name
    return "below_V"


def black_band(value: float) -> str | None:
    """``black_severe`` (< 0.2), ``black_light`` (0.2 to < 2.0) or None."""
    if value < BLACK_SEVERE_BELOW:
        return "black_severe"
    if value < BLACK_LIGHT_BELOW:
        return "black_light"
    return None


# ---- time weighting -------------------------------------------------------------------------

def typical_interval_ms(times_ms: Sequence[int]) -> int | None:
    """The median spacing of sorted times, or None with fewer than two distinct times."""
    diffs = [b - a for a, b in zip(times_ms, times_ms[1:]) if b > a]
    return int(statistics.median(diffs)) if diffs else None


def hold_intervals(times_ms: Sequence[int], values: Sequence[float], start_ms: int, end_ms: int,
                   gap_limit_ms: int, interval_ms: int) -> list[Interval]:
    """Each reading held until the next one (gap ≤ limit) or for one interval; clipped to the period."""
    out: list[Interval] = []
    n = len(times_ms)
    for i in range(n):
        t, v = times_ms[i], values[i]
        nxt = times_ms[i + 1] if i + 1 < n else None
        if nxt is not None and nxt - t <= gap_limit_ms:
            stop = nxt
        else:
            stop = t + (interval_ms if nxt is None else min(interval_ms, nxt - t))
        a, b = max(t, start_ms), min(stop, end_ms)
        if a < b:
            out.append((a, b, v))
    return out


def merge_min(series: Sequence[Sequence[Interval]]) -> list[Interval]:
    """One series from several: at each moment the lowest value among those that have one."""
    if len(series) == 1:
        return list(series[0])
    bounds = sorted({t for s in series for a, b, _ in s for t in (a, b)})
    pos = [0] * len(series)
    out: list[Interval] = []
    for a, b in zip(bounds, bounds[1:]):
        low: float | None = None
        for k, s in enumerate(series):
            while pos[k] < len(s) and s[pos[k]][1] <= a:
                pos[k] += 1
            if pos[k] < len(s) and s[pos[k]][0] <= a:
                v = s[pos[k]][2]
                low = v if low is None or v < low else low
        if low is None:
            continue
        if out and out[-1][1] == a and out[-1][2] == low:
            out[-1] = (out[-1][0], b, low)
        else:
            out.append((a, b, low))
    return out


@dataclass
class DoHours:
    """Hours of a period spent in each DO class and black-odorous band."""

    period_h: float
    classes: dict[str, float] = field(default_factory=lambda: {c: 0.0 for c in DO_CLASSES})
    black_light_h: float = 0.0
    black_severe_h: float = 0.0
    covered_h: float = 0.0
    mean_do: float | None = None
    min_do: float | None = None

    @property
    def missing_h(self) -> float:
        """Hours without a usable DO value (gaps longer than the limit, no node, no data)."""
        return max(0.0, self.period_h - self.covered_h)

    def share(self, key: str) -> float:
        """Share of the covered hours in a class or band (0..1; 0 when nothing is covered)."""
        hours = self.classes.get(key)
        if hours is None:
            hours = {"black_light": self.black_light_h, "black_severe": self.black_severe_h}[key]
        return hours / self.covered_h if self.covered_h else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"period_h": self.period_h, "covered_h": self.covered_h, "missing_h": self.missing_h,
                "classes_h": dict(self.classes), "black_light_h": self.black_light_h,
                "black_severe_h": self.black_severe_h, "mean_do": self.mean_do, "min_do": self.min_do}


def do_hours(intervals: Iterable[Interval], start_ms: int, end_ms: int) -> DoHours:
    """Sum a held DO series into class and band hours over ``[start_ms, end_ms)``."""
    # Milliseconds are summed as integers, so the hours add up exactly to the period.
    ms = {c: 0 for c in DO_CLASSES}
    bands = {"black_light": 0, "black_severe": 0}
    weighted = 0.0
    low: float | None = None
    for a, b, v in intervals:
        ms[classify_do(v)] += b - a
        band = black_band(v)
        if band is not None:
            bands[band] += b - a
        weighted += v * (b - a)
        low = v if low is None or v < low else low
    covered = sum(ms.values())
    return DoHours(period_h=(end_ms - start_ms) / MS_PER_H,
                   classes={c: n / MS_PER_H for c, n in ms.items()},
                   black_light_h=bands["black_light"] / MS_PER_H,
                   black_severe_h=bands["black_severe"] / MS_PER_H,
                   covered_h=covered / MS_PER_H, mean_do=weighted / covered if covered else None,
                   min_do=low)


# ---- results --------------------------------------------------------------------------------

@dataclass
class NodeCompliance:
    """One node's data completeness (and, for a sensor with DO, its own DO hours)."""

    node: str
    kind: str
    interval_s: float
    interval_known: bool  # False when the interval is borrowed (fewer than two readings)
    expected: int
    received: int
    do: DoHours | None = None

    @property
    def completeness(self) -> float:
        return min(1.0, self.received / self.expected) if self.expected else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "kind": self.kind, "interval_s": self.interval_s,
                "interval_known": self.interval_known, "expected": self.expected,
                "received": self.received, "completeness": self.completeness,
                "do": self.do.as_dict() if self.do else None}


@dataclass
class AlertSummary:
    """Alerts that started in the period: counts by kind, times to acknowledge and resolve."""

    by_kind: dict[str, int] = field(default_factory=dict)
    total: int = 0
    acknowledged: int = 0
    resolved: int = 0
    auto_resolved: int = 0
    still_open: int = 0
    ack_s: list[float] = field(default_factory=list, repr=False)
    resolve_s: list[float] = field(default_factory=list, repr=False)

    @property
    def ack_median_s(self) -> float | None:
        return statistics.median(self.ack_s) if self.ack_s else None

    @property
    def ack_mean_s(self) -> float | None:
        return statistics.fmean(self.ack_s) if self.ack_s else None

    @property
    def resolve_median_s(self) -> float | None:
        return statistics.median(self.resolve_s) if self.resolve_s else None

    @property
    def resolve_mean_s(self) -> float | None:
        return statistics.fmean(self.resolve_s) if self.resolve_s else None

    @property
    def resolve_max_s(self) -> float | None:
        return max(self.resolve_s) if self.resolve_s else None

    def as_dict(self) -> dict[str, Any]:
        return {"by_kind": dict(self.by_kind), "total": self.total,
                "acknowledged": self.acknowledged, "resolved": self.resolved,
                "auto_resolved": self.auto_resolved, "still_open": self.still_open,
                "ack_median_s": self.ack_median_s, "ack_mean_s": self.ack_mean_s,
                "resolve_median_s": self.resolve_median_s, "resolve_mean_s": self.resolve_mean_s,
                "resolve_max_s": self.resolve_max_s}


@dataclass
class SegmentCompliance:
    """One segment over one period: DO hours, completeness, and (when asked) alerts."""

    creek: str
    segment: str
    name: dict[str, str]
    start_ms: int
    end_ms: int
    do: DoHours
    nodes: list[NodeCompliance]
    alerts: AlertSummary | None = None

    @property
    def expected(self) -> int:
        return sum(n.expected for n in self.nodes)

    @property
    def received(self) -> int:
        return sum(n.received for n in self.nodes)

    @property
    def completeness(self) -> float:
        """Received readings (each node capped at its expected count) over expected."""
        exp = self.expected
        return sum(min(n.received, n.expected) for n in self.nodes) / exp if exp else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"creek": self.creek, "segment": self.segment, "name": dict(self.name),
                "start_ms": self.start_ms, "end_ms": self.end_ms, "do": self.do.as_dict(),
                "expected": self.expected, "received": self.received,
                "completeness": self.completeness, "nodes": [n.as_dict() for n in self.nodes],
                "alerts": self.alerts.as_dict() if self.alerts else None}


# ---- InfluxDB -------------------------------------------------------------------------------

def _where(creek: str, start_ms: int, end_ms: int, node: str | None = None) -> str:
    q = (f"WHERE {quote_ident('creek')} = {quote_literal(creek)}"
         f" AND time >= {ms_literal(start_ms)} AND time < {ms_literal(end_ms)}")
    if node is not None:
        q += f" AND {quote_ident('node')} = {quote_literal(node)}"
    return q


def field_counts(client: InfluxClient, creek: str, start_ms: int, end_ms: int) -> dict[str, dict[str, int]]:
    """Per node, per field: how many values were stored in the period."""
    q = (f"SELECT COUNT(*) FROM {quote_ident(TELEMETRY)} {_where(creek, start_ms, end_ms)}"
         f" GROUP BY {quote_ident('node')}")
    out: dict[str, dict[str, int]] = {}
    for row in client.rows(q):
        node = row.pop("node", None)
        if node is None:
            continue
        counts = {k[len("count_"):]: int(v or 0) for k, v in row.items() if k.startswith("count_")}
        out[node] = counts
    return out


def fetch_series(client: InfluxClient, creek: str, node: str, field_name: str, start_ms: int,
                 end_ms: int) -> tuple[list[int], list[float]]:
    """Times (ms) and values of one node's field in ``[start_ms, end_ms)``, oldest first.

    Read in pages of :data:`PAGE_ROWS` (each starting after the last time seen), so the answer
    is complete whatever the server's ``max-row-limit``.
    """
    times: list[int] = []
    values: list[float] = []
    col = quote_ident(field_name)
    a = start_ms
    while a < end_ms:
        q = (f"SELECT {col} FROM {quote_ident(TELEMETRY)} {_where(creek, a, end_ms, node)}"
             f" LIMIT {PAGE_ROWS}")
        series_list = client.query(q)[0].get("series") or []
        page = [(int(t), v) for series in series_list for t, v in series["values"]]
        for t, v in page:
            if v is None:
                continue
            times.append(t)
            values.append(float(v))  # a boolean field (aerator_on) counts for its times only
        # A server whose max-row-limit is below PAGE_ROWS marks its cut answer `partial`.
        cut = any(series.get("partial") for series in series_list)
        if not page or (len(page) < PAGE_ROWS and not cut):
            break
        a = page[-1][0] + 1
    return times, values


# ---- per segment ----------------------------------------------------------------------------

def segment_compliance(client: InfluxClient, creek: Creek, start_ms: int, end_ms: int,
                       segment: str | None = None, gap_limit_s: float = DEFAULT_GAP_LIMIT_S,
                       default_interval_s: float = DEFAULT_INTERVAL_S,
                       alerts: dict[str, AlertSummary] | None = None,
                       on_node: Callable[[str], None] | None = None) -> list[SegmentCompliance]:
    """Compliance of each segment of ``creek`` (or only ``segment``) over ``[start_ms, end_ms)``.

    ``alerts`` (from :func:`alert_summaries`) is attached per segment when given; ``on_node``
    is called after each node is read (for a progress bar).
    """
    if end_ms <= start_ms:
        raise ValueError(f"the period must end after it starts ({start_ms} >= {end_ms} ms)")
    segments = [s for s in creek.flow_order() if segment is None or s.id == segment]
    if segment is not None and not segments:
        raise ValueError(f"segment {segment!r} is not in creek {creek.id!r} "
                         f"(known: {', '.join(s.id for s in creek.segments)})")
    counts = field_counts(client, creek.id, start_ms, end_ms)
    gap_ms = int(gap_limit_s * 1000)
    fetched: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    intervals: dict[str, int | None] = {}
    for s in segments:
        for n in creek.nodes_in(s.id):
            fetched[n.id] = _fetch_node(client, creek.id, n.id, n.kind, counts.get(n.id, {}),
                                        start_ms, end_ms, gap_ms)
            intervals[n.id] = _interval_of(fetched[n.id], start_ms, end_ms)
            if on_node:
                on_node(n.id)
    known = [v for v in intervals.values() if v]
    fallback = int(statistics.median(known)) if known else int(default_interval_s * 1000)
    out = []
    for s in segments:
        nodes, series = [], []
        for n in creek.nodes_in(s.id):
            nc, held = _node_compliance(n.id, n.kind, fetched[n.id], counts.get(n.id, {}),
                                        intervals[n.id], fallback, start_ms, end_ms, gap_ms)
            nodes.append(nc)
            if held is not None:
                series.append(held)
        merged = merge_min(series) if series else []
        out.append(SegmentCompliance(creek.id, s.id, s.name.as_dict(), start_ms, end_ms,
                                     do_hours(merged, start_ms, end_ms), nodes,
                                     (alerts.get(s.id) or AlertSummary()) if alerts is not None else None))
    return out


def _fetch_node(client: InfluxClient, creek: str, node: str, kind: str, counts: dict[str, int],
                start_ms: int, end_ms: int, gap_ms: int) -> dict[str, tuple[list[int], list[float]]]:
    """DO (sensors) with a gap-limit margin either side, and the node's most-counted field."""
    got: dict[str, tuple[list[int], list[float]]] = {}
    if kind == "sensor":
        got[DO_FIELD] = fetch_series(client, creek, node, DO_FIELD, start_ms - gap_ms, end_ms + gap_ms)
    primary = _primary_field(counts)
    if primary and primary not in got:
        got[primary] = fetch_series(client, creek, node, primary, start_ms, end_ms)
    if primary:
        got["_primary"] = got[primary]
    return got


def _primary_field(counts: dict[str, int]) -> str | None:
    """The field the node sends most often (ties: DO first, then by name); never ``seq``."""
    usable = {k: v for k, v in counts.items() if v and k != "seq"}
    if not usable:
        return None
    return max(sorted(usable), key=lambda k: (usable[k], k == DO_FIELD))


def _interval_of(got: dict[str, tuple[list[int], list[float]]], start_ms: int, end_ms: int) -> int | None:
    times = [t for t in got.get("_primary", ([], []))[0] if start_ms <= t < end_ms]
    return typical_interval_ms(times)


def _node_compliance(node: str, kind: str, got: dict[str, tuple[list[int], list[float]]],
                     counts: dict[str, int], interval: int | None, fallback: int,
                     start_ms: int, end_ms: int, gap_ms: int) -> tuple[NodeCompliance, list[Interval] | None]:
    interval_ms = interval or fallback
    received = max((v for k, v in counts.items() if k != "seq"), default=0)
    expected = max(1, round((end_ms - start_ms) / interval_ms))
    nc = NodeCompliance(node, kind, interval_ms / 1000.0, interval is not None, expected, received)
    if kind != "sensor":
        return nc, None
    times, values = got.get(DO_FIELD, ([], []))
    held = hold_intervals(times, values, start_ms, end_ms, gap_ms, interval_ms)
    nc.do = do_hours(held, start_ms, end_ms)
    return nc, held


# ---- alerts ---------------------------------------------------------------------------------

def alert_summary(alerts: Iterable[Any]) -> AlertSummary:
    """Counts and handling times of alerts (:class:`~rivermon.core.alerts.Alert` objects)."""
    out = AlertSummary()
    for a in alerts:
        out.total += 1
        out.by_kind[a.kind] = out.by_kind.get(a.kind, 0) + 1
        if a.acknowledged_at is not None:
            out.acknowledged += 1
            out.ack_s.append(max(0.0, a.acknowledged_at - a.start))
        if a.state == "resolved" and a.resolved_at is not None:
            out.resolved += 1
            out.auto_resolved += a.resolved_by == "auto"
            out.resolve_s.append(max(0.0, a.resolved_at - a.start))
        else:
            out.still_open += 1
    return out


def alert_summaries(store: Any, creek: str, start_ms: int, end_ms: int) -> dict[str, AlertSummary]:
    """Per segment (``""`` = creek-wide alerts), the alerts that started in the period."""
    by_segment: dict[str, list[Any]] = {}
    for a in store.list(creek=creek, since=start_ms / 1000.0, until=end_ms / 1000.0):
        by_segment.setdefault(a.segment, []).append(a)
    return {seg: alert_summary(items) for seg, items in by_segment.items()}


# ---- periods --------------------------------------------------------------------------------

def month_range(month: str, tz: str = "Asia/Shanghai") -> tuple[int, int]:
    """``YYYY-MM`` -> the local month as ``[start_ms, end_ms)``."""
    try:
        first = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"month {month!r} must look like 2026-11") from None
    zone = ZoneInfo(tz)
    nxt = first.replace(year=first.year + (first.month == 12), month=first.month % 12 + 1)
    start = first.replace(tzinfo=zone)
    end = nxt.replace(tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)

"""Everything the panel reads from InfluxDB, as InfluxQL built only from validated parts.

Identifiers go through ``quote_ident``, tag values through ``quote_literal``, times through
``ms_literal``; callers validate segment, node and field names before they get here, so an
injection string is refused twice.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from rivermon.core.influx import (NODE_STATUS, REJECTS, TELEMETRY, InfluxClient, ms_literal,
                                  quote_ident, quote_literal)
from rivermon.core.reading import FIELD_RE, ID_RE
from rivermon.core.topology import UNASSIGNED, Topology

from .status import DO_BANDS
from .timeutil import BadParam

AGG = "telemetry_1h"
# How far back "latest" looks; a segment silent for longer is unknown.
LATEST_LOOKBACK_S = 30 * 86400
# Asked first: nearly always every node reported within it, and it is a tenth of the work.
RECENT_S = 6 * 3600
# How long an answer may be reused: hourly aggregates change every few minutes anyway; raw
# answers only while the same chart is asked for by several clients at once.
AGG_TTL_S = 60.0
RAW_TTL_S = 5.0
# Target number of points in one chart line.
TARGET_POINTS = 600
NICE_INTERVALS_S = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
                    86400, 2 * 86400, 7 * 86400)
# Spans at or above this use the hourly aggregates when they are built (shorter ones read raw
# data, which is fast enough and keeps sub-hour detail).
AGG_MIN_SPAN_S = 14 * 86400
NODE_FIELDS = ("do_mg_l", "turbidity_ntu", "temp_c", "battery_v", "aerator_on", "power_w", "rssi_dbm")


def check_field(name: str) -> str:
    """A measurement name per the contract, or :class:`BadParam`."""
    # fullmatch: a pattern's "$" would let a trailing newline through.
    if not isinstance(name, str) or not FIELD_RE.fullmatch(name) or name in ("ts", "seq", "time"):
        raise BadParam("field", f"{str(name)[:40]!r} is not a measurement name ([a-z][a-z0-9_]{{0,63}})")
    return name


def check_id(param: str, value: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise BadParam(param, f"{str(value)[:40]!r} is not an id ([a-z0-9][a-z0-9-]{{0,31}})")
    return value


def pick_interval(span_s: float) -> int:
    """The smallest nice GROUP BY interval that keeps a line under :data:`TARGET_POINTS`."""
    for step in NICE_INTERVALS_S:
        if span_s / step <= TARGET_POINTS:
            return step
    return NICE_INTERVALS_S[-1]


def _where(creek: str, start_s: float | None = None, end_s: float | None = None,
           **tags: str | None) -> str:
    parts = [f'"creek" = {quote_literal(creek)}']
    for key, value in tags.items():
        if value is not None:
            parts.append(f"{quote_ident(key)} = {quote_literal(value)}")
    if start_s is not None:
        parts.append(f"time >= {ms_literal(int(start_s * 1000))}")
    if end_s is not None:
        parts.append(f"time < {ms_literal(int(end_s * 1000))}")
    return " AND ".join(parts)


def _series(result: dict[str, Any]) -> Iterable[tuple[dict[str, str], list[str], list[list[Any]]]]:
    for s in result.get("series") or []:
        yield s.get("tags") or {}, s["columns"], s["values"]


class QueryCache:
    """A small TTL cache with single flight: concurrent identical questions cost one query."""

    def __init__(self, maxsize: int = 256):
        self.maxsize = maxsize
        self._items: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, ttl_s: float, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > time.monotonic():
                self._items.move_to_end(key)
                return hit[1]
            event = self._inflight.get(key)
            owner = event is None
            if owner:
                event = self._inflight[key] = threading.Event()
        if not owner:
            event.wait(60)
            with self._lock:
                hit = self._items.get(key)
            if hit is not None:
                return hit[1]
        try:
            value = compute()
            with self._lock:
                now = time.monotonic()
                self._items[key] = (now + ttl_s, value)
                # Expired answers go at once, not only when the cache is full: a year's trend is
                # megabytes, and 256 stale ones would sit in the web process for nothing.
                for k in [k for k, (until, _) in self._items.items() if until <= now]:
                    del self._items[k]
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
            return value
        finally:
            if owner:
                with self._lock:
                    self._inflight.pop(key).set()


@dataclass
class Latest:
    value: float | bool | None
    ts_s: float | None


class PanelQueries:
    """Read-side queries of the panel over one InfluxDB database."""

    def __init__(self, influx: InfluxClient, topology: Topology):
        self.influx = influx
        self.topology = topology
        self.cache = QueryCache()

    # ---- segments ---------------------------------------------------------------------
    def latest_by_segment(self, creek: str, fields: Iterable[str] = ("do_mg_l", "turbidity_ntu"),
                          now_s: float | None = None) -> dict[str, dict[str, Latest]]:
        """``{segment: {field: Latest}}``: the newest value of each field per segment."""
        c = self.topology.creek(creek) if self.topology else None
        expected = {s.id for s in c.segments} if c else set()
        return self._latest(creek, tuple(fields), ("segment",), None, expected, now_s)

    def latest_by_node(self, creek: str, segment: str | None = None,
                       fields: Iterable[str] = NODE_FIELDS,
                       now_s: float | None = None) -> dict[str, dict[str, Latest]]:
        """``{node: {field: Latest}}`` for one segment (or the whole creek)."""
        c = self.topology.creek(creek) if self.topology else None
        expected = {n.id for n in c.nodes if segment is None or n.segment == segment} if c else set()
        return self._latest(creek, tuple(fields), ("node", "segment"), segment, expected, now_s)

    def _latest(self, creek: str, fields: tuple[str, ...], group: tuple[str, ...],
                segment: str | None, expected: set[str], now_s: float | None) -> dict[str, dict[str, Latest]]:
        """Newest values per ``group[0]``: the last few hours first (cheap); only when something
        expected is missing there, the last 30 days too (cached a minute)."""
        now_s = time.time() if now_s is None else now_s
        for f in fields:
            check_field(f)
        out = self._last(creek, fields, group, segment, now_s - RECENT_S, now_s + 400)
        if expected - set(out):
            key = ("latest", creek, fields, group, segment, int(now_s // 60))
            older = self.cache.get(key, 60.0, lambda: self._last(
                creek, fields, group, segment, now_s - LATEST_LOOKBACK_S, now_s + 400))
            for k, vals in older.items():
                for f, v in vals.items():
                    out.setdefault(k, {}).setdefault(f, v)
        return out

    def _last(self, creek: str, fields: tuple[str, ...], group: tuple[str, ...], segment: str | None,
              start_s: float, end_s: float) -> dict[str, dict[str, Latest]]:
        where = _where(creek, start_s, end_s, segment=segment)
        by = ", ".join(quote_ident(g) for g in group)
        q = ";".join(f"SELECT last({quote_ident(f)}) AS v FROM {quote_ident(TELEMETRY)} "
                     f"WHERE {where} GROUP BY {by}" for f in fields)
        out: dict[str, dict[str, Latest]] = {}
        for f, res in zip(fields, self.influx.query(q)):
            for tags, cols, values in _series(res):
                row = dict(zip(cols, values[0]))
                out.setdefault(tags.get(group[0], ""), {})[f] = Latest(row["v"], row["time"] / 1000)
        return out

    # ---- series -----------------------------------------------------------------------
    def series(self, creek: str, segment: str, field: str, start_s: float, end_s: float,
               node: str | None = None, use_agg: bool = False) -> dict[str, Any]:
        """A downsampled series per node: points ``[ts_ms, mean, min, max]``.

        Start and end snap outwards to the step, so everyone asking for the same chart within
        one step shares one cached answer.
        """
        check_field(field)
        step = pick_interval(end_s - start_s)
        source = TELEMETRY
        if use_agg and end_s - start_s >= AGG_MIN_SPAN_S:
            source, step = AGG, max(step, 3600)
        start_aligned = math.floor(start_s / step) * step
        end_aligned = math.ceil(end_s / step) * step
        key = ("series", creek, segment, field, node, source, step, start_aligned, end_aligned)
        ttl = AGG_TTL_S if source == AGG else RAW_TTL_S
        return self.cache.get(key, ttl, lambda: self._series(creek, segment, field, node, source,
                                                            step, start_aligned, end_aligned))

    def _series(self, creek: str, segment: str, field: str, node: str | None, source: str,
                step: int, start_s: float, end_s: float) -> dict[str, Any]:
        if source == AGG:
            sel = (f'sum({quote_ident(field + "_sum")}) AS s, sum({quote_ident(field + "_n")}) AS n, '
                   f'min({quote_ident(field + "_min")}) AS lo, max({quote_ident(field + "_max")}) AS hi')
        else:
            f = quote_ident(field)
            sel = f"mean({f}) AS m, min({f}) AS lo, max({f}) AS hi"
        q = (f"SELECT {sel} FROM {quote_ident(source)} "
             f"WHERE {_where(creek, start_s, end_s, segment=segment, node=node)} "
             f'GROUP BY time({step}s), "node" fill(none)')
        lines = []
        for tags, cols, values in _series(self.influx.query(q)[0]):
            points = []
            for v in values:
                row = dict(zip(cols, v))
                mean = row["s"] / row["n"] if source == AGG and row.get("n") else row.get("m")
                if mean is None:
                    continue
                points.append([row["time"], _r(mean), _r(row["lo"]), _r(row["hi"])])
            lines.append({"node": tags.get("node", ""), "points": points})
        return {"interval_s": step, "source": source, "series": lines}

    def raw_rows(self, creek: str, segment: str, field: str, start_s: float, end_s: float,
                 limit: int = 500000) -> list[tuple[int, str, Any]]:
        """Raw ``(ts_ms, node, value)`` rows for CSV export, oldest first."""
        check_field(field)
        q = (f"SELECT {quote_ident(field)} FROM {quote_ident(TELEMETRY)} "
             f"WHERE {_where(creek, start_s, end_s, segment=segment)} "
             f'GROUP BY "node" LIMIT {int(limit)}')
        rows = []
        for tags, cols, values in _series(self.influx.query(q)[0]):
            for v in values:
                if v[1] is not None:
                    rows.append((v[0], tags.get("node", ""), v[1]))
        rows.sort()
        return rows

    # ---- compliance -------------------------------------------------------------------
    def do_band_counts(self, creek: str, start_s: float, end_s: float,
                       use_agg: bool = False) -> dict[str, dict[str, int]]:
        """``{segment: {band: samples}}`` of DO over the range (aggregates for long spans)."""
        agg = use_agg and end_s - start_s >= AGG_MIN_SPAN_S
        key = ("bands", creek, agg, int(start_s) // 60, int(end_s) // 60)
        return self.cache.get(key, AGG_TTL_S if agg else RAW_TTL_S,
                              lambda: self._do_band_counts(creek, start_s, end_s, agg))

    def _do_band_counts(self, creek: str, start_s: float, end_s: float,
                        agg: bool) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        if agg:
            sel = ", ".join(f'sum({quote_ident("do_mg_l_b_" + b.lower())}) AS {quote_ident(b)}'
                            for b, *_ in DO_BANDS)
            q = (f"SELECT {sel} FROM {quote_ident(AGG)} WHERE {_where(creek, start_s, end_s)} "
                 f'GROUP BY "segment"')
            for tags, cols, values in _series(self.influx.query(q)[0]):
                row = dict(zip(cols, values[0]))
                counts[tags.get("segment", "")] = {b: int(row.get(b) or 0) for b, *_ in DO_BANDS}
            return counts
        stmts = []
        for _, low, high, _ in DO_BANDS:
            cond = f'"do_mg_l" >= {float(low)!r} AND "do_mg_l" < {float(high)!r}'
            stmts.append(f'SELECT count("do_mg_l") AS c FROM {quote_ident(TELEMETRY)} '
                         f'WHERE {_where(creek, start_s, end_s)} AND {cond} GROUP BY "segment"')
        for (band, *_), res in zip(DO_BANDS, self.influx.query(";".join(stmts))):
            for tags, cols, values in _series(res):
                counts.setdefault(tags.get("segment", ""), {b: 0 for b, *_ in DO_BANDS})[band] = \
                    int(dict(zip(cols, values[0]))["c"])
        return counts

    # ---- fleet ------------------------------------------------------------------------
    def node_status(self, creek: str) -> dict[str, dict[str, Any]]:
        """``{node: {"state", "fw", "ts_s"}}`` from the ingestor's ``node_status``."""
        q = (f'SELECT last("state") AS state FROM {quote_ident(NODE_STATUS)} '
             f'WHERE {_where(creek)} GROUP BY "node";'
             f'SELECT last("fw") AS fw FROM {quote_ident(NODE_STATUS)} '
             f'WHERE {_where(creek)} GROUP BY "node"')
        out: dict[str, dict[str, Any]] = {}
        for key, res in zip(("state", "fw"), self.influx.query(q)):
            for tags, cols, values in _series(res):
                row = dict(zip(cols, values[0]))
                entry = out.setdefault(tags.get("node", ""), {})
                entry[key] = row[key]
                if key == "state":
                    entry["ts_s"] = row["time"] / 1000
        return out

    def seq_stats(self, creek: str, start_s: float, end_s: float) -> dict[str, dict[str, int]]:
        """``{node: {"received", "expected", "missing"}}`` from ``seq`` over the range."""
        q = (f'SELECT count("seq") AS n, min("seq") AS lo, max("seq") AS hi '
             f"FROM {quote_ident(TELEMETRY)} WHERE {_where(creek, start_s, end_s)} GROUP BY \"node\"")
        out = {}
        for tags, cols, values in _series(self.influx.query(q)[0]):
            row = dict(zip(cols, values[0]))
            if row["n"]:
                expected = int(row["hi"]) - int(row["lo"]) + 1
                out[tags.get("node", "")] = {"received": int(row["n"]), "expected": expected,
                                             "missing": max(0, expected - int(row["n"]))}
        return out

    def reject_counts(self, start_s: float, end_s: float) -> dict[str, int]:
        """Rejected messages by reason over the range."""
        q = (f'SELECT count("detail") AS n FROM {quote_ident(REJECTS)} '
             f"WHERE time >= {ms_literal(int(start_s * 1000))} AND time < {ms_literal(int(end_s * 1000))} "
             f'GROUP BY "reason"')
        return {tags.get("reason", ""): int(values[0][1])
                for tags, cols, values in _series(self.influx.query(q)[0])}

    def recent_rejects(self, limit: int = 50) -> list[dict[str, Any]]:
        q = (f'SELECT "topic", "detail", "payload" FROM {quote_ident(REJECTS)} '
             f"GROUP BY \"reason\", \"node\", \"creek\" ORDER BY time DESC LIMIT {int(limit)}")
        rows = []
        for tags, cols, values in _series(self.influx.query(q)[0]):
            for v in values:
                row = dict(zip(cols, v))
                row.update(tags)
                row["payload"] = (row.get("payload") or "")[:300]
                rows.append(row)
        rows.sort(key=lambda r: r["time"], reverse=True)
        return rows[:limit]

    def unregistered_nodes(self, creek: str) -> list[str]:
        """Nodes stored under segment ``unassigned`` (the topology does not know them)."""
        q = (f'SHOW TAG VALUES FROM {quote_ident(TELEMETRY)} WITH KEY = "node" '
             f'WHERE "creek" = {quote_literal(creek)} AND "segment" = {quote_literal(UNASSIGNED)}')
        return sorted(v[1] for _, _, values in _series(self.influx.query(q)[0]) for v in values)

    def fields(self) -> list[str]:
        """Numeric measurement names stored in ``telemetry``."""
        q = f"SHOW FIELD KEYS FROM {quote_ident(TELEMETRY)}"
        return sorted(v[0] for _, _, values in _series(self.influx.query(q)[0]) for v in values
                      if v[1] == "float" and FIELD_RE.fullmatch(v[0]))


def _r(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


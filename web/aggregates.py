"""Hourly aggregates (``telemetry_1h``) that rivermon maintains itself, on every InfluxDB version.

Continuous queries exist only in InfluxDB 1.x and tasks only in 2.x, so the panel keeps its own:
a background job reads raw ``telemetry`` hour by hour and writes, per creek, segment, node and
kind, for every numeric field ``F``: ``F_sum``, ``F_n``, ``F_min``, ``F_max`` (a mean over any
span is ``sum(F_sum) / sum(F_n)``), and for DO the sample count in each GB 3838 class and
black-odorous band (``do_mg_l_b_i`` ... ``do_mg_l_b_bo_severe``). Rewriting an hour overwrites
its points (same series, same time) and writes explicit zeros, so re-running is idempotent.

A watermark (in ``web.sqlite``) records up to where hours are complete; every run also
re-aggregates the last ``web_agg_lookback_h`` hours so late backlogs are folded in.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from rivermon.core.config import Config
from rivermon.core.influx import TELEMETRY, InfluxClient, InfluxError, line, ms_literal, quote_ident

from .metrics import Metrics
from .queries import AGG
from .status import DO_BANDS
from .users import UserStore

log = logging.getLogger("rivermon.web.aggregates")
HOUR = 3600
CHUNK_S = 7 * 86400  # hours aggregated per query round
TAGS = ("creek", "segment", "node", "kind")


class Aggregator:
    """Maintain ``telemetry_1h`` in the background; ``ready`` once the backfill is done."""

    def __init__(self, influx: InfluxClient, state: UserStore, cfg: Config,
                 metrics: Metrics | None = None):
        self.influx = influx
        self.state = state
        self.cfg = cfg
        self.metrics = metrics
        # Keyed by database: the var directory belongs to one deployment, whose InfluxDB may
        # move to another port or host without its aggregates becoming invalid.
        self.key = f"agg_watermark:{influx.database}"
        raw = state.kv_get(self.key)
        self.watermark: float | None = float(raw) if raw else None
        # Readers switch to the aggregates only after one complete run (the first backfill).
        self._ready = state.kv_get(self.key + ":ready") == "1"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    def start(self) -> "Aggregator":
        self._thread = threading.Thread(target=self._loop, name="rivermon-web-agg", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                if self.metrics:
                    self.metrics.inc("rivermon_web_agg_runs_total", result="ok")
            except InfluxError as exc:
                log.warning("aggregate run failed; will retry", extra={"error": str(exc)})
                if self.metrics:
                    self.metrics.inc("rivermon_web_agg_runs_total", result="failed")
            self._stop.wait(self.cfg.web_agg_interval_s)

    def run_once(self, now_s: float | None = None) -> int:
        """Aggregate from the watermark (minus the lookback) up to now; returns points written."""
        now_s = time.time() if now_s is None else now_s
        current_hour = int(now_s // HOUR) * HOUR
        if self.watermark is None:
            start = current_hour - self.cfg.web_agg_backfill_days * 86400
        else:
            start = min(int(self.watermark), current_hour - self.cfg.web_agg_lookback_h * HOUR)
        fields = self._fields()
        written = 0
        chunk_start = start
        while chunk_start <= current_hour and not self._stop.is_set():
            chunk_end = min(chunk_start + CHUNK_S, current_hour + HOUR)
            if fields:
                written += self.aggregate(chunk_start, chunk_end, fields)
            # The current hour is partial: aggregated now, complete only after it ends.
            self._save_watermark(min(chunk_end, current_hour))
            chunk_start = chunk_end
        if not self._ready and not self._stop.is_set():
            self._ready = True
            self.state.kv_set(self.key + ":ready", "1")
        return written

    def _save_watermark(self, value: float) -> None:
        self.watermark = float(value)
        self.state.kv_set(self.key, str(int(value)))

    def _fields(self) -> list[str]:
        from .queries import PanelQueries
        return PanelQueries(self.influx, None).fields()  # type: ignore[arg-type]

    def aggregate(self, start_s: int, end_s: int, fields: list[str]) -> int:
        """Write the hourly points of ``[start_s, end_s)``; returns how many."""
        where = f"time >= {ms_literal(start_s * 1000)} AND time < {ms_literal(end_s * 1000)}"
        group = "GROUP BY time(1h), " + ", ".join(quote_ident(t) for t in TAGS) + " fill(none)"
        sel = ", ".join(f"sum({quote_ident(f)}) AS {quote_ident(f + '_sum')}, "
                        f"count({quote_ident(f)}) AS {quote_ident(f + '_n')}, "
                        f"min({quote_ident(f)}) AS {quote_ident(f + '_min')}, "
                        f"max({quote_ident(f)}) AS {quote_ident(f + '_max')}" for f in fields)
        stmts = [f"SELECT {sel} FROM {quote_ident(TELEMETRY)} WHERE {where} {group}"]
        has_do = "do_mg_l" in fields
        if has_do:
            for band, low, high, _ in DO_BANDS:
                stmts.append(f'SELECT count("do_mg_l") AS c FROM {quote_ident(TELEMETRY)} WHERE {where} '
                             f'AND "do_mg_l" >= {float(low)!r} AND "do_mg_l" < {float(high)!r} {group}')
        results = self.influx.query(";".join(stmts))
        points: dict[tuple, dict[str, Any]] = {}
        for series in results[0].get("series") or []:
            tags = tuple(series["tags"].get(t, "") for t in TAGS)
            cols = series["columns"]
            for values in series["values"]:
                row = dict(zip(cols, values))
                out = points.setdefault((tags, row["time"]), {})
                for f in fields:
                    if row.get(f + "_n"):
                        out.update({f + "_sum": float(row[f + "_sum"]), f + "_n": float(row[f + "_n"]),
                                    f + "_min": float(row[f + "_min"]), f + "_max": float(row[f + "_max"])})
                if has_do and row.get("do_mg_l_n"):
                    out.update({f"do_mg_l_b_{b.lower()}": 0.0 for b, *_ in DO_BANDS})
        if has_do:
            for (band, *_), res in zip(DO_BANDS, results[1:]):
                for series in res.get("series") or []:
                    tags = tuple(series["tags"].get(t, "") for t in TAGS)
                    for t_ms, count in series["values"]:
                        if (tags, t_ms) in points:
                            points[(tags, t_ms)][f"do_mg_l_b_{band.lower()}"] = float(count)
        lines = [line(AGG, dict(zip(TAGS, tags)), fields_, t_ms)
                 for (tags, t_ms), fields_ in points.items() if fields_]
        for i in range(0, len(lines), 5000):
            self.influx.write_lines(lines[i:i + 5000])
        return len(lines)

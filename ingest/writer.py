"""Move spooled records into InfluxDB in order, in batches, surviving outages and refusals.

A batch is sent when it holds ``batch_size`` lines or its oldest record is ``batch_ms`` old.
Connection failures, timeouts and 5xx are retried with backoff, the same batch again, for as
long as it takes (the spool holds it durably and the appender stops acknowledging when the
spool is full). A 400 or 413 means some points are refused: the batch is split in halves until
each refused line stands alone; the good points are written (writing one twice overwrites the
identical point) and each refused line goes to the rejects store with InfluxDB's reason
(``influx_refused``). Only after the whole batch is settled does the cursor move on.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable

from rivermon.core import reading as rd
from rivermon.core.influx import InfluxClient, InfluxError

from .influxwrite import LineWriter
from .metrics import IngestMetrics
from .spool import Record, Spool, SpoolReader

log = logging.getLogger("rivermon.ingest.writer")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
PRUNE_EVERY_S = 3600.0
# A pause this long in the spooled stream sends the batch without waiting for batch_ms.
IDLE_GAP_S = 0.015
_TAG_RE = re.compile(r",(creek|node)=([a-z0-9-]+)")


class Writer(threading.Thread):
    """The one thread that writes the spool into InfluxDB."""

    def __init__(self, spool: Spool, client: InfluxClient, batch_size: int, batch_ms: int,
                 metrics: IngestMetrics, reject_line: Callable[..., str | None], prefix: str,
                 rejects_keep_days: int = 0):
        super().__init__(name="influx-writer", daemon=True)
        self.spool = spool
        self.reader = SpoolReader(spool)
        self.client = client
        self.poster = LineWriter(client.target, client.timeout)
        self.batch_size = batch_size
        self.batch_s = batch_ms / 1000.0
        self.metrics = metrics
        self.reject_line = reject_line
        self.prefix = prefix
        self.stop_event = threading.Event()
        self.drain_deadline: float | None = None
        self.healthy = True
        self.heartbeat = time.monotonic()
        self.rejects_keep_days = rejects_keep_days
        self.next_prune = time.monotonic() + 60

    # -- loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            if self.stop_event.is_set() and (self.drain_deadline is None
                                             or time.monotonic() > self.drain_deadline
                                             or self.reader.available() <= 0):
                return
            records = self._collect()
            if records:
                self._settle(records)
            if self.rejects_keep_days and time.monotonic() >= self.next_prune:
                self._prune_rejects()

    def _prune_rejects(self) -> None:
        """Delete rejects rows past their keep time (the store's age bound)."""
        self.next_prune = time.monotonic() + PRUNE_EVERY_S
        for measurement in ("rejects", "rejects_overflow"):
            try:
                self.client.query(f'DELETE FROM "{measurement}" WHERE time < now() - '
                                  f"{int(self.rejects_keep_days)}d", method="POST")
            except InfluxError as exc:
                log.warning("could not prune old rejects", extra={"error": str(exc)[:300]})

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop after at most ``drain_s`` more seconds of writing what is spooled."""
        self.drain_deadline = time.monotonic() + drain_s
        self.stop_event.set()
        with self.spool.cond:
            self.spool.cond.notify_all()

    def _collect(self) -> list[Record]:
        """Wait for spooled records; gather a batch.

        A batch goes out when it holds ``batch_size`` lines, when its oldest record is
        ``batch_ms`` old, or when the stream pauses for ``IDLE_GAP_S`` (so a lone reading is
        not held back for nothing, while a steady stream still fills big batches).
        """
        with self.spool.cond:
            if self.reader.available() <= 0:
                self.spool.cond.wait(0.5)
        records = self.reader.read(self.batch_size)
        if not records:
            return records
        lines = sum(r.lines for r in records)
        while lines < self.batch_size and not self.stop_event.is_set():
            wait = min(records[0].wall_ms / 1000.0 + self.batch_s - time.time(), IDLE_GAP_S)
            if wait <= 0:
                break
            with self.spool.cond:
                if self.reader.available() <= 0:
                    self.spool.cond.wait(wait)
            more = self.reader.read(self.batch_size - lines)
            if not more:
                break  # nothing arrived during the gap: send what we have
            records += more
            lines += sum(r.lines for r in more)
        return records

    def _settle(self, records: list[Record]) -> None:
        """Write these records until InfluxDB has taken or refused every line; then commit."""
        body = b"\n".join(r.payload for r in records if r.payload)
        lines = sum(r.lines for r in records)
        backoff = BACKOFF_MIN_S
        while body:
            t0 = time.perf_counter()
            try:
                refused = self._write_or_split(body, lines)
            except InfluxError as exc:
                self.healthy = False
                self.metrics.write_errors += 1
                if exc.status == 404 and "database not found" in exc.body:
                    self._ensure_database()
                log.warning("InfluxDB write failed; the batch stays in the spool and is retried",
                            extra={"error": str(exc)[:300], "retry_in_s": round(backoff, 2),
                                   "spooled_bytes": self.spool.unwritten_bytes()})
                if self.stop_event.is_set():
                    if self.drain_deadline is None or time.monotonic() > self.drain_deadline:
                        return
                    time.sleep(backoff)
                else:
                    self.stop_event.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self.healthy = True
            self.metrics.observe_write(lines, time.perf_counter() - t0)
            if refused:
                self._store_refused(refused)
            break
        self.spool.commit(records[-1].end)
        self.metrics.observe_lag(time.time() - records[0].wall_ms / 1000.0)

    def _write_or_split(self, body: bytes, lines: int) -> list[tuple[bytes, str]]:
        """Write ``body``; on a 400/413 split it and return the lines refused alone, with why."""
        try:
            self.poster.write(body)
            return []
        except InfluxError as exc:
            if exc.status not in (400, 413):
                raise
            parts = body.split(b"\n")
            if len(parts) == 1:
                return [(body, exc.body or str(exc))]
            self.metrics.write_splits += 1
            mid = len(parts) // 2
            return (self._write_or_split(b"\n".join(parts[:mid]), mid)
                    + self._write_or_split(b"\n".join(parts[mid:]), len(parts) - mid))

    def _store_refused(self, refused: list[tuple[bytes, str]]) -> None:
        """Each refused point becomes a `rejects` row (reason influx_refused)."""
        now = time.time()
        rows = []
        for line, why in refused:
            text = line.decode("utf-8", errors="backslashreplace")
            tags = dict(_TAG_RE.findall(text.split(" ", 1)[0]))
            topic = (f"{self.prefix}/{tags['creek']}/{tags['node']}/telemetry"
                     if "creek" in tags and "node" in tags else "")
            t = rd.Topic(tags["creek"], tags.get("node"), "telemetry") if "creek" in tags else None
            log.warning("InfluxDB refused a point; it is kept in the rejects store",
                        extra={"line": text[:300], "error": why[:300]})
            row = self.reject_line(topic, t, rd.R_INFLUX, [f"InfluxDB refused the point: {why}"],
                                   text, now)
            if row:
                rows.append(row)
        backoff = BACKOFF_MIN_S
        while rows:
            try:
                self.client.write_lines(rows)
                return
            except InfluxError as exc:
                if not exc.retryable:
                    log.error("InfluxDB refused the rejects rows themselves",
                              extra={"error": str(exc)[:500], "rows": len(rows)})
                    return
                if self.stop_event.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _ensure_database(self) -> None:
        try:
            self.client.ensure_database()
        except InfluxError as exc:
            log.warning("could not create the database", extra={"error": str(exc)[:300]})

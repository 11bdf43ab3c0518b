"""Backfill: historical readings from a replay-format CSV into InfluxDB, like live ingest.

The CSV is the contract's replay format: a ``time`` column (RFC 3339 with an offset, or Unix
seconds), a ``node`` column, and measurement columns named as in the contract (any subset; a
``seq`` column is the node's counter). An empty cell is an absent value. Each row becomes one
reading object and goes through :func:`rivermon.core.reading.validate_readings`, the same
validation as a live MQTT reading, so a bad field is refused and the rest of the row kept, and
a row with no usable ``ts`` or no valid measurement is refused. Accepted readings are written
with :func:`rivermon.core.points.telemetry_line`, the live point layout, so backfilling twice
(or backfilling what also arrived live) stores each point once.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rivermon.core.influx import InfluxClient, InfluxError
from rivermon.core.points import telemetry_line
from rivermon.core.reading import ID_RE, R_INFLUX, validate_readings
from rivermon.core.topology import Topology

__all__ = ["RowRejection", "BackfillResult", "RejectsWriter", "csv_value", "read_rows", "backfill",
           "count_data_lines", "R_NODE", "R_ROW"]

R_NODE = "node_invalid"
R_ROW = "row_malformed"
BATCH_LINES = 5000
WRITE_ATTEMPTS = 4
REJECT_COLUMNS = ("line", "time", "node", "reason", "field", "detail")


@dataclass(slots=True)
class RowRejection:
    """A refused row or field of a CSV line (``field`` empty when the whole row is refused)."""

    line: int
    time: str
    node: str
    reason: str
    field: str
    detail: str

    def as_row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in REJECT_COLUMNS}


@dataclass
class BackfillResult:
    """What a backfill read, stored and refused (refusals themselves go to ``on_reject``)."""

    rows: int = 0
    written: int = 0  # readings stored (one point each)
    rows_refused: int = 0  # rows of which nothing was stored
    by_reason: Counter[str] = field(default_factory=Counter)
    examples: dict[str, RowRejection] = field(default_factory=dict)  # the first of each reason
    on_reject: Callable[[RowRejection], None] | None = field(default=None, repr=False)

    @property
    def refusals(self) -> int:
        return sum(self.by_reason.values())

    def refuse(self, rejection: RowRejection) -> None:
        """Count a refusal, keep it as an example if it is the first of its reason, pass it on."""
        self.by_reason[rejection.reason] += 1
        self.examples.setdefault(rejection.reason, rejection)
        if self.on_reject is not None:
            self.on_reject(rejection)


def csv_value(text: str) -> Any:
    """A cell as the JSON value a node would have sent (``""`` means absent: ``None``)."""
    s = text.strip()
    if not s:
        return None
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s  # refused by the validation with the field's name and the reason


def _ts_value(text: str) -> Any:
    s = text.strip()
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        return s


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str] | str]]:
    """``(line number, row)`` per data line; a malformed line yields a sentence instead."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: the file is empty (need a header with time and node)") from None
        _check_header(path, header)
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                yield reader.line_num, (f"line has {len(cells)} cells but the header has "
                                        f"{len(header)} columns")
                continue
            yield reader.line_num, dict(zip(header, cells))


def _check_header(path: Path, header: list[str]) -> None:
    for need in ("time", "node"):
        if need not in header:
            raise ValueError(f"{path}: the header has no {need!r} column "
                             f"(replay format: time,node,<measurements>; got {','.join(header)})")
    seen = Counter(header)
    dup = [h for h, n in seen.items() if n > 1]
    if dup:
        raise ValueError(f"{path}: column(s) {', '.join(map(repr, dup))} appear more than once")
    if "" in header:
        raise ValueError(f"{path}: column {header.index('') + 1} of the header has no name")


def row_reading(creek: str, line_no: int, row: dict[str, str], now: float,
                result: BackfillResult) -> Any:
    """Validate one row; refusals go into ``result``; returns the Reading or None."""
    node, time_text = row.get("node", "").strip(), row.get("time", "").strip()
    if not ID_RE.match(node):
        result.refuse(RowRejection(line_no, time_text, node, R_NODE, "",
                                              f"node {node[:64]!r} must match [a-z0-9][a-z0-9-]{{0,31}}"))
        return None
    obj: dict[str, Any] = {"ts": _ts_value(time_text)}
    for key, text in row.items():
        if key in ("time", "node", "ts") or text is None:
            continue
        value = csv_value(text)
        if value is not None:
            obj[key] = value
    outcome = validate_readings(creek, node, obj, now=now)
    for rej in outcome.rejections:
        result.refuse(RowRejection(line_no, time_text, node, rej.reason,
                                              rej.field or "", rej.detail))
    return outcome.readings[0] if outcome.readings else None


def backfill(client: InfluxClient, topology: Topology, creek: str, path: str | Path,
             batch_lines: int = BATCH_LINES, now: float | None = None,
             on_rows: Callable[[int], None] | None = None,
             on_reject: Callable[[RowRejection], None] | None = None) -> BackfillResult:
    """Validate and write every row of ``path``.

    ``on_rows(n)`` is called after each batch (progress); ``on_reject(rejection)`` for every
    refused row or field (e.g. a :class:`RejectsWriter`), so refusals are never held in memory.
    One batch is written in a background thread while the next is validated (InfluxDB and
    Python then share the two cores); at most one write is outstanding.
    """
    path = Path(path)
    if topology.creek(creek) is None:
        raise ValueError(f"creek {creek!r} is not in the topology "
                         f"(known: {', '.join(c.id for c in topology.creeks)})")
    now = time.time() if now is None else now
    client.ensure_database()
    result = BackfillResult(on_reject=on_reject)
    batch: list[Pending] = []
    pending_rows = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-write") as pool:
        inflight: tuple[Future[Flushed], int] | None = None
        for line_no, row in read_rows(path):
            result.rows += 1
            pending_rows += 1
            if isinstance(row, str):
                result.refuse(RowRejection(line_no, "", "", R_ROW, "", row))
                result.rows_refused += 1
                continue
            reading = row_reading(creek, line_no, row, now, result)
            if reading is None:
                result.rows_refused += 1
                continue
            batch.append((line_no, row.get("time", ""), reading.node, telemetry_line(reading, topology)))
            if len(batch) >= batch_lines:
                _settle(inflight, result, on_rows)
                inflight = (pool.submit(_flush, client, batch, result.written), pending_rows)
                batch, pending_rows = [], 0
        _settle(inflight, result, on_rows)
        _settle((pool.submit(_flush, client, batch, result.written), pending_rows), result, on_rows)
    return result


Pending = tuple[int, str, str, str]  # (CSV line, time text, node, line protocol)
Flushed = tuple[int, list[RowRejection]]  # (points stored, points InfluxDB refused)


def _settle(inflight: "tuple[Future[Flushed], int] | None", result: BackfillResult,
            on_rows: Callable[[int], None] | None) -> None:
    """Wait for the outstanding write and account for it (re-raising its failure)."""
    if inflight is None:
        return
    future, rows = inflight
    written, refused = future.result()
    result.written += written
    result.rows_refused += len(refused)
    for r in refused:
        result.refuse(r)
    if on_rows and rows:
        on_rows(rows)


def _flush(client: InfluxClient, batch: list[Pending], stored_before: int) -> Flushed:
    """Write one batch; when InfluxDB refuses it (4xx), write line by line to name the culprits."""
    if not batch:
        return 0, []
    try:
        _write(client, [b[3] for b in batch])
        return len(batch), []
    except InfluxError as exc:
        if exc.retryable:
            raise InfluxError(f"{exc}; {stored_before} readings were stored before this; "
                              f"backfill is idempotent, run it again when InfluxDB is back") from None
    written, refused = 0, []
    for line_no, time_text, node, lp in batch:
        try:
            _write(client, [lp])
            written += 1
        except InfluxError as exc:
            if exc.retryable:
                raise
            refused.append(RowRejection(line_no, time_text, node, R_INFLUX, "",
                                        f"InfluxDB refused the point: {exc.body or exc}"))
    return written, refused


def _write(client: InfluxClient, lines: list[str]) -> None:
    """Write, retrying a few times with backoff while InfluxDB is unreachable or busy."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            client.write_lines(lines)
            return
        except InfluxError as exc:
            if not exc.retryable or attempt == WRITE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * 2 ** attempt)


class RejectsWriter:
    """Refused rows and fields as CSV (``line,time,node,reason,field,detail``).

    The file is always (re)written, header only when nothing is refused, so a stale file of an
    earlier run never stands beside the input.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self._file: Any = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=REJECT_COLUMNS)
        self._writer.writeheader()

    def __call__(self, rejection: RowRejection) -> None:
        self._writer.writerow(rejection.as_row())
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "RejectsWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def count_data_lines(path: str | Path) -> int:
    """Lines after the header (a progress total; quoted newlines make it an overestimate)."""
    newlines, last = 0, b"\n"
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    lines = newlines + (last != b"\n")
    return max(0, lines - 1)

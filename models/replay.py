"""``rivermon replay INPUT.csv --out ALERTS.csv``: the live detector over a CSV, offline.

Input (contract): columns ``time`` (RFC 3339 or Unix seconds) and ``node``, then measurement
columns named as in the contract (any subset; empty cells are missing values; ``true``/``false``
for booleans). An optional ``creek`` column picks the creek; otherwise the topology's first.
A node the topology does not know is scored on its own history.

Output: one row per alert, ``start,end,node,segment,kind,severity``, times in RFC 3339.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, TextIO

import numpy as np

from rivermon.core.progress import progress
from rivermon.core.alerts import format_time
from rivermon.core.reading import FIELD_RE
from rivermon.core.topology import Topology
from rivermon.models.engine import Engine, episodes_sorted
from rivermon.models.node import Params
from rivermon.models.tracker import Episode

OUT_COLUMNS = ("start", "end", "node", "segment", "kind", "severity")


class ReplayInputError(ValueError):
    """The input CSV cannot be replayed; the message says where and why."""


@dataclass
class Series:
    """One node's readings, sorted by time."""

    creek: str
    node: str
    t: np.ndarray
    cols: dict[str, np.ndarray]


def parse_time(value: str, line: int) -> float:
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayInputError(f"line {line}: time {v[:40]!r} is not Unix seconds or RFC 3339") from None
    if dt.tzinfo is None:
        raise ReplayInputError(f"line {line}: time {v[:40]!r} has no UTC offset")
    return dt.timestamp()


def _num(v: str) -> float:
    if not v:
        return math.nan
    c = v[0]
    if c in "tTfF":
        low = v.strip().lower()
        if low == "true":
            return 1.0
        if low == "false":
            return 0.0
    return float(v)


def read_csv(src: TextIO, default_creek: str) -> list[Series]:
    """Parse a replay CSV into per-node series (columns validated, values converted)."""
    text = src.read()
    if '"' in text:
        rows = list(csv.reader(io.StringIO(text)))
    else:  # the common, unquoted case: split in C, no per-row objects
        nl = text.find("\n")
        rows = [(text if nl < 0 else text[:nl]).rstrip("\r").split(",")] if text.strip() else []
    if not rows:
        raise ReplayInputError("the input is empty: expected a header with time,node,...")
    header = [h.strip() for h in rows[0]]
    for need in ("time", "node"):
        if need not in header:
            raise ReplayInputError(f"the header has no {need!r} column (it has: {', '.join(header)})")
    fields = [h for h in header if h not in ("time", "node", "creek")]
    for h in fields:
        if not FIELD_RE.match(h):
            raise ReplayInputError(f"column {h!r} is not a measurement name ([a-z][a-z0-9_]{{0,63}})")
    width = len(header)
    if '"' in text:
        body = rows[1:]
        for i, r in enumerate(body):
            if len(r) != width:
                raise ReplayInputError(f"line {i + 2}: {len(r)} cells, the header has {width}")
        colv = list(zip(*body)) if body else [()] * width
    else:
        flat = _flat_cells(text, width)
        if flat is None:  # blank lines or a ragged row: line by line, to say which
            lines = [ln for ln in text.splitlines()[1:] if ln]
            flat = ",".join(lines).split(",") if lines else []
            for i, ln in enumerate(lines):
                if ln.count(",") != width - 1:
                    raise ReplayInputError(f"line {i + 2}: {ln.count(',') + 1} cells, the header has {width}")
        colv = [flat[i::width] for i in range(width)]
    if not colv[0]:
        return []
    idx = {h: i for i, h in enumerate(header)}
    tcol = colv[idx["time"]]
    try:
        t = np.fromiter(map(float, tcol), dtype=float, count=len(tcol))
    except ValueError:
        t = np.array([parse_time(v, i + 2) for i, v in enumerate(tcol)], dtype=float)
    nodes = np.array(colv[idx["node"]])
    creeks = np.array(colv[idx["creek"]]) if "creek" in idx else None
    values: dict[str, np.ndarray] = {}
    for h in fields:
        col = colv[idx[h]]
        try:
            values[h] = _column(col)
        except ValueError:
            bad = next(i for i, v in enumerate(col) if not _is_num(v))
            raise ReplayInputError(f"line {bad + 2}: {h} {col[bad][:40]!r} is not a number") from None
    keys = nodes if creeks is None else np.char.add(np.char.add(creeks, "/"), nodes)
    uniq, inv = np.unique(keys, return_inverse=True)
    order = np.lexsort((t, inv))
    inv_s = inv[order]
    cuts = np.flatnonzero(np.diff(inv_s)) + 1
    out = []
    for grp in np.split(order, cuts):
        key = str(keys[grp[0]])
        creek, node = key.split("/", 1) if creeks is not None else (default_creek, key)
        out.append(Series(creek, node, t[grp], {h: v[grp] for h, v in values.items()}))
    return out


def _flat_cells(text: str, width: int) -> list[str] | None:
    """Every body cell in one C-level split, or None when the body needs the careful path
    (blank lines, a ragged row)."""
    nl = text.find("\n")
    body = "" if nl < 0 else text[nl + 1:]
    if "\r" in body:
        body = body.replace("\r\n", "\n")
    body = body.rstrip("\n")
    if not body:
        return []
    if "\n\n" in body:
        return None
    flat = body.replace("\n", ",").split(",")
    return flat if len(flat) == width * (body.count("\n") + 1) else None


def _column(col: tuple[str, ...]) -> np.ndarray:
    """Numbers fast where possible; empty cells become NaN, true/false 1/0."""
    try:
        return np.fromiter(map(float, col), dtype=float, count=len(col))
    except ValueError:
        return np.fromiter(map(_num, col), dtype=float, count=len(col))


def _is_num(v: str) -> bool:
    try:
        _num(v)
        return True
    except ValueError:
        return False


def run(series: list[Series], topology: Topology | None, params: Params | None = None,
        autoresolve_s: float = 1800.0, engine: Engine | None = None) -> list[Episode]:
    """Replay series through the engine in time order; returns every episode, closed."""
    eng = engine or Engine(topology, params, autoresolve_s)
    if not series:
        return []
    times = {(s.creek, s.node): s.t for s in series}
    hold = eng.spatial_params.hold_s

    def alive(creek: str, node: str, at: float) -> bool:
        ts = times.get((creek, node))
        if ts is None:
            return False
        i = int(np.searchsorted(ts, at, side="right"))
        return i > 0 and at - ts[i - 1] <= hold

    eng.alive_override = alive
    closed: list[Episode] = []
    for creek in dict.fromkeys(s.creek for s in series):
        spans = [sp for s in series if s.creek == creek for sp in eng.process(creek, s.node, s.t, s.cols)]
        closed += [ep for ep, ch in eng.route_spans(creek, spans) if ch == "resolved"]
    end = max(float(s.t[-1]) for s in series if s.t.size)
    eng.alive_override = None
    closed += [ep for ep, ch in eng.tick(end) if ch == "resolved"]
    closed += eng.finish()
    return episodes_sorted(closed)


def write_alerts(episodes: Iterable[Episode], out: TextIO, tz: str = "Asia/Shanghai") -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(OUT_COLUMNS)
    n = 0
    for ep in episodes:
        w.writerow([format_time(ep.start, tz), format_time(ep.end if ep.end is not None else ep.last, tz),
                    ep.node, ep.segment, ep.kind, ep.severity])
        n += 1
    return n


def replay_file(input_path: str | Path, out_path: str | Path, topology: Topology | None,
                params: Params | None = None, autoresolve_s: float = 1800.0) -> tuple[int, int]:
    """Replay a CSV file into an alerts CSV; returns (readings, alerts)."""
    default_creek = topology.creeks[0].id if topology and topology.creeks else "creek"
    tz = topology.creeks[0].timezone if topology and topology.creeks else "UTC"
    p = Path(input_path)
    # Three stages (read, detect, write): a bar on a terminal, plain lines on stderr otherwise.
    with progress(total=3, desc="replay", unit="stages") as bar:
        try:
            with open(p, newline="", encoding="utf-8") as f:
                series = read_csv(f, default_creek)
        except FileNotFoundError:
            raise ReplayInputError(f"input file {p} does not exist") from None
        bar.update(1)
        eps = run(series, topology, params, autoresolve_s)
        bar.update(1)
        buf = io.StringIO()
        n = write_alerts(eps, buf, tz)
        Path(out_path).write_text(buf.getvalue(), encoding="utf-8")
        bar.update(1)
    return sum(int(s.t.size) for s in series), n

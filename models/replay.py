"""``rivermon replay INPUT.csv --out ALERTS.csv``: the live detector over a CSV, offline.

Input (contract): columns ``time`` (RFC 3339 or Unix seconds) and ``node``, then measurement
columns named as in the contract (any subset; empty cells are missing values; ``true``/``false``
for booleans). An optional ``creek`` column picks the creek; otherwise the topology's first.
A node the topology does not know is scored on its own history.

Output: one row per alert, ``start,end,node,segment,kind,severity``, times in RFC 3339.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Iterable, TextIO

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


def read_csv(src: TextIO | BinaryIO, default_creek: str) -> list[Series]:
    """Parse a replay CSV into per-node series (columns validated, values converted)."""
    data = src.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    header = _header(data)
    width = len(header)
    idx = {h: i for i, h in enumerate(header)}
    fields = [h for h in header if h not in ("time", "node", "creek")]
    cells = None if b'"' in data else _Cells.parse(data, width)
    if cells is None:  # quoted cells, blank lines or a ragged row: the careful path
        colv = _careful_columns(data.decode("utf-8"), width)
        if not colv[0]:
            return []
        t = _time_column(colv[idx["time"]])
        nodes = np.array(colv[idx["node"]])
        creeks = np.array(colv[idx["creek"]]) if "creek" in idx else None
        values = {h: _checked_column(h, colv[idx[h]]) for h in fields}
        keys = nodes if creeks is None else np.char.add(np.char.add(creeks, "/"), nodes)
        uniq, inv = np.unique(keys, return_inverse=True)
        names = [str(k) for k in uniq]
    else:
        if cells.rows == 0:
            return []
        t = cells.times(idx["time"])
        values = {h: cells.numbers(idx[h], h) for h in fields}
        names, inv = cells.keys(idx["node"], idx.get("creek"))
    order = np.lexsort((t, inv))
    cuts = np.flatnonzero(np.diff(inv[order])) + 1
    out = []
    for grp in np.split(order, cuts):
        key = names[inv[grp[0]]]
        creek, node = key.split("/", 1) if "creek" in idx else (default_creek, key)
        out.append(Series(creek, node, t[grp], {h: v[grp] for h, v in values.items()}))
    return out


def _header(data: bytes) -> list[str]:
    """The validated header row."""
    if not data or data.isspace():
        raise ReplayInputError("the input is empty: expected a header with time,node,...")
    nl = data.find(b"\n")
    line = (data if nl < 0 else data[:nl]).decode("utf-8")
    row = next(csv.reader([line])) if '"' in line else line.rstrip("\r").split(",")
    header = [h.strip() for h in row]
    for need in ("time", "node"):
        if need not in header:
            raise ReplayInputError(f"the header has no {need!r} column (it has: {', '.join(header)})")
    for h in header:
        if h not in ("time", "node", "creek") and not FIELD_RE.match(h):
            raise ReplayInputError(f"column {h!r} is not a measurement name ([a-z][a-z0-9_]{{0,63}})")
    return header


def _careful_columns(text: str, width: int) -> list[list[str]]:
    """Columns of cells through the csv module (quoted cells) or line by line (blank lines, a
    ragged row: says which line)."""
    if '"' in text:
        body = list(csv.reader(io.StringIO(text)))[1:]
        for i, r in enumerate(body):
            if len(r) != width:
                raise ReplayInputError(f"line {i + 2}: {len(r)} cells, the header has {width}")
        return [list(c) for c in zip(*body)] if body else [[] for _ in range(width)]
    lines = [ln for ln in text.splitlines()[1:] if ln]
    for i, ln in enumerate(lines):
        if ln.count(",") != width - 1:
            raise ReplayInputError(f"line {i + 2}: {ln.count(',') + 1} cells, the header has {width}")
    flat = ",".join(lines).split(",") if lines else []
    return [flat[i::width] for i in range(width)]


def _time_column(col: list[str]) -> np.ndarray:
    try:
        return np.fromiter(map(float, col), dtype=float, count=len(col))
    except ValueError:
        return np.array([parse_time(v, i + 2) for i, v in enumerate(col)], dtype=float)


def _checked_column(h: str, col: list[str]) -> np.ndarray:
    try:
        return _column(col)
    except ValueError:
        bad = next(i for i, v in enumerate(col) if not _is_num(v))
        raise ReplayInputError(f"line {bad + 2}: {h} {col[bad][:40]!r} is not a number") from None


# Cell kinds found by the scan.
_NUMBER, _EMPTY, _BOOL, _OTHER = 0, 1, 2, 3
_BLOCK = (1 << 20) - 1  # bytes scanned at once: the per-cell counts are packed in 20 bits
_P10U = 10 ** np.arange(20, dtype=np.uint64)
_P10F = 10.0 ** np.arange(23)
_MASK = (1 << 20) - 1
_CODE = np.zeros(256, np.int64)  # what each byte adds to the packed counts
_CODE[48:58] = 1
_CODE[46] = 1 << 20
_CODE[[43, 45]] = 1 << 40


class _Cells:
    """The body of an unquoted CSV scanned at numpy speed: where every cell starts and ends, and
    the value of every plain decimal (``[+-]digits[.digits]``, at most 15 digits), empty and
    ``true``/``false`` cell. Python's float() per cell was most of a replay's parsing time; a
    plain decimal m / 10**k with m < 2**53 is exactly what float() gives (one correctly rounded
    division), and any other cell is left to Python as before."""

    def __init__(self, body: bytes, width: int,
                 parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
        # per block of lines: every cell's start, end, value and kind, row by row; the columns
        # are gathered from the blocks only when asked for (one big array per cell property
        # would cost more to allocate than to fill)
        self.body, self.width, self.parts = body, width, parts
        self.rows = sum(p[0].size for p in parts) // width

    def _col(self, prop: int, j: int) -> np.ndarray:
        """Property ``prop`` (0 start, 1 end, 2 value, 3 kind) of column ``j``'s cells."""
        cols = [p[prop][j::self.width] for p in self.parts]
        return np.concatenate(cols) if len(cols) != 1 else cols[0].copy()

    @classmethod
    def parse(cls, data: bytes, width: int) -> "_Cells | None":
        """None when the body needs the careful path (a blank line or a ragged row: either
        leaves a line without ``width`` cells). Lines may end in CR LF; offsets are into
        ``data`` (no copy of the body)."""
        nl = data.find(b"\n")
        lo = len(data) if nl < 0 else nl + 1
        hi = len(data)  # without the trailing line ends
        while hi > lo and data[hi - 1] == 10:
            hi -= 1
            if hi > lo and data[hi - 1] == 13:
                hi -= 1
        if hi == lo:
            return cls(b"", width, [])
        stop = data.find(b"\n", hi)
        if stop < 0:  # no newline at the end of the file
            data, lo, stop = data[lo:] + b"\n", 0, len(data) - lo
        parts = []
        a = lo
        while a <= stop:
            b = stop + 1 if stop + 1 - a <= _BLOCK else data.rfind(b"\n", a, a + _BLOCK) + 1
            if b <= a:
                return None  # a line longer than a block: not a replay CSV worth a fast path
            part = _scan(np.frombuffer(data, np.uint8, b - a, a), a, width, data.count(b"\n", a, b))
            if part is None:
                return None
            parts.append(part)
            a = b
        return cls(data, width, parts)

    def times(self, j: int) -> np.ndarray:
        """The time column: numbers as they are, anything else through parse_time."""
        t = self._col(2, j)
        odd = np.flatnonzero(self._col(3, j) != _NUMBER)
        if odd.size:
            s, e = self._col(0, j), self._col(1, j)
            for i in odd.tolist():
                t[i] = parse_time(self._text(s[i], e[i]), i + 2)
        return t

    def numbers(self, j: int, name: str) -> np.ndarray:
        """A measurement column: empty cells NaN, true/false 1/0, anything else through _num."""
        v = self._col(2, j)
        odd = np.flatnonzero(self._col(3, j) == _OTHER)
        if odd.size:
            s, e = self._col(0, j), self._col(1, j)
            for i in odd.tolist():
                cell = self._text(s[i], e[i])
                try:
                    v[i] = _num(cell)
                except ValueError:
                    raise ReplayInputError(f"line {i + 2}: {name} {cell[:40]!r} is not a number") from None
        return v

    def keys(self, node: int, creek: int | None) -> tuple[list[str], np.ndarray]:
        """The distinct node keys (``creek/node`` with a creek column), sorted, and each row's."""
        keys = self._bytes(node)
        if creek is not None:
            keys = np.char.add(np.char.add(self._bytes(creek), b"/"), keys)
        uniq, inv = np.unique(keys, return_inverse=True)
        return [k.decode("utf-8") for k in uniq.tolist()], inv

    def _text(self, a: int, b: int) -> str:
        return self.body[int(a):int(b)].decode("utf-8")

    def _bytes(self, j: int) -> np.ndarray:
        """Column ``j`` as a fixed-width bytes array, gathered without a Python object per cell."""
        s, e = self._col(0, j), self._col(1, j)
        n = e - s
        w = int(n.max()) if n.size else 0
        if w > 64:
            return np.array([self.body[a:b] for a, b in zip(s.tolist(), e.tolist())])
        w = max(w, 1)
        buf = np.frombuffer(self.body, np.uint8)
        pos = np.minimum(s[:, None] + np.arange(w), buf.size - 1)
        chars = np.where(np.arange(w) < n[:, None], buf[pos], 0).astype(np.uint8)
        return chars.view(f"S{w}").ravel()


def _scan(u: np.ndarray, offset: int, width: int, lines: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Cells of one block (whole lines, ending with a newline): start and end (absolute offsets;
    a line's CR before its LF is no part of its last cell), value and kind; None when a line
    has not ``width`` cells. A cell's digits, dots and signs are counted in one pass (20 bits each)."""
    delim = np.flatnonzero((u == 44) | (u == 10))
    if delim.size != lines * width or (u[delim[width - 1::width]] != 10).any():
        return None
    start = np.empty_like(delim)
    start[0] = 0
    start[1:] = delim[:-1] + 1
    end = delim - ((u[delim] == 10) & (u[delim - 1] == 13))  # delim - 1 >= start when a CR
    diff = np.add.reduceat(np.take(_CODE, u), start)  # each cell's counts (with its delimiter)
    ndig, ndot, nsg = diff & _MASK, (diff >> 20) & _MASK, diff >> 40
    length = end - start
    first = u[start]
    neg = first == 45
    simple = ((ndig >= 1) & (ndig <= 15) & (ndot <= 1) & (length == ndig + ndot + nsg)
              & ((nsg == 0) | ((nsg == 1) & (neg | (first == 43)))))
    dend = np.cumsum(ndig)  # digits before the cell's end and start
    dstart = dend - ndig
    isd = u - np.uint8(48) < 10  # wraps below '0': only digits are < 10
    digits = u[isd].astype(np.uint64) - np.uint64(48)
    # each digit times 10 to the number of digits after it in its cell (capped: a cell with
    # more digits is not simple; uint64 wraps, and differences of the running sum stay exact)
    after = np.repeat(dend - 1, ndig) - np.arange(digits.size)
    run = np.zeros(digits.size + 1, np.uint64)
    np.cumsum(digits * _P10U[np.minimum(after, 19)], out=run[1:])
    mant = run[dend] - run[dstart]
    # digits after the dot (in a plain decimal, everything after its dot): a cell's dot is the
    # one numbered (dots before the cell)
    jdot = np.flatnonzero(u == 46)
    frac = np.zeros(end.size, np.int64)
    if jdot.size:
        has = ndot >= 1
        frac[has] = end[has] - jdot[(np.cumsum(ndot) - ndot)[has]] - 1
    value = mant.astype(float) / _P10F[np.clip(frac, 0, 22)]
    np.negative(value, out=value, where=neg)
    kind = np.where(simple, _NUMBER, _OTHER).astype(np.int8)
    kind[length == 0] = _EMPTY
    value[~simple] = np.nan
    for word, v in ((b"true", 1.0), (b"false", 0.0)):
        cand = np.flatnonzero((length == len(word)) & (first == word[0]))
        hit = np.ones(cand.size, bool)
        for i, ch in enumerate(word):
            hit &= u[start[cand] + i] == ch
        kind[cand[hit]] = _BOOL
        value[cand[hit]] = v
    return start + offset, end + offset, value, kind


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
    lists: dict[tuple[str, str], list[float]] = {}  # as Python lists on first use: bisect on a
    hold = eng.spatial_params.hold_s                 # list is several times np.searchsorted's speed

    def alive(creek: str, node: str, at: float) -> bool:
        ts = lists.get((creek, node))
        if ts is None:
            if (creek, node) not in times:
                return False
            ts = lists[(creek, node)] = times[(creek, node)].tolist()
        i = bisect.bisect_right(ts, at)
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
            with open(p, "rb") as f:
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

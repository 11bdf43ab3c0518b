"""`rivermon replay INPUT.csv --out ALERTS.csv`: the contract's output format and refusals."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import datetime

import numpy as np

from rivermon.core.alerts import format_time
from rivermon.models import inject

T0 = 1795708800.0


def _rivermon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rivermon.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_replay_writes_one_row_per_alert(tmp_path, topology):
    creek = topology.creeks[0]
    rng = np.random.default_rng(2)
    t = T0 + np.arange(0, 1.5 * 86400, 60.0)
    series = inject.creek_series(creek, t, rng)
    inject.discharge(creek, series, t, "ol-l3", T0 + 86400)
    # a node the topology does not know, with RFC 3339 times and a field of its own
    rows = [[format_time(float(x), "UTC").replace("+00:00", "Z"), "stray-1", "", "", repr(300.0 + (i % 7)), ""]
            for i, x in enumerate(t[::5])]
    rows[100][4] = "900"
    src = tmp_path / "in.csv"
    inject.to_csv(src, t, series)
    with open(src) as f:
        header = f.readline().strip().split(",")
    assert header[:2] == ["time", "node"]
    with open(src, "a", newline="") as f:
        w = csv.writer(f)
        for r in rows:
            cells = {"time": r[0], "node": r[1], "turbidity_ntu": r[4]}
            w.writerow([cells.get(h, "") for h in header])
    out = tmp_path / "alerts.csv"
    res = _rivermon("replay", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    with open(out) as f:
        got = list(csv.DictReader(f))
    assert list(got[0].keys()) == ["start", "end", "node", "segment", "kind", "severity"]
    kinds = [(r["kind"], r["node"], r["segment"]) for r in got]
    assert ("discharge", "hl3-s1", "hl-3") in kinds
    assert ("sensor_spike", "stray-1", "unassigned") in kinds
    for r in got:
        assert datetime.fromisoformat(r["start"]) <= datetime.fromisoformat(r["end"])
        assert r["severity"] in ("info", "warning", "critical")
    assert "readings" in res.stderr


def test_replay_refuses_bad_input_clearly(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,node,do_mg_l\n1,a,2\n")
    res = _rivermon("replay", str(bad), "--out", str(tmp_path / "o.csv"))
    assert res.returncode == 2 and "no 'time' column" in res.stderr
    bad.write_text("time,node,do_mg_l\n1795708800,a,abc\n")
    res = _rivermon("replay", str(bad), "--out", str(tmp_path / "o.csv"))
    assert res.returncode == 2 and "line 2: do_mg_l 'abc' is not a number" in res.stderr
    bad.write_text("time,node,do_mg_l\n2026-11-27 10:00,a,5\n")
    res = _rivermon("replay", str(bad), "--out", str(tmp_path / "o.csv"))
    assert res.returncode == 2 and "no UTC offset" in res.stderr
    res = _rivermon("replay", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.csv"))
    assert res.returncode == 2 and "does not exist" in res.stderr


def _parse(text: str) -> list:
    import io

    from rivermon.models.replay import read_csv

    return read_csv(io.BytesIO(text.encode()), "c")


def test_replay_parses_every_cell_as_python_would():
    """The numpy scan of plain decimals gives exactly float(); anything else goes through Python."""
    rng = np.random.default_rng(5)
    cells = []
    for _ in range(4000):
        digits = "".join(rng.choice(list("0123456789"), size=int(rng.integers(1, 18))))
        k = int(rng.integers(0, len(digits) + 1))
        num = digits[:k] + "." + digits[k:] if rng.random() < 0.7 else digits
        cells.append(str(rng.choice(["", "-", "+"])) + num)
    cells += ["", "true", "false", "True", " 2 ", "1e3", "nan", "-inf", "1_0", "-0", "5.", "-.5",
              "0.000000000000001", "123456789012345", "9007199254740993"]
    text = "time,node,do_mg_l\n" + "".join(f"{i},a,{c}\n" for i, c in enumerate(cells))
    got = _parse(text)[0].cols["do_mg_l"]
    want = np.array([float("nan") if c == "" else 1.0 if c.strip().lower() == "true" else
                     0.0 if c == "false" else float(c) for c in cells])
    assert got.tobytes() == want.tobytes()  # bit for bit, the sign of -0.0 included


def test_replay_reads_times_nodes_and_creeks():
    s = _parse("time,node,creek,do_mg_l\r\n2026-11-27T10:00:00Z,b,k2,5\r\n1795708800.5,a,k1,6\r\n"
               "1795708700,a,k1,7\r\n")
    assert [(x.creek, x.node) for x in s] == [("k1", "a"), ("k2", "b")]
    assert s[0].t.tolist() == [1795708700.0, 1795708800.5] and s[0].cols["do_mg_l"].tolist() == [7.0, 6.0]
    assert s[1].t.tolist() == [datetime.fromisoformat("2026-11-27T10:00:00+00:00").timestamp()]


def test_replay_names_the_ragged_line():
    import pytest

    from rivermon.models.replay import ReplayInputError

    # the cell count of the whole file matches the header: only a line-by-line check sees it
    with pytest.raises(ReplayInputError, match="line 2: 3 cells, the header has 4"):
        _parse("time,node,do_mg_l,turbidity_ntu\n1,a,5\n2,a,6,7,8\n")
    with pytest.raises(ReplayInputError, match="line 3: time '' is not"):
        _parse("time,node,do_mg_l\n1,a,5\n,a,6\n")

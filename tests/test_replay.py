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

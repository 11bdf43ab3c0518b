"""``rivermon bench replay``: replay throughput on one core, against its limit."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rivermon.core.config import Config
from rivermon.core.topology import load_topology
from rivermon.models import inject, replay

LIMIT_READINGS_S = 200_000


def bench_replay(args: argparse.Namespace, cfg: Config) -> int:
    """Write a CSV of every sensor node, replay it, print readings/s (engine and end to end)."""
    topo = load_topology(cfg.topology or None)
    creek = topo.creeks[0]
    rng = np.random.default_rng(7)
    t = 1795708800.0 + np.arange(0, args.days * 86400, args.interval)
    series = inject.creek_series(creek, t, rng)
    inject.discharge(creek, series, t, creek.outlets[0].id, float(t[t.size // 2]))
    n = t.size * len(series)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.csv"
        inject.to_csv(src, t, series)
        t0 = time.perf_counter()
        ss = [replay.Series(creek.id, node, t, cols) for node, cols in series.items()]
        replay.run(ss, topo)
        engine_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, alerts = replay.replay_file(src, Path(d) / "out.csv", topo)
        total_s = time.perf_counter() - t0
    eng, tot = n / engine_s, n / total_s
    ok = tot >= LIMIT_READINGS_S
    print(f"replay: {n:,} readings ({len(series)} nodes x {args.days:g} d at {args.interval:g} s)")
    print(f"  detectors only      {eng:12,.0f} readings/s")
    print(f"  CSV in + out, total {tot:12,.0f} readings/s   limit >= {LIMIT_READINGS_S:,}   "
          f"{'PASS' if ok else 'FAIL'}   ({alerts} alerts)")
    return 0 if ok else 1

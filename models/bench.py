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


LIMIT_LIVE_READINGS_S = 22_000  # the ingestor's measured full rate (docs/ingest.md)


def bench_detect(args: argparse.Namespace, cfg: Config) -> int:
    """The live path: `_accepted` JSON arrays -> parse -> engine, as `rivermon detect` runs it."""
    import json

    from rivermon.models.engine import Engine
    from rivermon.models.service import readings_by_node

    topo = load_topology(cfg.topology or None)
    creek = topo.creeks[0]
    rng = np.random.default_rng(7)
    t = 1795708800.0 + np.arange(0, args.days * 86400, args.interval)
    series = inject.creek_series(creek, t, rng)
    inject.discharge(creek, series, t, creek.outlets[0].id, float(t[t.size // 2]))
    payloads = []
    step = max(1, args.batch // len(series))
    for i0 in range(0, t.size, step):
        batch = [{"node": n, "segment": creek.node(n).segment, "kind": "sensor", "ts": float(t[i]),
                  **{k: float(v[i]) for k, v in cols.items()}}
                 for n, cols in series.items() for i in range(i0, min(i0 + step, t.size))]
        payloads.append(json.dumps(batch).encode())
    n = t.size * len(series)
    print(f"detect (live path): {n:,} readings in {len(payloads):,} _accepted messages of ~{args.batch}")
    ok = True
    # one message at a time (a trickle), then as the service drains a busy inbox (up to 500
    # messages merged per creek and fed once)
    for label, group in (("one message per feed", 1), ("inbox drained, <= 500 msgs", 500)):
        eng = Engine(topo)
        t0 = time.perf_counter()
        for g0 in range(0, len(payloads), group):
            items = [r for pl in payloads[g0:g0 + group] for r in json.loads(pl)]
            eng.feed_many(creek.id, [(nd, tt, c) for nd, (tt, c) in readings_by_node(items).items()])
        rate = n / (time.perf_counter() - t0)
        print(f"  {label:28s} {rate:10,.0f} readings/s")
        ok = rate >= LIMIT_LIVE_READINGS_S
    print(f"  busy inbox vs the ingestor's full rate {LIMIT_LIVE_READINGS_S:,}/s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1

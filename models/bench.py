"""``rivermon bench``: replay and live-detector throughput on one core, against their limits."""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rivermon.core.config import Config
from rivermon.core.topology import Topology, load_topology
from rivermon.models import inject, replay

LIMIT_READINGS_S = 200_000



def _bench_series(cfg: Config, days: float, interval: float) -> tuple[Topology, np.ndarray, dict]:
    """Every sensor node of the first creek, ``days`` at ``interval``, with one discharge midway
    (seeded: both benches and every run see the same readings)."""
    topo = load_topology(cfg.topology or None)
    creek = topo.creeks[0]
    t = 1795708800.0 + np.arange(0, days * 86400, interval)
    series = inject.creek_series(creek, t, np.random.default_rng(7))
    inject.discharge(creek, series, t, creek.outlets[0].id, float(t[t.size // 2]))
    return topo, t, series

def bench_replay(args: argparse.Namespace, cfg: Config) -> int:
    """What ``rivermon replay IN.csv --out ALERTS.csv`` does (the same call, the same settings),
    on a generated CSV of every sensor node, timed over several runs; the median wall-clock rate
    is judged against the limit. Process start-up (imports, ~0.5 s) is not counted: the figure
    is a throughput. A last run, stage by stage, says where the time goes."""
    from rivermon.models.service import params_from_config

    topo, t, series = _bench_series(cfg, args.days, args.interval)
    creek = topo.creeks[0]
    n = t.size * len(series)
    params, autoresolve_s = params_from_config(cfg), float(cfg.alert_autoresolve_s)
    wall: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.csv", Path(d) / "alerts.csv"
        inject.to_csv(src, t, series)
        for _ in range(args.runs):
            w0, c0 = time.perf_counter(), time.process_time()
            read, alerts = replay.replay_file(src, out, topo, params, autoresolve_s=autoresolve_s)
            wall.append(n / (time.perf_counter() - w0))
            cpu.append(n / max(time.process_time() - c0, 1e-9))
        assert read == n
        stages = _stages(src, topo, params, autoresolve_s, creek.timezone)
    rate = statistics.median(wall)
    ok = rate >= LIMIT_READINGS_S
    print(f"replay: {n:,} readings ({len(series)} nodes x {args.days:g} d at {args.interval:g} s): "
          f"read the CSV, detect, write the alerts CSV, as `rivermon replay` does; {args.runs} runs")
    print("  wall clock  " + " ".join(f"{r:9,.0f}" for r in wall) + f"   median {rate:9,.0f} readings/s")
    print("  CPU time    " + " ".join(f"{r:9,.0f}" for r in cpu)
          + f"   median {statistics.median(cpu):9,.0f} readings/s")
    print("  one more run, CPU s per stage: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    print(f"  median wall clock {rate:,.0f} readings/s   limit >= {LIMIT_READINGS_S:,}   "
          f"{'PASS' if ok else 'FAIL'}   ({alerts} alerts)")
    return 0 if ok else 1


def _stages(src: Path, topo, params, autoresolve_s: float, tz: str) -> dict[str, float]:
    """The three stages of :func:`replay.replay_file`, called one by one and timed (CPU)."""
    out: dict[str, float] = {}
    c0 = time.process_time()
    with open(src, "rb") as f:
        series = replay.read_csv(f, topo.creeks[0].id)
    c1 = time.process_time()
    eps = replay.run(series, topo, params, autoresolve_s)
    c2 = time.process_time()
    replay.write_alerts(eps, io.StringIO(), tz)
    c3 = time.process_time()
    out["read CSV"], out["detectors"], out["write alerts"] = c1 - c0, c2 - c1, c3 - c2
    return out


LIMIT_LIVE_READINGS_S = 22_000  # the ingestor's measured full rate (docs/ingest.md)


def bench_detect(args: argparse.Namespace, cfg: Config) -> int:
    """The live path: `_accepted` JSON arrays -> parse -> engine, as `rivermon detect` runs it."""
    import json

    from rivermon.models.engine import Engine
    from rivermon.models.service import readings_by_node

    topo, t, series = _bench_series(cfg, args.days, args.interval)
    creek = topo.creeks[0]
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

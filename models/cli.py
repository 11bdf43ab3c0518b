"""Command-line entry points of rivermon.models: detect, replay, eval, and the replay benchmark."""

from __future__ import annotations

import argparse
import sys
import time

from rivermon.core.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rivermon.cli import add_setting_flags

    p = sub.add_parser("detect", parents=[common],
                       help="run the live anomaly model (MQTT accepted readings -> alerts)")
    add_setting_flags(p, "detect_client_id", "alert_autoresolve_s", "detect_state_interval_s")
    p.set_defaults(func=_detect)

    p = sub.add_parser("replay", parents=[common],
                       help="run the live detector over a CSV and write one row per alert")
    p.add_argument("input", metavar="INPUT.csv", help="columns time,node,<measurements...>")
    p.add_argument("--out", required=True, metavar="ALERTS.csv",
                   help="where to write start,end,node,segment,kind,severity")
    add_setting_flags(p, "alert_autoresolve_s", "detect_do_low_mg_l", "detect_standards_duration_s")
    p.set_defaults(func=_replay)

    p = sub.add_parser("eval", parents=[common],
                       help="score the model and the baselines on simulator scenarios and real data")
    p.add_argument("--datasets", default="all",
                   help="comma list: sim, leigh, gecco, neon, synthetic, or all [default: all]")
    p.add_argument("--data-dir", default="",
                   help="the real labeled data (default: ../shared/data from the checkout)")
    p.add_argument("--seed", type=int, default=1, help="seed of simulator runs and injections")
    p.add_argument("--quick", action="store_true", help="smaller runs (for tests)")
    p.add_argument("--json", metavar="FILE", default="", help="also write the figures as JSON")
    p.set_defaults(func=_eval)


def register_bench(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("replay", parents=[common],
                       help="replay throughput (readings/s on one core) against its 200,000/s limit")
    p.add_argument("--days", type=float, default=7.0, help="simulated days of 1-minute data per node")
    p.add_argument("--interval", type=float, default=60.0, help="sampling interval, seconds")
    p.add_argument("--runs", type=int, default=5, help="timed runs; the median is judged")
    p.set_defaults(func=_bench_replay)
    p = sub.add_parser("detect", parents=[common],
                       help="the live detector's throughput on _accepted batches against the ingestor's rate")
    p.add_argument("--days", type=float, default=2.0, help="simulated days of data per node")
    p.add_argument("--interval", type=float, default=60.0, help="sampling interval, seconds")
    p.add_argument("--batch", type=int, default=100, help="readings per _accepted message")
    p.set_defaults(func=_bench_detect)


def _detect(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.models.service import DetectService

    return DetectService(cfg).run()


def _replay(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.core.topology import load_topology
    from rivermon.models.replay import ReplayInputError, replay_file
    from rivermon.models.service import params_from_config

    topo = load_topology(cfg.topology or None)
    t0 = time.perf_counter()  # the replay itself, not the imports (~0.3 s) that precede it
    try:
        n, alerts = replay_file(args.input, args.out, topo, params_from_config(cfg),
                                autoresolve_s=float(cfg.alert_autoresolve_s))
    except ReplayInputError as exc:
        print(f"rivermon replay: {args.input}: {exc}", file=sys.stderr)
        return 2
    el = time.perf_counter() - t0
    print(f"replayed {n} readings in {el:.2f} s ({n / max(el, 1e-9):,.0f}/s): "
          f"{alerts} alerts written to {args.out}", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.models.evaluate import main as eval_main

    return eval_main(args, cfg)


def _bench_replay(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.models.bench import bench_replay

    return bench_replay(args, cfg)


def _bench_detect(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.models.bench import bench_detect

    return bench_detect(args, cfg)

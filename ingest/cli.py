"""Command-line entry points of rivermon.ingest: `rivermon ingest` and `rivermon bench ingest`."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config

INGEST_FLAGS = ("ingest_client_id", "ingest_share_group", "ingest_session_expiry_s",
                "ingest_batch_size", "ingest_batch_ms", "ingest_spool_max_mb",
                "ingest_rejects_per_hour", "ingest_rejects_keep_days", "ingest_fsync",
                "ingest_publish_accepted", "ingest_metrics_port")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rivermon.cli import add_setting_flags

    p = sub.add_parser("ingest", parents=[common],
                       help="MQTT telemetry and status -> durable spool -> InfluxDB",
                       description="Subscribe to the contract's telemetry and status topics, "
                                   "validate, spool durably, acknowledge, write to InfluxDB.")
    add_setting_flags(p, *INGEST_FLAGS)
    p.add_argument("--leave", action="store_true",
                   help="retire this client id: unsubscribe, ingest what the broker still holds "
                        "for it, end its session and exit (for a share-group member removed for good)")
    p.set_defaults(func=_ingest)


def register_bench(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common],
                       help="ingest throughput against its limits (own mosquitto and influxd)")
    p.add_argument("--readings", type=int, default=60000,
                   help="readings per one-reading and per backlog-array run [default: 60000]")
    p.add_argument("--array-readings", type=int, default=300000,
                   help="readings in the 100-reading backlog-array runs [default: 300000]")
    p.add_argument("--nodes", type=int, default=30, help="simulated nodes [default: 30]")
    p.add_argument("--backlog", type=int, default=60000,
                   help="one-reading messages queued while the ingestor is stopped [default: 60000]")
    p.add_argument("--ingestors", type=int, default=0,
                   help="ingestor processes on a shared subscription (0: 1 and 2) [default: 0]")
    p.add_argument("--publishers", type=int, default=0,
                   help="mosquitto_pub processes at once (one per node; 0: all nodes) [default: 0]")
    p.add_argument("--only", default="one,arrays,drain,latency",
                   help="comma-separated runs: one, arrays, drain, latency [default: all]")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(func=_bench)


def _ingest(args: argparse.Namespace, cfg: Config) -> int:
    from .run import run_ingest

    return run_ingest(cfg, leave=args.leave)


def _bench(args: argparse.Namespace, cfg: Config) -> int:
    from .bench import run_bench

    return run_bench(args, cfg)

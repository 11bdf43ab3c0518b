"""Command-line entry points of rivermon.ingest (stub until its issue fills it)."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common], help="ingest (not built yet)")
    p.set_defaults(func=_ingest)


def _ingest(args: argparse.Namespace, cfg: Config) -> int:
    raise SystemExit("rivermon ingest: not built yet")

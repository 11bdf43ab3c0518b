"""`rivermon up`: the whole service on one machine (filled in below)."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("up", parents=[common], help="run broker, database, ingestor, model, panel and simulator")
    p.set_defaults(func=_up)


def _up(args: argparse.Namespace, cfg: Config) -> int:
    raise SystemExit("rivermon up: not built yet")

"""Command-line entry points of rivermon.sim (stub until its issue fills it)."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("sim", parents=[common], help="sim (not built yet)")
    p.set_defaults(func=_sim)


def _sim(args: argparse.Namespace, cfg: Config) -> int:
    raise SystemExit("rivermon sim: not built yet")

"""Command-line entry points of rivermon.models (stub until its issue fills it)."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("detect", parents=[common], help="detect (not built yet)")
    p.set_defaults(func=_detect)
    p = sub.add_parser("replay", parents=[common], help="replay (not built yet)")
    p.set_defaults(func=_replay)


def _detect(args: argparse.Namespace, cfg: Config) -> int:
    raise SystemExit("rivermon detect: not built yet")


def _replay(args: argparse.Namespace, cfg: Config) -> int:
    raise SystemExit("rivermon replay: not built yet")

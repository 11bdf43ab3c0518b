"""Command-line entry points of rivermon.web (stub until its issue fills it)."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("web", parents=[common], help="web (not built yet)")
    p.set_defaults(func=_web)


def _web(args: argparse.Namespace, cfg: Config) -> int:
    raise SystemExit("rivermon web: not built yet")

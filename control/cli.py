"""Command-line entry points of rivermon.control: `rivermon control` and `rivermon control-eval`."""

from __future__ import annotations

import argparse

from rivermon.core.config import Config

CONTROL_FLAGS = ("control_client_id", "control_on_below_mg_l", "control_off_above_mg_l",
                 "control_night_comfort_mg_l", "control_min_on_s", "control_min_off_s",
                 "control_falling_mg_l_h", "control_night", "control_fountain_hours", "control_stale_s", "control_confirm_s",
                 "control_min_power_frac", "control_tick_s", "control_dry_run")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rivermon.cli import add_setting_flags

    from . import evaluate

    p = sub.add_parser("control", parents=[common],
                       help="aeration controller: aerators from each segment's DO, with overrides",
                       description="Subscribe to accepted readings, status and alerts; command each "
                                   "segment's aerators on the contract's cmd topic; check that they "
                                   "confirm (see docs/aeration.md).")
    add_setting_flags(p, *CONTROL_FLAGS)
    p.set_defaults(func=_control)
    e = sub.add_parser("control-eval", parents=[common],
                       help="energy and DO of always-on, timer and rivermon's controller in the simulator",
                       description="The same as `rivermon eval aeration`: a simulated month under "
                                   "three aeration policies; prints the table and PASS/FAIL.")
    add_setting_flags(e, *CONTROL_FLAGS[1:-3])
    evaluate.add_arguments(e)
    e.set_defaults(func=_eval)


def _control(args: argparse.Namespace, cfg: Config) -> int:
    from .service import ControlService

    return ControlService(cfg).run()


def _eval(args: argparse.Namespace, cfg: Config) -> int:
    from . import evaluate

    return evaluate.run(args, cfg)

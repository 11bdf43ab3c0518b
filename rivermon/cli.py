"""The ``rivermon`` command: one subcommand per service or tool.

Each part registers its own subcommands (``register(subparsers, common)`` in its ``cli``
module) and keeps heavy imports inside the function that runs them, so ``rivermon --help``
stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

from rivermon.core.logs import setup_logging
from rivermon.core.config import BY_NAME, Config, ConfigError, load_config, render_markdown
from rivermon.core.topology import TopologyError

# Flags every command accepts; each maps onto the setting of the same name.
COMMON_FLAGS = ("topology", "broker", "influx", "influx_db", "topic_prefix", "mqtt_protocol",
                "var", "log_level")


def common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (see `rivermon config`)")
    for name in COMMON_FLAGS:
        s = BY_NAME[name]
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                       metavar=name.upper() if name not in ("broker", "influx") else "URL",
                       help=f"{s.help} [default: {s.default!r}; env {s.env}]")
    return p


def add_setting_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Expose more settings as flags on one subcommand (``--web-port`` ...)."""
    for name in names:
        s = BY_NAME[name]
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                            help=f"{s.help} [default: {s.default!r}; env {s.env}]")


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = {k: v for k, v in vars(args).items() if k in BY_NAME and v is not None}
    return load_config(getattr(args, "config", None), overrides=overrides)


def _cmd_config(args: argparse.Namespace, cfg: Config) -> int:
    if args.markdown:
        print(render_markdown())
        return 0
    for name, value in cfg.items():
        print(f"{name} = {value!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rivermon",
        description="River ecological monitoring: MQTT -> InfluxDB -> anomaly model -> panel.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_parser()
    p = sub.add_parser("config", parents=[common], help="print the resolved configuration")
    p.add_argument("--markdown", action="store_true", help="print the configuration reference")
    p.set_defaults(func=_cmd_config)
    from rivermon import nodes, ops, up
    from rivermon.control import cli as control_cli
    from rivermon.ingest import cli as ingest_cli
    from rivermon.models import cli as models_cli
    from rivermon.notify import cli as notify_cli
    from rivermon.sim import cli as sim_cli
    from rivermon.web import cli as web_cli

    bench = sub.add_parser("bench", help="benchmarks that print their figures against their limits")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for module in (up, ingest_cli, models_cli, web_cli, sim_cli, nodes, notify_cli, ops, control_cli):
        module.register(sub, common)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub, common)
    return parser


# `rivermon eval aeration ...` is the aeration controller's evaluation (control/evaluate.py),
# registered as `control-eval`; `rivermon eval ...` without it scores the anomaly model.
ALIASES = {("eval", "aeration"): ["control-eval"]}


def _expand_aliases(argv: list[str]) -> list[str]:
    for words, replacement in ALIASES.items():
        if tuple(argv[:len(words)]) == words:
            return [*replacement, *argv[len(words):]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_expand_aliases(list(sys.argv[1:] if argv is None else argv)))
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"rivermon: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level)
    func: Callable[[argparse.Namespace, Config], Any] = args.func
    try:
        return int(func(args, cfg) or 0)
    except (ConfigError, TopologyError, ValueError) as exc:
        print(f"rivermon {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Command-line entry points of rivermon.notify: ``rivermon notify`` and ``rivermon notify-sink``."""

from __future__ import annotations

import argparse
import json
import time

from rivermon.core.config import Config

NOTIFY_FLAGS = ("notify_routes", "notify_panel_url", "notify_client_id", "notify_remind_s",
                "notify_escalate_s", "notify_quiet_hours", "notify_retry_base_s",
                "notify_retry_max_s", "timezone")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rivermon.cli import add_setting_flags

    p = sub.add_parser(
        "notify", parents=[common], help="send alert events to WeCom, DingTalk and webhooks",
        description="Subscribe to {prefix}/+/alerts and deliver each alert, routed by severity, "
                    "kind class and segment, to the targets of the routes file (docs/notify.md), "
                    "with reminders, escalation, quiet hours and a durable outbox.")
    add_setting_flags(p, *NOTIFY_FLAGS)
    p.add_argument("--check", action="store_true",
                   help="check the routes file, print its targets and routes, and exit")
    p.add_argument("--status", action="store_true",
                   help="print the outbox: messages per target and state, oldest waiting, last error")
    p.set_defaults(func=_notify)

    s = sub.add_parser(
        "notify-sink", parents=[common], help="a local webhook receiver that prints what arrives",
        description="Listen on 127.0.0.1 and answer like a WeCom/DingTalk robot (for demos and "
                    "tests); paths starting with /dingtalk are signature-checked with --dingtalk-secret.")
    s.add_argument("--port", type=int, default=9100, help="port to listen on [default: 9100]")
    s.add_argument("--dingtalk-secret", default=None, help="verify DingTalk signatures with this secret")
    s.set_defaults(func=_sink)


def register_bench(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("notify", parents=[common],
                       help="alert latency to a local WeCom receiver and burst throughput, against limits")
    p.add_argument("--alerts", type=int, default=500, help="alerts in the burst [default: 500]")
    p.add_argument("--trickle", type=int, default=30, help="alerts sent at 10/s for latency [default: 30]")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.notify.bench import bench_notify

    return bench_notify(args, cfg)


def _notify(args: argparse.Namespace, cfg: Config) -> int:
    if args.check:
        return _check(cfg)
    if args.status:
        return _status(cfg)
    from rivermon.notify.service import run_notify

    return run_notify(cfg)


def _check(cfg: Config) -> int:
    from rivermon.notify.quiet import parse_quiet_hours
    from rivermon.notify.routes import load_routes

    if not cfg.notify_routes:
        raise ValueError("no routes file: set notify_routes (--notify-routes FILE)")
    parse_quiet_hours(cfg.notify_quiet_hours, cfg.timezone)
    routes = load_routes(cfg.notify_routes, cfg.timezone)
    print(f"{routes.source}: {len(routes.targets)} target(s), {len(routes.routes)} route(s)")
    for t in routes.targets.values():
        print(f"  target {t.name}: {t.type} {t.msgtype} {t.display_url()}"
              + (" (signed)" if t.secret else ""))
    for r in routes.routes:
        crit = {k: sorted(v) for k, v in (("severity", r.severity), ("audience", r.audience),
                                          ("kinds", r.kinds), ("segments", r.segments),
                                          ("creeks", r.creeks)) if v is not None}
        if r.min_severity:
            crit["min_severity"] = r.min_severity
        print(f"  route {r.name}: {json.dumps(crit, ensure_ascii=False) if crit else 'every alert'}"
              f" -> {', '.join(r.targets)}" + (f"; escalate to {', '.join(r.escalate_to)}" if r.escalate_to else ""))
    return 0


def _status(cfg: Config) -> int:
    from rivermon.notify.outbox import Outbox
    from rivermon.notify.service import outbox_path

    path = outbox_path(cfg)
    if not path.exists():
        raise ValueError(f"no outbox at {path} (has `rivermon notify` run with this --var?)")
    box = Outbox(path)
    try:
        status = box.status()
    finally:
        box.close()
    ev = status["events"]
    print(f"events: {ev['stored']} stored, {ev['pending']} not yet routed, {ev['refused']} refused")
    now = time.time()
    for name, t in sorted(status["targets"].items()):
        counts = ", ".join(f"{t.get(s, 0)} {s}" for s in ("queued", "held", "delivered", "digested"))
        oldest = f"; oldest queued {now - t['oldest_queued']:.0f} s ago" if t.get("oldest_queued") else ""
        err = f"; last error: {t['last_error']}" if t.get("last_error") else ""
        print(f"  {name}: {counts}{oldest}{err}")
    return 0


def _sink(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.notify.receiver import Received, Receiver

    def show(r: Received) -> None:
        sig = "" if r.signature_ok is None else (" signature ok" if r.signature_ok else " BAD SIGNATURE")
        print(f"--- {time.strftime('%H:%M:%S')} POST {r.path}{sig}\n{r.content()}", flush=True)

    receiver = Receiver(args.port, args.dingtalk_secret, on_receive=show).start()
    print(f"notify-sink listening on {receiver.url()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        receiver.stop()

"""``rivermon web`` (the panel on a threaded WSGI server), ``rivermon user`` and ``rivermon bench web``."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading

from rivermon.core.config import Config

log = logging.getLogger("rivermon.web")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rivermon.cli import add_setting_flags

    p = sub.add_parser("web", parents=[common], help="the panel: creek view, alerts, trends, JSON API")
    add_setting_flags(p, "web_host", "web_port", "web_public_view", "web_cookie_secure")
    p.set_defaults(func=_web)

    u = sub.add_parser("user", parents=[common], help="panel accounts: add, list, passwd, role, delete")
    usub = u.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", parents=[common], help="add a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("viewer", "cleaner", "operator", "admin"))
    add.add_argument("--password", help="the password (else $RIVERMON_USER_PASSWORD, else a prompt)")
    add.set_defaults(func=_user_add)
    ls = usub.add_parser("list", parents=[common], help="list users and roles")
    ls.set_defaults(func=_user_list)
    pw = usub.add_parser("passwd", parents=[common], help="set a user's password")
    pw.add_argument("name")
    pw.add_argument("--password", help="the password (else $RIVERMON_USER_PASSWORD, else a prompt)")
    pw.set_defaults(func=_user_passwd)
    role = usub.add_parser("role", parents=[common], help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=("viewer", "cleaner", "operator", "admin"))
    role.set_defaults(func=_user_role)
    rm = usub.add_parser("delete", parents=[common], help="delete a user")
    rm.add_argument("name")
    rm.set_defaults(func=_user_delete)


def register_bench(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("web", parents=[common],
                       help="panel speed: /api/segments and a one-year trend under concurrent clients")
    p.add_argument("--days", type=int, default=365, help="days of 1-minute data per node to load")
    p.add_argument("--clients", type=int, default=20, help="concurrent HTTP clients")
    p.add_argument("--requests", type=int, default=400, help="requests per endpoint")
    p.add_argument("--keep", action="store_true", help="reuse data already loaded in --influx-db")
    p.set_defaults(func=_bench)


def _web(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.core.influx import InfluxClient, InfluxError
    from .app import create_app
    from .server import make_panel_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    influx = InfluxClient(cfg.influx, cfg.influx_db)
    try:
        influx.ensure_database()
    except InfluxError as exc:
        log.warning("InfluxDB not reachable at start; /healthz says so until it is",
                    extra={"error": str(exc)})
    app = create_app(cfg, influx=influx, live=True, mqtt=True, aggregates=True)
    server = make_panel_server(app, cfg.web_host, int(cfg.web_port))
    stopping = threading.Event()

    def stop(signum, frame) -> None:
        if not stopping.is_set():
            stopping.set()
            app.extensions["rivermon"].hub.stop()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("panel listening", extra={"url": f"http://{cfg.web_host}:{server.server_port}/",
                                        "public_view": cfg.web_public_view})
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.extensions["rivermon"].close()
        influx.close()
    return 0


def _store(cfg: Config):
    from pathlib import Path

    from .users import UserStore
    return UserStore(Path(cfg.var) / "web.sqlite")


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return args.password
    if os.environ.get("RIVERMON_USER_PASSWORD"):
        return os.environ["RIVERMON_USER_PASSWORD"]
    if not sys.stdin.isatty():
        raise ValueError("no password: pass --password, set RIVERMON_USER_PASSWORD, or run in a terminal")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _user_add(args: argparse.Namespace, cfg: Config) -> int:
    user = _store(cfg).add(args.name, args.role, _password(args))
    print(f"user {user.name} added with role {user.role}")
    return 0


def _user_list(args: argparse.Namespace, cfg: Config) -> int:
    for user in _store(cfg).all():
        print(f"{user.name}\t{user.role}")
    return 0


def _user_passwd(args: argparse.Namespace, cfg: Config) -> int:
    _store(cfg).set_password(args.name, _password(args))
    print(f"password of {args.name} changed")
    return 0


def _user_role(args: argparse.Namespace, cfg: Config) -> int:
    _store(cfg).set_role(args.name, args.role)
    print(f"{args.name} is now {args.role}")
    return 0


def _user_delete(args: argparse.Namespace, cfg: Config) -> int:
    _store(cfg).delete(args.name)
    print(f"user {args.name} deleted")
    return 0


def _bench(args: argparse.Namespace, cfg: Config) -> int:
    from .bench import run_bench
    return run_bench(args, cfg)

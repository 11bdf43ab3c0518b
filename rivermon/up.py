"""`rivermon up`: the whole service on one machine, from one command.

Starts, as child processes with their data under ``--var``: a Mosquitto broker and an InfluxDB
server (unless ``--broker``/``--influx`` point at servers that already run), then the ingestor,
the model, the panel and the simulated creek in real time. Waits until each is healthy, prints
the panel's URL, restarts a service that dies, and on Ctrl-C or SIGTERM stops them all, newest
first. Children also get SIGTERM from the kernel if this process dies (PR_SET_PDEATHSIG), so no
process is left behind even after a kill -9 of ``rivermon up``.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from rivermon.core import servers
from rivermon.core.config import BY_NAME, Config
from rivermon.core.influx import InfluxClient
from rivermon.core.topology import load_topology

log = logging.getLogger("rivermon.up")

RESTART_DELAY_S = 2.0
SIM_HISTORY_S = 24 * 3600
# `rivermon up` is the demo: one account per role so every view can be tried.
DEMO_ACCOUNTS = (("admin", "admin"), ("operator", "operator"), ("cleaner", "cleaner"),
                 ("office", "viewer"))
HEALTH_TIMEOUT_S = 60.0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "up", parents=[common],
        help="run broker, database, ingestor, model, panel and simulated creek",
        description="Start the whole service with a simulated creek. Without --broker/--influx "
                    "it starts its own Mosquitto and InfluxDB on free loopback ports.")
    p.add_argument("--no-sim", action="store_true", help="run without the simulated creek")
    p.add_argument("--scenario", default=None, help="simulator scenario (default: the simulator's own)")
    p.add_argument("--web-port", dest="web_port", type=int, default=None,
                   help=f"panel port [default: {BY_NAME['web_port'].default}, or a free one if taken]")
    p.set_defaults(func=run_up)


# ---- child processes ------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child: ask the kernel for SIGTERM when the parent dies (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


@dataclass
class Child:
    """One rivermon service run as ``python -m rivermon.cli <argv>``, restarted if it dies."""

    name: str
    argv: list[str]
    log_path: Path
    health: Callable[[], bool] = lambda: True
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    restarts: int = 0
    stopping: bool = field(default=False, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rivermon.cli", *self.argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env}, preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping = True
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False
    return check


def _explicit(args: argparse.Namespace, cfg: Config, name: str) -> bool:
    """Did the user point at an existing server (flag, environment or config file)?"""
    return (getattr(args, name, None) is not None or BY_NAME[name].env in os.environ
            or cfg[name] != BY_NAME[name].default)


# ---- the stack ----------------------------------------------------------------------------

class Stack:
    """Servers and services of one `rivermon up`, stopped in reverse order."""

    def __init__(self, args: argparse.Namespace, cfg: Config):
        self.args = args
        self.cfg = cfg
        self.var = Path(cfg.var).resolve()
        self.servers: list[servers.ManagedServer] = []
        self.children: list[Child] = []
        self.stop_event = threading.Event()

    def start_servers(self) -> tuple[str, str]:
        broker, influx = self.cfg.broker, self.cfg.influx
        if not _explicit(self.args, self.cfg, "broker"):
            srv = servers.mosquitto(self.var / "mosquitto", self.cfg.up_broker_port).start()
            self.servers.append(srv)
            broker = f"mqtt://127.0.0.1:{srv.port}"
            print(f"broker    {broker}  (data {srv.data_dir})", flush=True)
        if not _explicit(self.args, self.cfg, "influx"):
            isrv = servers.influxd(self.var / "influxdb", self.cfg.up_influx_port).start(timeout=60)
            self.servers.append(isrv)
            influx = isrv.url
            print(f"influxdb  {influx}  (data {isrv.data_dir})", flush=True)
        client = InfluxClient(influx, self.cfg.influx_db)
        try:
            client.ensure_database()
        finally:
            client.close()
        return broker, influx

    def common_argv(self, broker: str, influx: str) -> list[str]:
        argv = ["--broker", broker, "--influx", influx, "--var", str(self.var),
                "--influx-db", self.cfg.influx_db, "--topic-prefix", self.cfg.topic_prefix,
                "--log-level", self.cfg.log_level]
        if self.cfg.topology:
            argv += ["--topology", str(Path(self.cfg.topology).resolve())]
        if getattr(self.args, "config", None):
            argv += ["--config", str(Path(self.args.config).resolve())]
        return argv

    def plan(self, broker: str, influx: str) -> list[Child]:
        common = self.common_argv(broker, influx)
        logs = self.var / "logs"
        metrics_port = servers.free_port()
        web_port = self.args.web_port or self.cfg.web_port
        if not _port_free(web_port):
            taken, web_port = web_port, servers.free_port()
            print(f"port {taken} is taken; the panel uses {web_port}", flush=True)
        self.web_url = f"http://127.0.0.1:{web_port}/"
        web_env = {BY_NAME["web_port"].env: str(web_port)}
        # The demo shows the creek view to anyone on this machine unless configured otherwise.
        if not _explicit(self.args, self.cfg, "web_public_view"):
            web_env[BY_NAME["web_public_view"].env] = "true"
        children = [
            # Ports go through the environment, which every subcommand reads via the config.
            Child("ingest", ["ingest", *common], logs / "ingest.log",
                  _http_ok(f"http://127.0.0.1:{metrics_port}/readyz"),
                  {BY_NAME["ingest_metrics_port"].env: str(metrics_port)}),
            Child("detect", ["detect", *common], logs / "detect.log"),
            Child("web", ["web", *common], logs / "web.log",
                  _http_ok(f"http://127.0.0.1:{web_port}/healthz"), web_env),
            Child("control", ["control", *common], logs / "control.log"),
        ]
        if self.cfg.notify_routes:
            argv = ["notify", *common, "--notify-routes", str(Path(self.cfg.notify_routes).resolve())]
            if not _explicit(self.args, self.cfg, "notify_panel_url"):
                argv += ["--notify-panel-url", self.web_url.rstrip("/")]
            children.append(Child("notify", argv, logs / "notify.log"))
        if not self.args.no_sim:
            # Start a day back: the simulator catches up at once, so every segment shows values
            # and a day of history as soon as the panel opens, and the model has learned each
            # node's normal day (its warm-up is a few hours) before the live part begins.
            sim = ["sim", *common, "--speed", "1", "--truth", str(self.var / "sim-truth.jsonl"),
                   "--start", str(int(time.time()) - SIM_HISTORY_S)]
            if self.args.scenario:
                sim += ["--scenario", self.args.scenario]
            children.append(Child("sim", sim, logs / "sim.log"))
        return children

    def ensure_demo_accounts(self) -> list[tuple[str, str, str]]:
        """First run: one panel account per role, passwords random, kept in VAR/demo-accounts.txt."""
        path = self.var / "demo-accounts.txt"
        if not path.exists():
            rows = []
            for name, role in DEMO_ACCOUNTS:
                password = secrets.token_urlsafe(9)
                # `--password=` keeps a password that starts with "-" from reading as a flag
                subprocess.run([sys.executable, "-m", "rivermon.cli", "user", "add", name,
                                "--role", role, f"--password={password}", "--var", str(self.var)],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                rows.append(f"{name}\t{role}\t{password}")
            path.write_text("\n".join(rows) + "\n")
            path.chmod(0o600)
        return [tuple(line.split("\t")) for line in path.read_text().splitlines() if line]

    def start_services(self, children: list[Child]) -> None:
        for child in children:
            child.start()
            self.children.append(child)
            self.wait_healthy(child)
            print(f"{child.name:<9} running (log {child.log_path})", flush=True)

    def wait_healthy(self, child: Child) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline and not self.stop_event.is_set():
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode if child.proc else '?'}; "
                                   f"its log {child.log_path} ends with:\n{child.tail()}")
            if child.health():
                return
            time.sleep(0.2)
        if not self.stop_event.is_set():
            raise RuntimeError(f"{child.name} did not become healthy in {HEALTH_TIMEOUT_S:.0f} s; "
                               f"see {child.log_path}")

    def supervise(self) -> None:
        """Restart a service that died, until asked to stop."""
        while not self.stop_event.wait(1.0):
            for child in self.children:
                if not child.alive() and not child.stopping:
                    child.restarts += 1
                    print(f"{child.name} exited ({child.proc.returncode if child.proc else '?'}); "
                          f"restarting (restart {child.restarts})", file=sys.stderr, flush=True)
                    time.sleep(RESTART_DELAY_S)
                    child.start()

    def stop(self) -> None:
        self.stop_event.set()
        for child in reversed(self.children):
            child.stop()
        for srv in reversed(self.servers):
            srv.stop()


def run_up(args: argparse.Namespace, cfg: Config) -> int:
    load_topology(cfg.topology or None)  # fail fast, with the key, on a bad topology
    stack = Stack(args, cfg)

    def on_signal(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        broker, influx = stack.start_servers()
        accounts = stack.ensure_demo_accounts()
        stack.start_services(stack.plan(broker, influx))
        print("\nPanel accounts (user / role / password), kept in "
              f"{stack.var / 'demo-accounts.txt'}:", flush=True)
        for name, role, password in accounts:
            print(f"  {name:<9} {role:<9} {password}", flush=True)
        print(f"\nrivermon is up. Panel: {stack.web_url}\nCtrl-C stops everything.", flush=True)
        stack.supervise()
    except servers.MissingBinary as exc:
        print(f"rivermon up: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"rivermon up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    print("stopped.", flush=True)
    return 0

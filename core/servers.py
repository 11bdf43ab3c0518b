"""Start and stop a Mosquitto broker and an InfluxDB server as child processes.

Used by ``rivermon up`` and by the test fixtures, so the configuration tested is the one run.
Each server gets its own loopback port(s) and data directory; nothing here touches a server
that already runs on the machine (the development machines have a Mosquitto on 1883).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

INSTALL_HINT = {
    "mosquitto": "mosquitto is not installed: run `apt-get install -y mosquitto` (Debian) "
                 "or pass --broker URL to use a broker that already runs",
    "influxd": "influxd is not installed: run `apt-get install -y influxdb` (Debian) "
               "or pass --influx URL to use an InfluxDB that already runs",
}

# Sizing of the broker's per-client queue. Mosquitto drops QoS 1 messages for a subscriber once
# it is `max_queued_messages` behind. One million messages cover a 24-hour ingestor outage for
# ~690 nodes reporting once a minute (the shipped creek has 20), or the 60,000-message backlog
# benchmark many times over. Bytes are unbounded so the count is the one limit.
MAX_QUEUED_MESSAGES = 1_000_000
# Unacknowledged QoS 1 messages in flight to one client. The ingestor acknowledges from its
# durable spool quickly; a wide window keeps the stream flowing while it does.
MAX_INFLIGHT_MESSAGES = 1000
# Mosquitto's default autosave (1800 s) can lose half an hour of queued messages on a crash.
AUTOSAVE_INTERVAL_S = 5


class MissingBinary(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinary(INSTALL_HINT.get(name, f"{name} is not installed"))


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


@dataclass
class ManagedServer:
    """A child server process with its data directory and log."""

    name: str
    argv: list[str]
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> "ManagedServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        # A new session so Ctrl-C in a terminal reaches the parent only; the parent stops us.
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            self.wait_ready(timeout)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; its log {self.log_path} ends with:\n"
                               + self.tail_log()) from None
        return self

    def wait_ready(self, timeout: float) -> None:
        wait_port(self.host, self.port, timeout, self.proc)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def tail_log(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _run_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def mosquitto_conf(port: int, data_dir: Path, host: str = "127.0.0.1",
                   extra: str = "") -> str:
    """The development/test broker configuration rivermon writes (persistence on)."""
    return f"""# Written by rivermon. Loopback only, anonymous allowed: a development broker.
# The production configuration (passwords, ACL, TLS) is deploy/mosquitto/mosquitto.conf.
per_listener_settings false
allow_anonymous true
# Run as whoever started us. As root, Mosquitto otherwise drops to the `mosquitto` user, which
# cannot write the persistence file into our (private) data directory: every autosave fails
# with "Permission denied" and a restart loses the queues and sessions.
user {_run_user()}
listener {port} {host}
persistence true
persistence_location {data_dir}/
autosave_interval {AUTOSAVE_INTERVAL_S}
max_queued_messages {MAX_QUEUED_MESSAGES}
max_queued_bytes 0
max_inflight_messages {MAX_INFLIGHT_MESSAGES}
set_tcp_nodelay true
log_dest stdout
log_type error
log_type warning
log_type notice
log_timestamp_format %Y-%m-%dT%H:%M:%S
{extra}
"""


def mosquitto(data_dir: Path, port: int = 0, extra_conf: str = "") -> ManagedServer:
    binary = find_binary("mosquitto")
    port = port or free_port()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    conf.write_text(mosquitto_conf(port, data_dir, extra=extra_conf))
    return ManagedServer("mosquitto", [binary, "-c", str(conf)], data_dir, port)


def influxd_conf(port: int, rpc_port: int, data_dir: Path) -> str:
    return f"""# Written by rivermon: a loopback InfluxDB 1.x for development and tests.
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data_dir}/meta"

[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 0

[logging]
  level = "warn"
"""


class InfluxServer(ManagedServer):
    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.port}/ping"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}")
            try:
                if requests.get(url, timeout=0.5).status_code == 204:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"InfluxDB did not answer {url} within {timeout:.0f} s")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def influxd(data_dir: Path, port: int = 0) -> InfluxServer:
    binary = find_binary("influxd")
    port = port or free_port()
    rpc_port = free_port()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "influxdb.conf"
    conf.write_text(influxd_conf(port, rpc_port, data_dir))
    return InfluxServer("influxd", [binary, "-config", str(conf)], data_dir, port)

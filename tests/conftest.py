"""Real servers for the tests: a Mosquitto broker and an InfluxDB, started once per session.

Both run from the installed binaries on free loopback ports with temporary data directories,
through the same code ``rivermon up`` uses (``rivermon.core.servers``). Never the machine's
own broker on 1883. A test that needs an empty database gets a fresh one (``influx``).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest

from rivermon.core import servers
from rivermon.core.influx import InfluxClient
from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.core.topology import Topology, load_topology

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker_server(tmp_path_factory) -> Iterator[servers.ManagedServer]:
    srv = servers.mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def broker_url(broker_server) -> str:
    return f"mqtt://127.0.0.1:{broker_server.port}"


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory) -> Iterator[servers.InfluxServer]:
    srv = servers.influxd(tmp_path_factory.mktemp("influxd")).start(timeout=60)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def influx_url(influx_server) -> str:
    return influx_server.url


_db_counter = itertools.count()


@pytest.fixture
def influx(influx_url) -> Iterator[InfluxClient]:
    """An empty database of its own on the session's InfluxDB, dropped afterwards."""
    client = InfluxClient(influx_url, f"test_{os.getpid()}_{next(_db_counter)}")
    client.ensure_database()
    yield client
    try:
        client.drop_database()
    finally:
        client.close()


@pytest.fixture(scope="session")
def topology() -> Topology:
    return load_topology()


@pytest.fixture
def prefix() -> str:
    """A topic prefix of the test's own, so retained messages of other tests never leak in."""
    return f"t{uuid.uuid4().hex[:8]}/v1"


class Collector:
    """A paho subscriber that records every message it receives."""

    def __init__(self, url: str, topics: list[str], qos: int = 1):
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.client = make_client(url, f"collector-{uuid.uuid4().hex[:8]}")
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a, **k: self.subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, qos) for t in topics])
        u = parse_broker_url(url)
        self.client.connect(u.host, u.port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("collector could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append(msg)

    def wait_for(self, predicate: Callable[[list[mqtt.MQTTMessage]], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.messages)):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def collector(broker_url) -> Iterator[Callable[..., Collector]]:
    made: list[Collector] = []

    def make(topics: list[str], qos: int = 1) -> Collector:
        c = Collector(broker_url, topics, qos)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


class Service:
    """A ``rivermon`` subcommand run as a real child process."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log_path = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "rivermon.cli", *self.argv],
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        log.close()
        return self

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def service(tmp_path) -> Iterator[Callable[..., Service]]:
    """Start ``rivermon <argv>`` processes; all are stopped at the end of the test."""
    started: list[Service] = []
    counter = itertools.count()

    def start(*argv: str, env: dict[str, str] | None = None) -> Service:
        s = Service(list(argv), tmp_path / f"service-{next(counter)}-{argv[0]}.log", env).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()

"""Helpers shared by the ingest tests and `rivermon bench ingest`: a publisher, waits, counts."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable, Iterable

import requests

from rivermon.core.influx import InfluxClient
from rivermon.core.mqtt import make_client, parse_broker_url


def ingest_argv(broker: str, influx: str, db: str, prefix: str, var: str, **settings: Any) -> list[str]:
    """`rivermon ingest` arguments; keyword settings become `--key value` flags."""
    argv = ["ingest", "--broker", broker, "--influx", influx, "--influx-db", db,
            "--topic-prefix", prefix, "--var", str(var), "--log-level", "INFO"]
    for key, value in settings.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    return argv


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; return its value (or the last falsy one)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


class Publisher:
    """A paho QoS 1 publisher with a persistent session, so a broker restart loses nothing."""

    def __init__(self, broker: str, client_id: str | None = None, protocol: str = "3.1.1"):
        self.client = make_client(broker, client_id or f"pub-{uuid.uuid4().hex[:8]}", protocol,
                                  clean=False)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(1, 2)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: self.connected.set()
        self.infos: list[Any] = []
        self.lock = threading.Lock()
        b = parse_broker_url(broker)
        self.client.connect(b.host, b.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("publisher could not connect")

    def publish(self, topic: str, payload: bytes | str | dict | list, retain: bool = False) -> None:
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self.lock:
            self.infos.append(info)

    def wait_all(self, timeout: float = 60) -> bool:
        """True when the broker acknowledged every message published so far."""
        deadline = time.monotonic() + timeout
        with self.lock:
            infos = list(self.infos)
        for info in infos:
            left = deadline - time.monotonic()
            if left <= 0 or not _wait_info(info, left):
                return False
        return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait_info(info: Any, timeout: float) -> bool:
    # Not info.is_published(): it raises for a message first tried while the broker was down
    # (rc NO_CONN), although paho sends it on reconnect and marks it published on PUBACK.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if info._published:
            return True
        time.sleep(0.02)
    return bool(info._published)


class Stream(threading.Thread):
    """Publish ``count`` one-reading messages from ``nodes`` at ``rate`` per second.

    Every reading is remembered as (node, ts_ms): the ground truth to count InfluxDB against.
    """

    def __init__(self, pub: Publisher, prefix: str, nodes: list[str], count: int, rate: float,
                 creek: str = "huanglong", start_ts: float | None = None):
        super().__init__(daemon=True)
        self.pub, self.prefix, self.nodes, self.count, self.rate = pub, prefix, nodes, count, rate
        self.creek = creek
        self.start_ts = time.time() - 86400 if start_ts is None else start_ts
        self.sent: list[tuple[str, int]] = []
        self.progress = 0

    def run(self) -> None:
        t0 = time.monotonic()
        for i in range(self.count):
            node = self.nodes[i % len(self.nodes)]
            ts_ms = int(self.start_ts * 1000) + i * 1000
            self.pub.publish(f"{self.prefix}/{self.creek}/{node}/telemetry",
                             {"ts": ts_ms / 1000, "seq": i, "do_mg_l": 5.0 + (i % 100) / 100,
                              "turbidity_ntu": 12.0})
            self.sent.append((node, ts_ms))
            self.progress = i + 1
            ahead = t0 + (i + 1) / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def telemetry_points(influx: InfluxClient, field: str = "do_mg_l") -> list[tuple[str, int]]:
    """Every stored (node, time) telemetry point, duplicates across series included."""
    return [(r["node"], r["time"]) for r in influx.rows(f'SELECT "{field}", "node" FROM "telemetry"')]


def count_points(influx: InfluxClient) -> int:
    rows = influx.rows('SELECT count("do_mg_l") FROM "telemetry"')
    return int(rows[0]["count"]) if rows else 0


def assert_exactly_once(stored: Iterable[tuple[str, int]], sent: Iterable[tuple[str, int]]) -> None:
    """Every sent (node, ts) stored once: none missing, none twice, nothing extra."""
    stored, sent = list(stored), list(sent)
    from collections import Counter
    counts = Counter(stored)
    twice = [k for k, n in counts.items() if n > 1]
    missing = set(sent) - set(counts)
    extra = set(counts) - set(sent)
    assert not missing and not twice and not extra, (
        f"{len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(twice)} twice "
        f"(e.g. {twice[:3]}), {len(extra)} unexpected, of {len(set(sent))} sent")


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def readyz_ok(base: str) -> bool:
    """The ingestor's /readyz answers 200 (ready to acknowledge)."""
    r = _get(base + "/readyz")
    return r is not None and r.status_code == 200


def metric_value(base: str, name: str) -> float | None:
    """One unlabelled value from the ingestor's /metrics, or None when it cannot be read."""
    r = _get(base + "/metrics")
    if r is None:
        return None
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None

"""The ingestor's Prometheus metrics and its /metrics, /livez and /readyz endpoints.

Counters are plain integers bumped on the hot path (each by one thread) and rendered in the
Prometheus text format only when scraped, so counting costs nanoseconds, not locks.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

log = logging.getLogger("rivermon.ingest.metrics")

BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """A cumulative-bucket histogram rendered in Prometheus text."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str, help_: str) -> list[str]:
        out = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        acc = 0
        for bound, n in zip(self.buckets, self.counts):
            acc += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {acc}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out += [f"{name}_sum {self.sum:.6f}", f"{name}_count {self.count}"]
        return out


class IngestMetrics:
    """Everything /metrics reports that is not read live from another object."""

    def __init__(self) -> None:
        self.messages = {"telemetry": 0, "status": 0}
        self.readings = 0
        self.acks = 0
        self.spool_appends = 0
        self.written_lines = 0
        self.write_errors = 0
        self.write_splits = 0
        self.accepted_published = 0
        self.accepted_dropped = 0
        self.connects = 0
        self.batch = Histogram(BATCH_BUCKETS)
        self.write_latency = Histogram(SECONDS_BUCKETS)
        self.lag = Histogram(SECONDS_BUCKETS)
        self.started = time.time()

    def observe_write(self, lines: int, seconds: float) -> None:
        self.written_lines += lines
        self.batch.observe(lines)
        self.write_latency.observe(seconds)

    def observe_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)


def counter(name: str, help_: str, value: float, labels: str = "") -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name}{labels} {value}"]


def gauge(name: str, help_: str, samples: list[tuple[str, float]]) -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} gauge"] + [f"{name}{lab} {val}" for lab, val in samples]


def label_str(**labels: str) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in labels.items())
    return "{" + inner + "}"


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, Callable[[], tuple[int, str, str]]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        route = self.routes.get(self.path.split("?", 1)[0])
        if route is None:
            status, ctype, body = 404, "text/plain", "not found: try /metrics, /livez, /readyz\n"
        else:
            status, ctype, body = route()
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # quiet: scrapes are not news
        pass


def serve(port: int, routes: dict[str, Callable[[], tuple[int, str, str]]]) -> ThreadingHTTPServer:
    """Serve ``routes`` on 127.0.0.1:port in a daemon thread."""
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server

"""A small Prometheus text-format registry: counters, gauges and a latency histogram."""

from __future__ import annotations

import threading
from typing import Callable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HELP = {
    "rivermon_web_requests_total": ("counter", "HTTP requests by endpoint and status."),
    "rivermon_web_request_seconds": ("histogram", "HTTP request latency by endpoint."),
    "rivermon_web_logins_total": ("counter", "Login attempts by result."),
    "rivermon_web_alert_actions_total": ("counter", "Alert actions by action."),
    "rivermon_web_sse_clients": ("gauge", "Open Server-Sent Events streams."),
    "rivermon_web_segments": ("gauge", "Segments by status."),
    "rivermon_web_open_alerts": ("gauge", "Unresolved alerts."),
    "rivermon_web_influx_up": ("gauge", "1 when InfluxDB answers its ping."),
    "rivermon_web_broker_up": ("gauge", "1 when the panel's MQTT connection is up."),
    "rivermon_web_agg_watermark_seconds": ("gauge", "Unix time up to which telemetry_1h is complete."),
    "rivermon_web_agg_runs_total": ("counter", "Aggregate job runs by result."),
}


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = (lambda v: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels.items())) + "}"


class Metrics:
    """Thread-safe counters and histograms; gauges are read from callbacks at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], float] = {}
        self._hist: dict[tuple[str, str], list[float]] = {}
        self._gauges: list[Callable[[], dict[tuple[str, str], float]]] = []

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, _labels(labels))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = (name, _labels(labels))
        with self._lock:
            h = self._hist.setdefault(key, [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += 1
            h[-1] += seconds

    def gauge_source(self, fn: Callable[[], dict[tuple[str, str], float]]) -> None:
        """Register ``fn`` returning ``{(name, labels_text): value}`` at scrape time."""
        self._gauges.append(fn)

    @staticmethod
    def key(name: str, **labels: str) -> tuple[str, str]:
        return name, _labels(labels)

    def render(self) -> str:
        with self._lock:
            values = dict(self._values)
            hist = {k: list(v) for k, v in self._hist.items()}
        for fn in self._gauges:
            try:
                values.update(fn())
            except Exception:  # a failing gauge must not break the scrape
                continue
        out: list[str] = []
        names = sorted({n for n, _ in values} | {n for n, _ in hist})
        for name in names:
            kind, text = HELP.get(name, ("untyped", name))
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for (n, labels), v in sorted(values.items()):
                if n == name:
                    out.append(f"{name}{labels} {v:g}")
            for (n, labels), h in sorted(hist.items()):
                if n != name:
                    continue
                inner = labels[1:-1] + "," if labels else ""
                for bound, count in zip(LATENCY_BUCKETS, h):
                    out.append(f'{name}_bucket{{{inner}le="{bound}"}} {count:g}')
                out.append(f'{name}_bucket{{{inner}le="+Inf"}} {h[-2]:g}')
                out.append(f"{name}_count{labels} {h[-2]:g}")
                out.append(f"{name}_sum{labels} {h[-1]:.6f}")
        return "\n".join(out) + "\n"

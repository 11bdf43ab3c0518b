"""``GET /healthz`` (broker and InfluxDB connection state) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from rivermon.core.mqtt import make_client, parse_broker_url

bp = Blueprint("health", __name__)


def probe_broker(url: str, protocol: str, timeout_s: float = 2.0) -> bool:
    """A short MQTT connect (used when the panel runs without its kept connection)."""
    connected: list[bool] = []
    client = make_client(url, f"rivermon-web-probe-{uuid.uuid4().hex[:8]}", protocol)
    client.on_connect = lambda c, u, f, rc, p=None: connected.append(not rc.is_failure)
    b = parse_broker_url(url)
    try:
        client.connect(b.host, b.port, keepalive=5)
        deadline = time.monotonic() + timeout_s
        while not connected and time.monotonic() < deadline:
            client.loop(0.05)
        client.disconnect()
    except OSError:
        return False
    finally:
        client.socket() and client.socket().close()
    return bool(connected and connected[0])


@bp.route("/healthz")
def healthz() -> Any:
    ctx = current_app.extensions["rivermon"]
    if ctx.hub.client is not None:
        broker_ok = ctx.hub.broker_connected
    else:
        broker_ok = probe_broker(ctx.cfg.broker, ctx.cfg.mqtt_protocol)
    influx_ok = ctx.influx.ping()
    body = {
        "status": "ok" if broker_ok and influx_ok else "degraded",
        "broker": {"ok": broker_ok, "url": parse_broker_url(ctx.cfg.broker).display()},
        "influx": {"ok": influx_ok, "url": ctx.influx.url, "database": ctx.influx.database},
        "sse_clients": ctx.hub.client_count,
        "uptime_s": round(time.time() - ctx.started, 1),
    }
    return jsonify(body), 200 if broker_ok and influx_ok else 503


@bp.route("/metrics")
def metrics() -> Response:
    ctx = current_app.extensions["rivermon"]
    return Response(ctx.metrics.render(), mimetype="text/plain; version=0.0.4")

"""The panel's Flask application factory (flaskr style: ``create_app``, one blueprint per area)."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from rivermon.core.config import Config
from rivermon.core.influx import InfluxClient, InfluxError
from rivermon.core.topology import Topology, load_topology

from . import i18n
from .alertsrc import AlertSource
from .auth import LoginLimiter, check_csrf, csrf_token, load_user
from .live import LiveHub
from .metrics import Metrics
from .queries import PanelQueries
from .sessions import CachedSessionInterface
from .timeutil import BadParam
from .users import UserStore

log = logging.getLogger("rivermon.web")

# No inline script anywhere: every script is a file under /static. Styles likewise; chart
# libraries set element styles through the CSSOM, which style-src does not restrict.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


@dataclass
class PanelContext:
    """Everything the views share; one per app, closed with :meth:`close`."""

    cfg: Config
    topology: Topology
    influx: InfluxClient
    queries: PanelQueries
    users: UserStore
    alerts: AlertSource
    hub: LiveHub
    metrics: Metrics
    limiter: LoginLimiter
    owns_influx: bool = True
    aggregator: Any = None
    started: float = field(default_factory=time.time)

    def close(self) -> None:
        if self.aggregator is not None:
            self.aggregator.stop()
        self.hub.stop()
        self.alerts.close()
        if self.owns_influx:
            self.influx.close()


def secret_key(cfg: Config) -> str:
    """The configured secret, or one generated once and kept in ``VAR/secret_key`` (0600)."""
    if cfg.secret_key:
        return cfg.secret_key
    path = Path(cfg.var) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_app(cfg: Config, topology: Topology | None = None, influx: InfluxClient | None = None,
               live: bool = True, mqtt: bool = True, aggregates: bool = False) -> Flask:
    """Build the panel. ``live`` starts the refresh thread, ``mqtt`` the broker connection,
    ``aggregates`` the hourly-aggregate job (``rivermon web`` turns all three on)."""
    topology = topology or load_topology(cfg.topology or None)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.session_interface = CachedSessionInterface()
    app.config.update(
        SECRET_KEY=secret_key(cfg),
        SESSION_COOKIE_NAME="rivermon_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=bool(cfg.web_cookie_secure),
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        # Re-signing the cookie on every request costs more than the rest of /api/segments.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=64 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        JSON_SORT_KEYS=False,
    )
    owns = influx is None
    influx = influx or InfluxClient(cfg.influx, cfg.influx_db, timeout=10.0)
    # One pooled connection per request thread, so concurrent clients never reconnect.
    from requests.adapters import HTTPAdapter
    for scheme in ("http://", "https://"):
        influx.session.mount(scheme, HTTPAdapter(pool_connections=4, pool_maxsize=64))
    var = Path(cfg.var)
    metrics = Metrics()
    queries = PanelQueries(influx, topology)
    tz = topology.creeks[0].timezone
    hub_ref: dict[str, LiveHub] = {}
    alerts = AlertSource(var / "alerts.sqlite", tz, cfg.topic_prefix, influx,
                         lambda: hub_ref["hub"].client if "hub" in hub_ref else None)
    hub = LiveHub(cfg, topology, queries, alerts)
    hub_ref["hub"] = hub
    ctx = PanelContext(cfg, topology, influx, queries, UserStore(var / "web.sqlite"), alerts, hub,
                       metrics, LoginLimiter(cfg.web_login_attempts), owns)
    app.extensions["rivermon"] = ctx
    _register_gauges(ctx)
    _install_hooks(app, ctx)
    _register_blueprints(app)
    if live:
        hub.start(mqtt=mqtt)
    if aggregates and cfg.web_agg_interval_s > 0:
        from .aggregates import Aggregator
        ctx.aggregator = Aggregator(influx, ctx.users, cfg, metrics).start()
    return app


def _register_blueprints(app: Flask) -> None:
    from . import admin, api, health, reports, views
    from .auth import bp as auth_bp

    for bp in (auth_bp, health.bp, api.bp, views.bp, admin.bp, reports.bp):
        app.register_blueprint(bp)


def _install_hooks(app: Flask, ctx: PanelContext) -> None:
    @app.before_request
    def _before() -> None:
        g.t0 = time.perf_counter()
        load_user()
        check_csrf()

    @app.after_request
    def _after(resp):
        h = resp.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.endpoint != "static" and "Cache-Control" not in h:
            h["Cache-Control"] = "no-store"
        endpoint = request.endpoint or "none"
        ctx.metrics.inc("rivermon_web_requests_total", endpoint=endpoint, status=str(resp.status_code))
        if "t0" in g and endpoint != "api.stream":
            ctx.metrics.observe("rivermon_web_request_seconds", time.perf_counter() - g.t0,
                                endpoint=endpoint)
        return resp

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {"t": i18n.t, "pick": i18n.pick, "field_label": i18n.field_label, "lang": i18n.lang(), "csrf_token": csrf_token,
                "user": g.get("user"), "cfg": ctx.cfg, "tz": ctx.topology.creeks[0].timezone,
                "tz_offset_s": _tz_offset(ctx.topology.creeks[0].timezone)}

    @app.errorhandler(BadParam)
    def _bad_param(exc: BadParam):
        return jsonify(error=str(exc), param=exc.param), 400

    @app.errorhandler(InfluxError)
    def _influx_down(exc: InfluxError):
        log.warning("InfluxDB query failed", extra={"error": str(exc), "path": request.path})
        return _error(503, f"InfluxDB is unavailable: {exc}")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return _error(exc.code or 500, exc.description or exc.name)


def _tz_offset(tz: str) -> int:
    """The zone's current UTC offset in seconds (charts label time in the creek's zone)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo
    offset = datetime.now(ZoneInfo(tz)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def _error(status: int, message: str):
    from .auth import wants_json

    if wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, message=message), status


def _register_gauges(ctx: PanelContext) -> None:
    def gauges() -> dict[tuple[str, str], float]:
        out = {Metrics.key("rivermon_web_sse_clients"): ctx.hub.client_count,
               Metrics.key("rivermon_web_broker_up"): 1.0 if ctx.hub.broker_connected else 0.0,
               Metrics.key("rivermon_web_influx_up"): 1.0 if ctx.influx.ping() else 0.0}
        for status, n in ctx.hub.status_counts().items():
            out[Metrics.key("rivermon_web_segments", status=status)] = n
        out[Metrics.key("rivermon_web_open_alerts")] = len(ctx.alerts.unresolved())
        if ctx.aggregator is not None and ctx.aggregator.watermark:
            out[Metrics.key("rivermon_web_agg_watermark_seconds")] = ctx.aggregator.watermark
        return out

    ctx.metrics.gauge_source(gauges)

"""Sessions, roles, CSRF and login throttling for the panel.

Roles rank viewer < cleaner < operator < admin; a route names the least role it needs. Every
state-changing request (anything but GET/HEAD/OPTIONS) must carry the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``) and, when the browser sends one, an
``Origin`` of this host. A role or password change ends the user's other sessions.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time
from collections import deque
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, g, jsonify, redirect, render_template,
                   request, session, url_for)

from .users import ROLE_RANK, User

bp = Blueprint("auth", __name__)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_WINDOW_S = 300.0


class LoginLimiter:
    """Failed logins per key in a sliding window; over the limit the key waits."""

    def __init__(self, limit: int, window_s: float = LOGIN_WINDOW_S):
        self.limit = limit
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> int:
        """Seconds to wait before another attempt (0 = go ahead)."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._fails.get(key)
                while q and now - q[0] > self.window_s:
                    q.popleft()
                if q and len(q) >= self.limit:
                    wait = max(wait, self.window_s - (now - q[0]))
        return int(wait) + 1 if wait else 0

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._fails.setdefault(key, deque()).append(now)
            if len(self._fails) > 100000:  # bound memory under a spray of names
                self._fails.clear()

    def reset(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._fails.pop(key, None)


def csrf_token() -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def load_user() -> None:
    """``g.user`` from the session, or None; a stale session (role/password changed) is dropped."""
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return
    user: User | None = current_app.extensions["rivermon"].users.get(uid)
    if user is None or session.get("chg") != user.changed:
        session.pop("uid", None)
        session.pop("chg", None)
        return
    g.user = user


def check_csrf() -> None:
    """Refuse a state change without the session's token or from another origin."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        abort(403, description="cross-origin request refused (Origin does not match this host)")
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected and _secure_cookie_dropped():
        abort(400, description="no session: this panel's cookies are Secure (HTTPS only) and the "
                               "browser dropped them over plain HTTP; serve the panel over HTTPS "
                               "or set web_cookie_secure = false on a closed network")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, description="CSRF token missing or wrong: reload the page and try again")


def _secure_cookie_dropped() -> bool:
    """True when a browser would not keep our Secure cookie (plain HTTP, not loopback)."""
    host = (request.host or "").rsplit(":", 1)[0].strip("[]")
    return (current_app.config["SESSION_COOKIE_SECURE"] and not request.is_secure
            and host not in ("localhost", "127.0.0.1", "::1"))


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def role_required(role: str, public_if: str | None = None) -> Callable:
    """Route decorator: the user needs ``role`` or above.

    ``public_if`` names a boolean setting that, when true, lets anonymous visitors in.
    """
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user: User | None = g.get("user")
            if user is None:
                if public_if and current_app.extensions["rivermon"].cfg[public_if]:
                    return view(*args, **kwargs)
                if wants_json():
                    return jsonify(error="login required"), 401
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if ROLE_RANK[user.role] < ROLE_RANK[role]:
                if wants_json():
                    return jsonify(error=f"this needs the {role} role or above"), 403
                abort(403, description=f"this needs the {role} role or above")
            return view(*args, **kwargs)
        wrapped.required_role = role  # type: ignore[attr-defined]
        wrapped.public_if = public_if  # type: ignore[attr-defined]
        return wrapped
    return decorate


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never redirect a login to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("views.creek")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    ctx = current_app.extensions["rivermon"]
    error = None
    status = 200
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:64]
        password = request.form.get("password", "")[:1024]
        keys = ("ip:" + (request.remote_addr or "?"), "user:" + name.lower())
        wait = ctx.limiter.retry_after(*keys)
        if wait:
            ctx.metrics.inc("rivermon_web_logins_total", result="throttled")
            error, status = ("login_throttled", 429)
        else:
            user = ctx.users.authenticate(name, password)
            if user is None:
                ctx.limiter.fail(*keys)
                ctx.metrics.inc("rivermon_web_logins_total", result="failed")
                error, status = ("login_failed", 401)
            else:
                ctx.limiter.reset(keys[1])
                ctx.metrics.inc("rivermon_web_logins_total", result="ok")
                lang = session.get("lang")
                session.clear()
                session.permanent = True
                session.update(uid=user.id, chg=user.changed, csrf=secrets.token_urlsafe(32))
                if lang:
                    session["lang"] = lang
                return redirect(_safe_next(request.form.get("next")))
        resp = current_app.make_response((render_template("login.html", error=error,
                                                          next=request.form.get("next", "")), status))
        if status == 429:
            resp.headers["Retry-After"] = str(wait)
        return resp
    return render_template("login.html", error=None, next=request.args.get("next", ""),
                           no_users=not ctx.users.all())


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


@bp.route("/lang", methods=["POST"])
def set_lang() -> Any:
    lang = request.form.get("lang", "zh")
    session["lang"] = "en" if lang == "en" else "zh"
    return redirect(_safe_next(request.form.get("next")))

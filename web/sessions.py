"""Signed-cookie sessions with the signature check cached: a page's poll or a client's
repeated API calls present the same cookie many times a minute."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

CACHE_TTL_S = 30.0
CACHE_MAX = 2000


class CachedSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie sessions; a cookie verified in the last 30 s is not verified again."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def open_session(self, app: Any, request: Any) -> SecureCookieSession | None:
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return super().open_session(app, request)
        hit = self._cache.get(value)
        if hit is not None and hit[0] > time.monotonic():
            return self.session_class(dict(hit[1]))
        session = super().open_session(app, request)
        if session is not None and session:  # only sessions that verified and hold something
            with self._lock:
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
                self._cache[value] = (time.monotonic() + CACHE_TTL_S, dict(session))
        return session

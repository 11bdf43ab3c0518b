"""A local webhook receiver that records what arrives: for tests and for the demo.

It answers like the robots do (HTTP 200 with ``{"errcode":0,"errmsg":"ok"}``), verifies
DingTalk signatures on paths starting with ``/dingtalk`` when given the secret (answering
errcode 310000 when they do not match, as DingTalk does), and can be told to answer an
error status or be stopped and started again on the same port to play a target that is down.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

SIGN_MAX_AGE_S = 3600  # DingTalk refuses timestamps more than an hour away


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    signature_ok: bool | None

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def accepted(self) -> bool:
        return self.status == 200 and self.signature_ok is not False

    def content(self) -> str:
        """The human text of a WeCom/DingTalk message (or the JSON text of anything else)."""
        try:
            data = self.json
        except ValueError:
            return self.body.decode("utf-8", errors="replace")
        if isinstance(data, dict):
            part = data.get(data.get("msgtype", ""), {})
            if isinstance(part, dict):
                return str(part.get("content") or part.get("text") or json.dumps(data, ensure_ascii=False))
        return json.dumps(data, ensure_ascii=False)


def verify_dingtalk(query: dict[str, str], secret: str, now: float | None = None) -> bool:
    """Recompute DingTalk's signature from ``timestamp`` and the secret and compare."""
    try:
        ts = int(query["timestamp"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now * 1000 - ts) > SIGN_MAX_AGE_S * 1000:
        return False
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(mac).decode(), query.get("sign", ""))


class Receiver:
    """Records POSTs; ``status`` is what it answers; stop()/start() keep the port."""

    def __init__(self, port: int = 0, dingtalk_secret: str | None = None,
                 on_receive: Callable[[Received], None] | None = None):
        self.port = port
        self.dingtalk_secret = dingtalk_secret
        self.on_receive = on_receive
        self.status = 200
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> "Receiver":
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def accepted(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.accepted and (path is None or r.path == path)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.accepted()):
                return True
            time.sleep(0.05)
        return predicate(self.accepted())

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        sig_ok = None
        if parts.path.startswith("/dingtalk") and self.dingtalk_secret:
            sig_ok = verify_dingtalk(query, self.dingtalk_secret)
        status = self.status
        rec = Received(parts.path, query, dict(handler.headers.items()), body, time.time(), status, sig_ok)
        with self.lock:
            self.received.append(rec)
        if self.on_receive is not None:
            self.on_receive(rec)
        if status != 200:
            return status, b'{"error": "receiver told to fail"}'
        if sig_ok is False:
            return 200, json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
        return 200, b'{"errcode":0,"errmsg":"ok"}'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = receiver._record(self, self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

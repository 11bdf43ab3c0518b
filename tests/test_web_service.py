"""``rivermon web`` as a real process: serves, streams, maintains aggregates, stops cleanly."""

from __future__ import annotations

import time

import requests

from rivermon.core.servers import free_port


def _wait(fn, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last!r})")


def test_rivermon_web_serves_and_stops(service, broker_url, influx, prefix, tmp_path, topology):
    port = free_port()
    web = service("web", "--broker", broker_url, "--influx", influx.url, "--influx-db", influx.database,
                  "--topic-prefix", prefix, "--var", str(tmp_path / "var"), "--web-port", str(port),
                  env={"RIVERMON_WEB_PUBLIC_VIEW": "true"})
    base = f"http://127.0.0.1:{port}"
    _wait(lambda: requests.get(base + "/healthz", timeout=1).status_code == 200, 20,
          "healthz 200:\n" + web.log())
    segs = requests.get(base + "/api/segments", timeout=5).json()["segments"]
    assert len(segs) == len(topology.creeks[0].segments)
    front = requests.get(base + "/", timeout=5)
    assert front.status_code == 200 and "华龙路西段" in front.text
    csp = front.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    with requests.get(base + "/api/stream", stream=True, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        buf = b""
        for chunk in r.iter_content(chunk_size=None):
            buf += chunk
            if b"event: segments" in buf:
                break
    assert requests.get(base + "/inbox", timeout=5, allow_redirects=False).status_code == 302
    # SIGTERM with a page's stream still open: the stream ends and the process exits cleanly.
    with requests.get(base + "/api/stream", stream=True, timeout=10) as r:
        next(r.iter_content(chunk_size=None))
        t0 = time.monotonic()
        assert web.stop(timeout=10) == 0, web.log()
        assert time.monotonic() - t0 < 8
        assert b"".join(r.iter_content(chunk_size=None)) is not None  # the server closed it


def test_user_command(service, tmp_path):
    var = str(tmp_path / "var")
    add = service("user", "add", "li", "--role", "cleaner", "--password", "long-enough-1", "--var", var)
    assert add.proc.wait(20) == 0, add.log()
    assert "li added with role cleaner" in add.log()
    dup = service("user", "add", "li", "--role", "viewer", "--var", var,
                  env={"RIVERMON_USER_PASSWORD": "another-one-2"})
    assert dup.proc.wait(20) == 2 and "already exists" in dup.log()
    short = service("user", "add", "x", "--role", "viewer", "--password", "short", "--var", var)
    assert short.proc.wait(20) == 2 and "at least 8 characters" in short.log()
    ls = service("user", "list", "--var", var)
    assert ls.proc.wait(20) == 0 and "li\tcleaner" in ls.log()
    from rivermon.web.users import UserStore
    assert UserStore(tmp_path / "var" / "web.sqlite").authenticate("li", "long-enough-1").role == "cleaner"

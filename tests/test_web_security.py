"""Panel security: every route for anonymous and each role, CSRF, cookies, headers, login
throttling, password hashing, and injection strings through every parameter that reaches a query."""

from __future__ import annotations

import os
import re
import stat

import pytest

from rivermon.core.alerts import AlertStore
from rivermon.web.users import ROLES

from test_web_api import NOW, login, make_app, write_readings  # noqa: F401 (fixture)

PUBLIC = {"health.healthz", "health.metrics", "auth.login", "auth.logout", "auth.set_lang", "static"}
SAMPLE_ARGS = {"seg": "hl-3", "aid": "a-20990101-0001", "node": "hl3-a1", "action": "note",
               "filename": "panel.css", "fmt": "csv"}
PASSWORD = "correct horse 1"


def _url(rule) -> str:
    url = rule.rule
    for arg in rule.arguments:
        url = re.sub(rf"<(?:[a-z]+:)?{arg}>", SAMPLE_ARGS[arg], url)
    return url


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_every_route_declares_its_role(make_app):
    app = make_app()
    for rule, _ in _routes(app):
        if rule.endpoint in PUBLIC:
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_role", None) in ROLES, f"{rule.rule} has no role check"


@pytest.mark.parametrize("public_view", [False, True])
def test_route_matrix_anonymous_and_roles(make_app, influx, topology, public_view):
    write_readings(influx, topology, minutes=5)
    app = make_app(web_public_view=public_view)
    clients = {"anonymous": (app.test_client(), None)}
    for role in ROLES:
        c = app.test_client()
        clients[role] = (c, login(c, app, f"user-{role}", role, PASSWORD))
    checked = 0
    for rule, method in _routes(app):
        if rule.endpoint in PUBLIC or rule.endpoint == "api.stream":
            continue
        view = app.view_functions[rule.endpoint]
        need = view.required_role
        public = public_view and view.public_if == "web_public_view"
        for who, (c, token) in clients.items():
            headers = {"X-CSRF-Token": token} if token else {}
            r = c.open(_url(rule), method=method, headers=headers, json={} if method == "POST" else None)
            allowed = public and method == "GET" if who == "anonymous" else ROLES.index(who) >= ROLES.index(need)
            if who == "anonymous" and method == "POST":
                # Anonymous state changes fail at CSRF (no session token) before anything else.
                assert r.status_code in (400, 401, 302), (rule.rule, r.status_code)
            elif allowed:
                assert r.status_code not in (401, 403), (rule.rule, method, who, r.status_code)
                assert r.status_code < 500, (rule.rule, method, who, r.status_code, r.data[:300])
            elif who == "anonymous":
                assert r.status_code in (401, 302), (rule.rule, who, r.status_code)
            else:
                assert r.status_code == 403, (rule.rule, method, who, r.status_code)
            checked += 1
    assert checked > 100


def test_anonymous_stream_only_when_public(make_app):
    assert make_app().test_client().get("/api/stream").status_code == 401
    app = make_app(web_public_view=True)
    r = app.test_client().get("/api/stream")
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    r.close()


def test_csrf_on_every_state_change(make_app, tmp_path):
    app = make_app()
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", NOW,
                                {"zh": "排污", "en": "discharge"})
    store.close()
    c = app.test_client()
    token = login(c, app, "boss", "admin", PASSWORD)
    posts = [(f"/api/alerts/{a.id}/acknowledge", {}), (f"/api/alerts/{a.id}/note", {"note": "x"}),
             (f"/api/alerts/{a.id}/resolve", {}), ("/api/aerators/hl3-a1/cmd", {"aerator_on": True}),
             ("/admin/users", {"action": "add", "name": "eve", "role": "admin", "password": "x" * 12}),
             ("/logout", {}), ("/lang", {"lang": "en"})]
    for url, body in posts:
        assert c.post(url, json=body).status_code == 400, url
        assert c.post(url, json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 400, url
        r = c.post(url, json=body, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
        assert r.status_code == 403, url
    assert "eve" not in {u.name for u in app.extensions["rivermon"].users.all()}
    assert AlertStore(tmp_path / "var" / "alerts.sqlite").get(a.id).state == "open"
    r = c.post(f"/api/alerts/{a.id}/acknowledge", json={}, headers={"X-CSRF-Token": token,
                                                                   "Origin": "http://localhost"})
    assert r.status_code == 200
    # The login form itself needs the token (login CSRF).
    fresh = app.test_client()
    r = fresh.post("/login", data={"name": "boss", "password": PASSWORD})
    assert r.status_code == 400


def test_cookies_and_headers(make_app):
    app = make_app()
    c = app.test_client()
    app.extensions["rivermon"].users.add("ana", "viewer", PASSWORD)
    c.get("/login")
    with c.session_transaction() as s:
        token = s["csrf"]
    r = c.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": token})
    cookie = r.headers["Set-Cookie"]
    assert "rivermon_session=" in cookie
    for flag in ("Secure", "HttpOnly", "SameSite=Lax"):
        assert flag in cookie, cookie
    page = c.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    html = page.get_data(as_text=True)
    # No inline script or handler: only JSON data blocks and src= scripts.
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+=", html)
    assert " style=" not in html


def test_login_throttled_and_passwords_hashed_slowly(make_app):
    app = make_app(web_login_attempts=5)
    users = app.extensions["rivermon"].users
    users.add("li", "cleaner", PASSWORD)
    import sqlite3
    from contextlib import closing
    with closing(sqlite3.connect(users.path)) as db:
        stored = db.execute("SELECT pw_hash FROM users WHERE name='li'").fetchone()[0]
    assert stored.startswith(("scrypt:", "pbkdf2:")) and PASSWORD not in stored
    c = app.test_client()
    c.get("/login")
    with c.session_transaction() as s:
        token = s["csrf"]
    for _ in range(5):
        r = c.post("/login", data={"name": "li", "password": "wrong-password", "csrf_token": token})
        assert r.status_code == 401
    r = c.post("/login", data={"name": "li", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_login_redirect_stays_on_site(make_app):
    app = make_app()
    app.extensions["rivermon"].users.add("li", "cleaner", PASSWORD)
    for target, expected in [("//evil.example/x", "/"), ("https://evil.example", "/"),
                             ("/inbox", "/inbox"), ("/\\evil.example", "/")]:
        c = app.test_client()
        c.get("/login")
        with c.session_transaction() as s:
            token = s["csrf"]
        r = c.post("/login", data={"name": "li", "password": PASSWORD, "csrf_token": token,
                                   "next": target})
        assert r.status_code == 302 and r.headers["Location"] == expected, target


def test_role_change_ends_sessions(make_app):
    app = make_app()
    c = app.test_client()
    login(c, app, "li", "operator", PASSWORD)
    assert c.get("/api/fleet").status_code == 200
    app.extensions["rivermon"].users.set_role("li", "viewer")
    assert c.get("/api/fleet").status_code == 401


INJECTIONS = ["hl-3' OR '1'='1", 'do_mg_l" FROM "telemetry"; DROP DATABASE x; --', "'; DROP DATABASE x",
              "\\", "hl-3\n", "河段", "a" * 200, "time", "../../etc/passwd", "1e400", "NaN"]


def test_injection_strings_never_reach_influx(make_app, influx, topology):
    write_readings(influx, topology, minutes=5)
    app = make_app()
    c = app.test_client()
    login(c, app, "wang", "operator", PASSWORD)
    from urllib.parse import quote
    base = {"segment": "hl-3", "field": "do_mg_l", "start": str(NOW - 3600), "end": str(NOW)}
    urls = {"/api/series": ["segment", "field", "node", "start", "end", "creek"],
            "/export/series.csv": ["segment", "field", "start", "end", "creek"],
            "/api/alerts": ["segment", "kind", "state", "start", "end", "limit", "creek"],
            "/export/alerts.csv": ["segment", "kind", "start", "end"],
            "/api/compliance": ["start", "end", "creek"],
            "/api/alert-stats": ["start", "end"],
            "/report": ["month"],
            "/export/workorders.csv": ["start", "end"]}
    tried = 0
    for url, params in urls.items():
        for param in params:
            for bad in INJECTIONS:
                q = dict(base, **{param: bad})
                r = c.get(url + "?" + "&".join(f"{k}={quote(v)}" for k, v in q.items()))
                tried += 1
                if r.status_code == 200:
                    # A well-formed id that names nothing is a fine question with an empty answer.
                    assert param in ("node", "kind") and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", bad), (url, param, bad)
                    continue
                assert r.status_code == 400, (url, param, bad, r.status_code, r.data[:200])
                assert param in r.get_json()["error"], r.get_json()
    for bad in INJECTIONS:
        r = c.get("/api/segment/" + quote(bad, safe=""))
        assert r.status_code in (400, 404), bad
        r = c.get("/api/alerts/" + quote(bad, safe=""))
        assert r.status_code in (400, 404), bad
    assert tried > 200
    # The database and its data are untouched.
    assert influx.rows('SELECT count("do_mg_l") FROM "telemetry"')[0]["count"] > 0


def test_generated_secret_is_private(make_app, tmp_path):
    app = make_app(secret_key="")
    path = tmp_path / "var" / "secret_key"
    assert app.config["SECRET_KEY"] == path.read_text().strip() and len(app.config["SECRET_KEY"]) > 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_plain_http_on_a_lan_address_explains_the_secure_cookie(make_app):
    app = make_app()
    c = app.test_client()
    page = c.get("/login", base_url="http://192.168.1.20:8080").get_data(as_text=True)
    assert "rivermon user add NAME --role admin" in page  # no accounts yet: say how to make one
    # A browser drops the Secure cookie over plain HTTP: the POST arrives without a session.
    r = app.test_client().post("/login", base_url="http://192.168.1.20:8080",
                               data={"name": "x", "password": "y", "csrf_token": "t"})
    assert r.status_code == 400 and "web_cookie_secure" in r.get_data(as_text=True)

"""The panel's contract JSON API, health and front page against real InfluxDB and Mosquitto."""

from __future__ import annotations

import json
import time

import pytest

from rivermon.core.alerts import AlertStore
from rivermon.core.config import load_config
from rivermon.core.influx import line
from rivermon.web.app import create_app

NOW = time.time()


def _cfg(tmp_path, broker_url, influx_client, prefix, **more):
    return load_config(env={}, overrides={
        "broker": broker_url, "influx": influx_client.url, "influx_db": influx_client.database,
        "topic_prefix": prefix, "var": str(tmp_path / "var"), "secret_key": "test-secret",
        "web_refresh_s": 0.2, **more})


def write_readings(influx, topology, minutes: int = 30, end: float = NOW, do: float = 6.5,
                   turbidity: float = 12.0, segments: set[str] | None = None) -> None:
    lines = []
    for n in topology.creeks[0].nodes:
        if segments is not None and n.segment not in segments:
            continue
        for i in range(minutes):
            ts = int((end - (minutes - 1 - i) * 60) * 1000)
            fields = ({"do_mg_l": do, "turbidity_ntu": turbidity, "temp_c": 27.0, "battery_v": 3.9}
                      if n.kind == "sensor" else {"aerator_on": True, "power_w": 1400.0})
            fields["seq"] = i
            lines.append(line("telemetry", {"creek": "huanglong", "segment": n.segment, "node": n.id,
                                            "kind": n.kind}, fields, ts))
    influx.write_lines(lines)


@pytest.fixture
def make_app(tmp_path, broker_url, influx, prefix, topology):
    apps = []

    def make(live: bool = False, mqtt: bool = False, **settings):
        app = create_app(_cfg(tmp_path, broker_url, influx, prefix, **settings), topology,
                         influx=influx, live=live, mqtt=mqtt)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["rivermon"].close()


def login(client, app, name="ana", role="viewer", password="correct horse 1"):
    users = app.extensions["rivermon"].users
    if not any(u.name == name for u in users.all()):
        users.add(name, role, password)
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    r = client.post("/login", data={"name": name, "password": password, "csrf_token": token})
    assert r.status_code == 302, r.data
    with client.session_transaction() as s:
        return s["csrf"]


def test_segments_lists_every_segment_with_latest_values(make_app, influx, topology):
    write_readings(influx, topology, do=6.2, turbidity=14.0)
    app = make_app(web_public_view=True)
    body = app.test_client().get("/api/segments").get_json()
    ids = [s["id"] for s in body["segments"]]
    assert set(ids) == {s.id for s in topology.creeks[0].segments}
    for s in body["segments"]:
        assert s["status"] == "ok"
        assert s["do_mg_l"] == 6.2 and s["turbidity_ntu"] == 14.0
        assert s["updated"].endswith("+08:00")
        assert s["open_alerts"] == 0
        assert s["name"]["zh"] and s["name"]["en"] and s["creek"] == "huanglong"


def test_status_from_alerts_and_freshness(make_app, influx, topology, tmp_path):
    # hl-1 fresh, hl-2 stale (2 h old), the rest without data; a critical discharge on hl-1.
    write_readings(influx, topology, segments={"hl-1", "hl-3"})
    write_readings(influx, topology, end=NOW - 7200, segments={"hl-2"})
    app = make_app(web_public_view=True)
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    store.open_or_update("huanglong", "hl-1", "hl1-s1", "discharge", "critical", NOW - 300,
                         {"zh": "疑似排污", "en": "Suspected discharge"}, {"outlets": ["ol-l1"]})
    store.open_or_update("huanglong", "hl-3", "hl3-s1", "sensor_stuck", "critical", NOW - 300,
                         {"zh": "传感器卡值", "en": "Sensor stuck"})
    store.close()
    segs = {s["id"]: s for s in app.test_client().get("/api/segments").get_json()["segments"]}
    assert segs["hl-1"]["status"] == "critical" and segs["hl-1"]["open_alerts"] == 1
    assert segs["hl-1"]["top_alert"]["kind"] == "discharge"
    assert segs["hl-3"]["status"] == "warning"  # an equipment fault is never "critical" water
    assert segs["hl-2"]["status"] == "offline"
    assert segs["hl-4"]["status"] == "unknown" and segs["hl-4"]["do_mg_l"] is None


def test_topology_shape(make_app, topology):
    app = make_app(web_public_view=True)
    body = app.test_client().get("/api/topology").get_json()
    creek = body["creeks"][0]
    assert creek["id"] == "huanglong" and creek["name"]["zh"] == "华龙涌"
    seg = creek["segments"][0]
    assert {"id", "name", "channel", "start_m", "end_m", "downstream"} <= set(seg)
    assert {"id", "size", "bank", "channel", "chainage_m", "segment"} <= set(creek["outlets"][0])
    assert {"id", "kind", "channel", "chainage_m", "segment"} <= set(creek["nodes"][0])


def test_healthz_up_and_down(make_app, influx, tmp_path, broker_url, prefix, topology):
    app = make_app()
    r = app.test_client().get("/healthz")
    assert r.status_code == 200
    body = r.get_json()
    assert body["broker"]["ok"] and body["influx"]["ok"] and body["status"] == "ok"
    down = create_app(_cfg(tmp_path, "mqtt://127.0.0.1:9", influx, prefix,
                           influx="http://127.0.0.1:9"), topology, live=False, mqtt=False)
    try:
        r = down.test_client().get("/healthz")
        assert r.status_code == 503
        assert not r.get_json()["broker"]["ok"] and not r.get_json()["influx"]["ok"]
    finally:
        down.extensions["rivermon"].close()


def test_series_downsampled_and_validated(make_app, influx, topology):
    write_readings(influx, topology, minutes=120)
    app = make_app()
    c = app.test_client()
    login(c, app)
    r = c.get(f"/api/series?segment=hl-3&field=do_mg_l&start={NOW - 7200}&end={NOW + 1}")
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["interval_s"] == 30 and body["unit"] == "mg/L"
    assert {s["node"] for s in body["series"]} == {"hl3-s1", "hl3-s2"}
    pts = body["series"][0]["points"]
    assert 100 <= len(pts) <= 600 and pts[0][1] == 6.5
    day = c.get("/api/series?segment=hl-3&field=do_mg_l").get_json()
    assert day["interval_s"] == 300  # 24 h in at most 600 points
    for bad, param in [("segment=hl-3%27%20OR%201=1&field=do_mg_l", "segment"),
                       ("segment=hl-3&field=do_mg_l%22%3BDROP", "field"),
                       ("segment=nope&field=do_mg_l", "segment"),
                       ("segment=hl-3&field=do_mg_l&start=yesterday", "start"),
                       ("segment=hl-3&field=do_mg_l&start=2020-01-01T00:00:00", "start"),
                       ("segment=hl-3&field=do_mg_l&node=x%27y", "node"),
                       ("segment=hl-3", "field")]:
        r = c.get("/api/series?" + bad)
        assert r.status_code == 400, bad
        assert r.get_json()["param"] == param and param in r.get_json()["error"]


def test_alerts_api_and_actions(make_app, tmp_path, collector, prefix, influx):
    app = make_app(live=True, mqtt=True)
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", NOW - 60,
                                {"zh": "疑似排污", "en": "Suspected discharge"}, {"outlets": ["ol-l3"]})
    store.close()
    sub = collector([f"{prefix}/+/alerts"])
    c = app.test_client()
    assert c.get("/api/alerts?state=open").status_code == 401
    token = login(c, app, "li", "cleaner")
    alerts = c.get("/api/alerts?state=open").get_json()["alerts"]
    assert [x["id"] for x in alerts] == [a.id]
    assert alerts[0]["summary"]["zh"] == "疑似排污"
    deadline = time.time() + 10
    while not app.extensions["rivermon"].hub.broker_connected and time.time() < deadline:
        time.sleep(0.05)
    # Without the CSRF token the action is refused.
    assert c.post(f"/api/alerts/{a.id}/acknowledge", json={}).status_code == 400
    r = c.post(f"/api/alerts/{a.id}/acknowledge", json={"note": "on my way"},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.data
    ev = r.get_json()
    assert ev["state"] == "acknowledged" and ev["acknowledged_by"] == "li"
    assert ev["notes"][0]["text"] == "on my way"
    again = c.post(f"/api/alerts/{a.id}/acknowledge", json={}, headers={"X-CSRF-Token": token})
    assert again.status_code == 409 and "already acknowledged" in again.get_json()["error"]
    r = c.post(f"/api/alerts/{a.id}/resolve", json={}, headers={"X-CSRF-Token": token})
    assert r.get_json()["state"] == "resolved" and r.get_json()["resolved_by"] == "li"
    assert sub.wait_for(lambda ms: any(json.loads(m.payload)["state"] == "resolved" for m in ms))
    rows = influx.rows('SELECT "state", "resolved_by" FROM "alerts"')
    assert rows and rows[-1]["state"] == "resolved" and rows[-1]["resolved_by"] == "li"
    assert c.get("/api/alerts?state=open").get_json()["alerts"] == []
    assert c.get("/api/alerts?state=bogus").status_code == 400


def test_metrics_prometheus_text(make_app):
    app = make_app(web_public_view=True)
    c = app.test_client()
    c.get("/api/segments")
    text = c.get("/metrics").get_data(as_text=True)
    assert "# TYPE rivermon_web_requests_total counter" in text
    assert 'rivermon_web_requests_total{endpoint="api.segments",status="200"} 1' in text
    assert "rivermon_web_request_seconds_bucket" in text
    assert "rivermon_web_influx_up 1" in text


def test_front_page_renders_every_segment(make_app, influx, topology):
    write_readings(influx, topology)
    app = make_app(web_public_view=True)
    html = app.test_client().get("/").get_data(as_text=True)
    for s in topology.creeks[0].segments:
        assert s.name.zh in html and f'id="seg-line-{s.id}"' in html
    assert "<script>" not in html and "onclick" not in html


def test_segments_carry_node_and_aerator_state(make_app, influx, topology):
    write_readings(influx, topology, segments={"hl-3"})
    write_readings(influx, topology, end=NOW - 7200, segments={"hl-4"})
    app = make_app(web_public_view=True)
    body = app.test_client().get("/api/segments").get_json()
    assert body["nodes"]["hl3-s1"]["online"] is True and body["nodes"]["hl4-s1"]["online"] is False
    assert "hl1-s1" not in body["nodes"]
    assert body["aerators"]["hl3-a2"]["aerator_on"] is True

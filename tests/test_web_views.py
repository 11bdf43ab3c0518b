"""The APIs behind the pages: segment detail, compliance, alert statistics, fleet, aerator
commands, CSV exports, user administration."""

from __future__ import annotations

import csv
import io
import json
import time

from rivermon.core.alerts import AlertStore
from rivermon.core.influx import line

from test_web_api import NOW, login, make_app, write_readings  # noqa: F401 (fixture)

PASSWORD = "correct horse 1"


def test_segment_detail(make_app, influx, topology):
    write_readings(influx, topology, minutes=10)
    app = make_app()
    c = app.test_client()
    login(c, app)
    body = c.get("/api/segment/hl-3").get_json()
    assert body["segment"]["id"] == "hl-3" and body["segment"]["status"] == "ok"
    nodes = {n["id"]: n for n in body["nodes"]}
    assert set(nodes) == {"hl3-s1", "hl3-s2", "hl3-a1", "hl3-a2"}
    assert nodes["hl3-s1"]["latest"]["do_mg_l"]["value"] == 6.5
    assert nodes["hl3-a2"]["latest"]["aerator_on"]["value"] is True and nodes["hl3-a2"]["rated_w"] == 3000
    assert [b["id"] for b in body["bands"]] == ["I", "II", "III", "IV", "V", "bo_light", "bo_severe"]
    assert c.get("/api/segment/nope").status_code == 400
    page = c.get("/segment/hl-3").get_data(as_text=True)
    assert "肉菜市场对出河段" in page and "echarts-5.6.0.min.js" in page


def test_compliance_shares_and_alert_stats(make_app, influx, topology, tmp_path):
    write_readings(influx, topology, minutes=30, do=6.5, segments={"hl-1"})
    write_readings(influx, topology, minutes=10, end=NOW - 3600, do=1.0, segments={"hl-1"})
    app = make_app()
    c = app.test_client()
    login(c, app)
    body = c.get(f"/api/compliance?start={NOW - 86400}&end={NOW + 60}").get_json()
    seg = {s["segment"]: s for s in body["segments"]}
    assert seg["hl-1"]["samples"] == 40
    assert seg["hl-1"]["share"]["II"] == 0.75 and seg["hl-1"]["share"]["bo_light"] == 0.25
    assert seg["hl-2"]["samples"] == 0 and seg["hl-2"]["share"]["I"] is None
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    a, _ = store.open_or_update("huanglong", "hl-1", "hl1-s1", "low_do", "warning", NOW - 3600,
                                {"zh": "溶解氧偏低", "en": "Low DO"})
    store.acknowledge(a.id, "li", at=NOW - 3000)
    store.resolve(a.id, "li", at=NOW - 1800)
    store.close()
    stats = c.get(f"/api/alert-stats?start={NOW - 86400}&end={NOW + 60}").get_json()
    assert stats["total"] == 1 and stats["by_kind"] == {"low_do": 1}
    assert stats["mean_time_to_ack_s"] == 600 and stats["mean_time_to_resolve_s"] == 1800


def test_fleet(make_app, influx, topology):
    write_readings(influx, topology, minutes=5)
    lines = [
        line("telemetry", {"creek": "huanglong", "segment": "unassigned", "node": "stray-9",
                           "kind": "sensor"}, {"do_mg_l": 5.0, "seq": 3}, int(NOW * 1000)),
        line("node_status", {"creek": "huanglong", "node": "hl1-s1", "segment": "hl-1", "kind": "sensor"},
             {"state": "offline", "fw": "1.4.2"}, int(NOW * 1000)),
        line("rejects", {"creek": "huanglong", "node": "hl2-s1", "reason": "field_out_of_range"},
             {"topic": "rivermon/v1/huanglong/hl2-s1/telemetry", "payload": '{"do_mg_l": 99}',
              "detail": "do_mg_l 99 is above 50"}, int(NOW * 1000)),
    ]
    influx.write_lines(lines)
    app = make_app()
    c = app.test_client()
    login(c, app, "cleaner-li", "cleaner", PASSWORD)
    assert c.get("/api/fleet").status_code == 403
    login(c, app, "op", "operator", PASSWORD)
    body = c.get("/api/fleet").get_json()
    nodes = {n["id"]: n for n in body["nodes"]}
    assert len(nodes) == len(topology.creeks[0].nodes) + 1
    assert nodes["stray-9"]["registered"] is False and nodes["stray-9"]["segment"] == "unassigned"
    assert body["unregistered"] == ["stray-9"]
    assert nodes["hl1-s1"]["online"] is False and nodes["hl1-s1"]["fw"] == "1.4.2"
    assert nodes["hl2-s1"]["online"] is True and nodes["hl2-s1"]["battery_v"] == 3.9
    assert nodes["hl2-s1"]["seq"] == {"received": 5, "expected": 5, "missing": 0}
    assert body["rejects_by_reason"] == {"field_out_of_range": 1}
    assert body["recent_rejects"][0]["detail"] == "do_mg_l 99 is above 50"


def test_aerator_command_published(make_app, collector, prefix):
    app = make_app(live=True, mqtt=True)
    sub = collector([f"{prefix}/+/+/cmd"])
    c = app.test_client()
    token = login(c, app, "op", "operator", PASSWORD)
    deadline = time.time() + 10
    while not app.extensions["rivermon"].hub.broker_connected and time.time() < deadline:
        time.sleep(0.05)
    r = c.post("/api/aerators/hl3-a2/cmd", json={"aerator_on": False}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.data
    assert sub.wait_for(lambda ms: any(m.topic == f"{prefix}/huanglong/hl3-a2/cmd" for m in ms))
    msg = json.loads(sub.messages[0].payload)
    assert msg["aerator_on"] is False and msg["reason"] == "manual: op" and msg["ts"] > NOW - 60
    assert c.post("/api/aerators/hl3-s1/cmd", json={"aerator_on": True},
                  headers={"X-CSRF-Token": token}).status_code == 404
    assert c.post("/api/aerators/hl3-a2/cmd", json={"aerator_on": "maybe"},
                  headers={"X-CSRF-Token": token}).status_code == 400


def test_csv_exports(make_app, influx, topology, tmp_path):
    write_readings(influx, topology, minutes=3, segments={"hl-3"})
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", NOW - 60,
                                {"zh": "=HYPERLINK(\"x\")", "en": "Suspected discharge"})
    store.add_note(a.id, "li", "到场")
    store.close()
    app = make_app()
    c = app.test_client()
    login(c, app)
    r = c.get(f"/export/series.csv?segment=hl-3&field=do_mg_l&start={NOW - 600}&end={NOW + 60}")
    assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 6 and {x["node"] for x in rows} == {"hl3-s1", "hl3-s2"}
    assert rows[0]["do_mg_l"] == "6.5" and rows[0]["time"].endswith("+08:00")
    r = c.get(f"/export/alerts.csv?start={NOW - 3600}&end={NOW + 60}")
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0]["id"] == a.id and rows[0]["kind"] == "discharge" and "li: 到场" in rows[0]["notes"]
    assert rows[0]["summary_zh"].startswith("'=")  # never a live spreadsheet formula


def test_user_admin_page(make_app):
    app = make_app()
    c = app.test_client()
    token = login(c, app, "boss", "admin", PASSWORD)
    r = c.post("/admin/users", data={"csrf_token": token, "action": "add", "name": "zhang",
                                     "role": "cleaner", "password": "long-enough-9"})
    assert r.status_code == 302
    users = {u.name: u.role for u in app.extensions["rivermon"].users.all()}
    assert users["zhang"] == "cleaner"
    r = c.post("/admin/users", data={"csrf_token": token, "action": "role", "name": "zhang", "role": "operator"})
    assert r.status_code == 302 and {u.name: u.role for u in app.extensions["rivermon"].users.all()}["zhang"] == "operator"
    r = c.post("/admin/users", data={"csrf_token": token, "action": "delete", "name": "boss"})
    assert r.status_code == 400 and "cannot delete yourself" in r.get_data(as_text=True)
    r = c.post("/admin/users", data={"csrf_token": token, "action": "add", "name": "x y",
                                     "role": "admin", "password": "long-enough-9"})
    assert r.status_code == 400
    assert "zhang" in c.get("/admin/users").get_data(as_text=True)


def test_alert_page_and_language(make_app, tmp_path):
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", NOW,
                                {"zh": "疑似排污", "en": "Suspected discharge"})
    store.close()
    app = make_app()
    c = app.test_client()
    token = login(c, app)
    page = c.get(f"/alerts/{a.id}").get_data(as_text=True)
    assert f'data-single="{a.id}"' in page and "告警" in page
    c.post("/lang", data={"csrf_token": token, "lang": "en", "next": f"/alerts/{a.id}"})
    page = c.get(f"/alerts/{a.id}").get_data(as_text=True)
    assert '<html lang="en">' in page and "Alerts" in page


def test_monthly_report_and_workorders(make_app, influx, topology, tmp_path):
    write_readings(influx, topology, minutes=30)
    store = AlertStore(tmp_path / "var" / "alerts.sqlite")
    a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", NOW - 600,
                                {"zh": "疑似排污", "en": "Suspected discharge"}, {"outlets": ["ol-l3"]})
    store.acknowledge(a.id, "li", at=NOW - 300)
    store.close()
    app = make_app()
    c = app.test_client()
    login(c, app)
    from datetime import datetime
    from zoneinfo import ZoneInfo
    month = datetime.fromtimestamp(NOW, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    assert 'type="month"' in c.get("/report").get_data(as_text=True)
    page = c.get(f"/report?month={month}")
    assert page.status_code == 200 and "华龙涌" in page.get_data(as_text=True)
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none' covers it
    assert "<script" not in page.get_data(as_text=True)
    rows = c.get(f"/report?month={month}&format=csv").get_data(as_text=True)
    assert "hl-3" in rows
    assert c.get("/report?month=2026-13").status_code == 400
    assert c.get("/report?month=2999-01").status_code == 400
    wo = c.get("/export/workorders.json").get_json()
    assert json.dumps(wo, ensure_ascii=False).count(a.id) >= 1
    assert a.id in c.get("/export/workorders.csv").get_data(as_text=True)

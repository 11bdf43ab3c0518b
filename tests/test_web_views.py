"""The APIs behind the pages: segment detail, compliance, alert statistics, fleet, aerator
commands, CSV exports, user administration."""

from __future__ import annotations

import csv
import io
import json
import time

from rivermon.core import aeration
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


def _wait_connected(app) -> None:
    deadline = time.time() + 10
    while not app.extensions["rivermon"].hub.broker_connected and time.time() < deadline:
        time.sleep(0.05)


def test_aerator_order_without_controller_is_published_by_the_panel(make_app, collector, prefix, tmp_path):
    app = make_app(live=True, mqtt=True)
    sub = collector([f"{prefix}/+/+/cmd"])
    c = app.test_client()
    token = login(c, app, "op", "operator", PASSWORD)
    _wait_connected(app)
    r = c.post("/api/aerators/hl3-a2/cmd", json={"aerator_on": False}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["applied_by"] == "panel" and body["override"]["mode"] == "off"
    assert body["override"]["by"] == "op" and body["override"]["until"]
    assert sub.wait_for(lambda ms: any(m.topic == f"{prefix}/huanglong/hl3-a2/cmd" for m in ms))
    msg = json.loads(sub.messages[0].payload)
    assert msg["aerator_on"] is False and msg["reason"] == "人工操作 op / manual: op" and msg["ts"] > NOW - 60
    assert msg["control_mode"] == "manual" and msg["by"] == "op"
    # recorded in the shared store: the override (2 h by default) and the command log
    ovs = aeration.overrides(var=tmp_path / "var")
    assert [(o["node"], o["mode"], o["by"]) for o in ovs] == [("hl3-a2", "off", "op")]
    assert 7100 < ovs[0]["until"] - time.time() <= 7200
    cmds = aeration.recent_commands("hl-3", var=tmp_path / "var")
    assert cmds[0]["node"] == "hl3-a2" and cmds[0]["mode"] == "manual" and cmds[0]["rule"] == "override_direct"
    assert c.post("/api/aerators/hl3-s1/cmd", json={"aerator_on": True},
                  headers={"X-CSRF-Token": token}).status_code == 404
    assert c.post("/api/aerators/hl3-a2/cmd", json={"aerator_on": "maybe"},
                  headers={"X-CSRF-Token": token}).status_code == 400


def test_aerator_order_with_controller_running_is_left_to_it(make_app, collector, prefix, tmp_path):
    var = tmp_path / "var"
    with aeration.ControlStore(aeration.store_path(var)) as s:
        s.beat()  # a controller ticked just now
    app = make_app(live=True, mqtt=True)
    sub = collector([f"{prefix}/+/+/cmd"])
    c = app.test_client()
    token = login(c, app, "op", "operator", PASSWORD)
    _wait_connected(app)
    r = c.post("/api/aerators/hl3-a1/cmd", json={"mode": "on", "minutes": 30},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.data
    assert r.get_json()["applied_by"] == "controller" and r.get_json()["sent"] is None
    assert [(o["node"], o["mode"]) for o in aeration.overrides(var=var)] == [("hl3-a1", "on")]
    time.sleep(0.5)
    assert not sub.messages  # the controller publishes, not the panel
    r = c.post("/api/aerators/hl3-a1/cmd", json={"mode": "auto"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.get_json()["override"]["mode"] == "auto"
    assert aeration.overrides(var=var) == []
    assert [o["mode"] for o in aeration.override_log(var=var)] == ["auto", "on"]


def test_aerator_order_roles_csrf_and_bad_input(make_app, tmp_path):
    app = make_app()
    var = tmp_path / "var"
    for role in ("viewer", "cleaner"):
        c = app.test_client()
        token = login(c, app, f"u-{role}", role, PASSWORD)
        r = c.post("/api/aerators/hl3-a1/cmd", json={"mode": "on", "minutes": 30},
                   headers={"X-CSRF-Token": token})
        assert r.status_code == 403, (role, r.status_code)
    c = app.test_client()
    token = login(c, app, "op", "operator", PASSWORD)
    r = c.post("/api/aerators/hl3-a1/cmd", json={"mode": "on", "minutes": 30})  # no CSRF token
    assert r.status_code == 400 and "CSRF" in r.get_json()["error"]
    r = c.post("/api/aerators/hl3-a1/cmd", json={"mode": "on", "minutes": 30},
               headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 400
    assert aeration.overrides(var=var) == []  # nothing refused was stored
    for bad, param in (({"mode": "boost"}, "mode"), ({"mode": "on", "minutes": 0}, "minutes"),
                       ({"mode": "on", "minutes": 20000}, "minutes"),
                       ({"mode": "on", "minutes": "soon"}, "minutes"), ({}, "mode")):
        r = c.post("/api/aerators/hl3-a1/cmd", json=bad, headers={"X-CSRF-Token": token})
        assert r.status_code == 400 and r.get_json()["param"] == param, (bad, r.data)
    # no broker and no controller: stored, and said so
    r = c.post("/api/aerators/hl3-a1/cmd", json={"mode": "on", "minutes": 480},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.get_json()["applied_by"] == "pending" and r.get_json()["warning"]
    # everyone who can see the segment sees the order and its expiry
    viewer = app.test_client()
    login(viewer, app, "u-viewer", "viewer", PASSWORD)
    rows = {a["node"]: a for a in viewer.get("/api/aerators?segment=hl-3").get_json()["aerators"]}
    assert set(rows) == {"hl3-a1", "hl3-a2"}
    assert rows["hl3-a1"]["mode"] == "manual_on" and rows["hl3-a1"]["override"]["by"] == "op"
    until = rows["hl3-a1"]["override"]["until"]
    assert until.endswith("+08:00")
    from datetime import datetime
    assert 479 * 60 < datetime.fromisoformat(until).timestamp() - time.time() <= 480 * 60
    assert rows["hl3-a2"]["mode"] == "auto" and rows["hl3-a2"]["override"] is None


def test_segment_page_shows_aerator_state_mode_and_last_command(make_app, influx, topology, tmp_path):
    write_readings(influx, topology, minutes=5, segments={"hl-3"})
    var = tmp_path / "var"
    with aeration.ControlStore(aeration.store_path(var)) as s:
        s.log_command(creek="huanglong", segment="hl-3", node="hl3-a2", aerator_on=True, mode="auto",
                      rule="low_do", reason={"zh": "溶解氧 3.42 mg/L 低于开启点 4",
                                             "en": "DO 3.42 mg/L below the on point 4"}, do_mg_l=3.42)
    aeration.set_override("hl3-a1", "off", time.time() + 1800, "op-wang", var=var)
    app = make_app()
    c = app.test_client()
    login(c, app, "u-viewer", "viewer", PASSWORD)
    page = c.get("/segment/hl-3").get_data(as_text=True)
    card1 = page[page.index('data-node="hl3-a1"'):]
    card1 = card1[:card1.index("</article>")]
    assert 'data-mode="manual_off"' in card1 and "手动关" in card1 and "op-wang" in card1
    assert 'data-state="on"' in card1 and "1400 / 2200 W" in card1
    card2 = page[page.index('data-node="hl3-a2"'):]
    card2 = card2[:card2.index("</article>")]
    assert 'data-mode="auto"' in card2 and "自动" in card2 and "溶解氧 3.42 mg/L 低于开启点 4" in card2
    assert "data-order" not in page  # a viewer sees no buttons
    detail = c.get("/api/segment/hl-3").get_json()
    assert detail["command_log"][0]["reason"]["en"] == "DO 3.42 mg/L below the on point 4"
    assert detail["orders"][0]["by"] == "op-wang" and detail["orders"][0]["mode"] == "off"
    op = app.test_client()
    login(op, app, "op", "operator", PASSWORD)
    page = op.get("/segment/hl-3").get_data(as_text=True)
    assert page.count('data-order="on"') == 2 and 'value="30"' in page and 'value="480"' in page
    frag = op.get("/aerators/panel?segment=hl-3").get_data(as_text=True)
    assert 'id="aer-cards"' in frag and "<html" not in frag
    assert op.get("/aerators/panel?segment=nope").status_code == 404
    creek = op.get("/").get_data(as_text=True)
    assert 'data-node="hl3-a1"' in creek and 'data-mode="manual_off"' in creek
    op.post("/lang", data={"csrf_token": login(op, app, "op", "operator", PASSWORD), "lang": "en",
                           "next": "/segment/hl-3"})
    page = op.get("/segment/hl-3").get_data(as_text=True)
    assert "Manual off" in page and "DO 3.42 mg/L below the on point 4" in page


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

"""rivermon.notify without a broker: routes file, quiet hours, message text, payloads, signing,
and one delivery to a real local HTTP receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from rivermon.core.alerts import Alert
from rivermon.core.topology import load_topology
from rivermon.notify.message import Notice, Texts, render, render_digest
from rivermon.notify.quiet import parse_quiet_hours
from rivermon.notify.receiver import Receiver, verify_dingtalk
from rivermon.notify.routes import RoutesError, load_routes, parse_routes
from rivermon.notify.targets import DeliveryError, chat_payload, dingtalk_sign, send, signed_url

EXAMPLE = Path(__file__).resolve().parent.parent / "notify" / "routes.example.toml"
DEMO = EXAMPLE.with_name("routes.demo.toml")
PANEL = "http://panel.local:8080"


def event(kind: str = "discharge", severity: str = "critical", segment: str = "hl-3",
          state: str = "open", alert_id: str = "a-20261127-0042") -> dict:
    a = Alert(alert_id, "huanglong", segment, "hl3-do-1", kind, severity,
              1795710840.0, state=state, updated=1795710840.0,
              summary={"zh": "肉菜市场段溶解氧20分钟内下降3.1 mg/L，上游正常。",
                       "en": "DO fell 3.1 mg/L in 20 min; upstream normal."},
              evidence={"outlets": ["ol-5"]})
    return a.to_event()


# ---- routes file ---------------------------------------------------------------------------

def test_shipped_routes_files_load():
    example = load_routes(EXAMPLE)
    assert set(example.targets) == {"office-wecom", "leader-wecom", "ops-dingtalk", "workorders"}
    assert example.targets["ops-dingtalk"].secret.startswith("SEC")
    assert example.route("equipment").quiet_set and example.route("equipment").quiet is None
    demo = load_routes(DEMO)
    assert all(urlsplit(t.url).hostname == "127.0.0.1" for t in demo.targets.values())


def test_routing_by_severity_kind_class_and_segment():
    routes = load_routes(EXAMPLE)

    def names(**kw) -> set[str]:
        return {r.name for r in routes.matching(event(**kw))}

    assert names(kind="discharge", severity="critical", segment="hl-1") == {"water", "archive"}
    assert names(kind="low_do", severity="info", segment="hl-1") == {"archive"}
    assert names(kind="low_do", severity="info", segment="hl-3") == {"market-reach", "archive"}
    assert names(kind="sensor_stuck", severity="warning", segment="hl-1") == {"equipment", "archive"}
    assert names(kind="node_offline", severity="critical", segment="hl-3") == {
        "equipment", "market-reach", "archive"}
    # A creek-wide alert (segment "") concerns every segment, so segment routes hear it too.
    assert names(kind="rain", severity="warning", segment="") == {"water", "market-reach", "archive"}


@pytest.mark.parametrize("doc, message", [
    ({"targets": {"a": {"type": "slack", "url": "http://x"}}}, "targets.a.type: 'slack' is not one of"),
    ({"targets": {"a": {"type": "wecom", "url": "ftp://x"}}}, "targets.a.url"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x", "colour": 1}}}, "unknown key(s) colour"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x", "msgtype": "card"}}}, "targets.a.msgtype"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x", "secret": "s"}}}, "only for dingtalk"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}}, "routes": [{"targets": ["b"]}]},
     "routes[0].targets: unknown target 'b' (defined: a)"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}}, "routes": [{"name": "r"}]},
     "routes[0] (r).targets: a route needs at least one target"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}},
      "routes": [{"targets": ["a"], "severity": ["urgent"]}]}, "'urgent' not in info, warning, critical"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}},
      "routes": [{"targets": ["a"], "audience": ["fish"]}]}, "routes[0].audience"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}},
      "routes": [{"targets": ["a"], "segments": []}]}, "an empty list matches nothing"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}},
      "routes": [{"targets": ["a"], "remind_s": -1}]}, "routes[0].remind_s"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}},
      "routes": [{"targets": ["a"], "quiet_hours": "late"}]}, "routes[0].quiet_hours: 'late' must look like"),
    ({"targets": {"a": {"type": "wecom", "url": "http://x"}},
      "routes": [{"name": "r", "targets": ["a"]}, {"name": "r", "targets": ["a"]}]}, "used twice: r"),
    ({"target": {}}, "unknown top-level key(s) target"),
])
def test_routes_file_mistakes_are_named(doc, message):
    with pytest.raises(RoutesError) as err:
        parse_routes(doc)
    assert message in str(err.value)


def test_routes_file_missing_or_not_toml(tmp_path):
    with pytest.raises(RoutesError, match="does not exist"):
        load_routes(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[targets.a\n", encoding="utf-8")
    with pytest.raises(RoutesError, match="not valid TOML"):
        load_routes(bad)


def test_urls_are_masked_for_logs():
    routes = load_routes(EXAMPLE)
    shown = routes.targets["office-wecom"].display_url()
    assert "REPLACE" not in shown and shown.endswith("/cgi-bin/webhook/send?key=***")


# ---- quiet hours ---------------------------------------------------------------------------

def _ts(local: str) -> float:
    from datetime import datetime
    from zoneinfo import ZoneInfo
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def test_quiet_hours_across_midnight():
    q = parse_quiet_hours("22:00-07:00", "Asia/Shanghai")
    assert q.active(_ts("2026-11-27T23:30:00")) and q.active(_ts("2026-11-28T06:59:59"))
    assert not q.active(_ts("2026-11-27T21:59:59")) and not q.active(_ts("2026-11-28T07:00:00"))
    assert q.ends_after(_ts("2026-11-27T23:30:00")) == _ts("2026-11-28T07:00:00")
    assert q.ends_after(_ts("2026-11-28T03:00:00")) == _ts("2026-11-28T07:00:00")
    day = parse_quiet_hours("12:00:00-12:00:30", "Asia/Shanghai")
    assert day.active(_ts("2026-11-27T12:00:10")) and not day.active(_ts("2026-11-27T12:00:30"))
    assert day.ends_after(_ts("2026-11-27T12:00:10")) == _ts("2026-11-27T12:00:30")
    assert parse_quiet_hours("", "Asia/Shanghai") is None


@pytest.mark.parametrize("spec", ["22-07", "25:00-07:00", "07:00-07:00", "22:00"])
def test_quiet_hours_refused(spec):
    with pytest.raises(ValueError, match="notify_quiet_hours"):
        parse_quiet_hours(spec, "Asia/Shanghai")


# ---- text and payloads -------------------------------------------------------------------

@pytest.fixture(scope="module")
def texts() -> Texts:
    return Texts(PANEL + "/", "Asia/Shanghai", load_topology())


def test_wecom_markdown_payload_is_chinese_with_link(texts):
    routes = load_routes(EXAMPLE)
    msg = render(Notice("opened", event()), texts, "wecom")
    payload = chat_payload(routes.targets["office-wecom"], msg)
    assert set(payload) == {"msgtype", "markdown"} and payload["msgtype"] == "markdown"
    content = payload["markdown"]["content"]
    assert content.startswith('### <font color="warning">【严重】疑似排污 · 新告警</font>')
    for words in ("华龙涌 · 肉菜市场对出河段（hl-3）", "节点：hl3-do-1", "疑似排口：ol-5",
                  "状态：未确认", "溶解氧20分钟内下降", "开始：2026-11-27 00:34"):
        assert words in content
    assert content.rstrip().endswith(f"[查看告警详情]({PANEL}/alerts/a-20261127-0042)")
    text = chat_payload(routes.targets["leader-wecom"], render(Notice("opened", event()), texts, "text"))
    assert text["msgtype"] == "text" and text["text"]["mentioned_mobile_list"] == ["13800000000"]
    assert f"查看详情：{PANEL}/alerts/a-20261127-0042" in text["text"]["content"]


def test_every_reason_has_its_chinese_headline(texts):
    e = event()
    acked = {**e, "state": "acknowledged", "acknowledged_by": "李工"}
    heads = {
        "reminder": render(Notice("reminder", e, n=2, open_s=1830), texts, "text").title,
        "escalation": render(Notice("escalation", e, open_s=3600), texts, "text").title,
        "acknowledged": render(Notice("acknowledged", acked), texts, "text").title,
        "resolved": render(Notice("resolved", {**e, "state": "resolved", "resolved_by": "auto"}),
                           texts, "text").title,
        "severity": render(Notice("severity", e, previous_severity="warning"), texts, "text").title,
    }
    assert heads["reminder"].endswith("提醒（第2次）：告警已30分钟未确认")
    assert heads["escalation"].endswith("升级通知：严重告警已60分钟未确认")
    assert heads["acknowledged"].endswith("告警已确认（李工）")
    assert heads["resolved"].endswith("告警已恢复（自动）")
    assert heads["severity"].endswith("告警级别变化：警告 → 严重")


def test_long_summary_is_cut_but_link_kept(texts):
    e = event()
    e["summary"] = {"zh": "很长的说明。" * 2000, "en": "long " * 2000}
    for style, limit in (("wecom", 4096), ("text", 2048)):
        content = render(Notice("opened", e), texts, style).content
        assert len(content.encode()) <= limit
        assert content.rstrip().endswith("/alerts/a-20261127-0042)" if style != "text"
                                          else "/alerts/a-20261127-0042")


def test_digest_lists_each_alert_and_splits_to_fit(texts):
    events = [event(severity="warning", alert_id=f"a-20261127-{i:04d}") for i in range(60)]
    messages = render_digest(events, texts, "wecom", "22:00-07:00")
    assert len(messages) > 1
    joined = "\n".join(m.content for m in messages)
    assert all(len(m.content.encode()) <= 4096 for m in messages)
    assert all(f"/alerts/a-20261127-{i:04d}" in joined for i in range(60))
    assert "静默时段（22:00-07:00）汇总：60 条非紧急告警" in messages[0].content


def test_dingtalk_signature_matches_the_documented_algorithm():
    # DingTalk's own example computation: base64(HmacSHA256(secret, ts + "\n" + secret)).
    import base64
    import hashlib
    import hmac
    secret, ts = "SEC000000000000000000000", 1577262236757
    expected = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert dingtalk_sign(secret, ts) == expected
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", secret, ts)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query == {"access_token": "T", "timestamp": str(ts), "sign": expected}
    assert verify_dingtalk(query, secret, now=ts / 1000)
    assert not verify_dingtalk(query, "SECother", now=ts / 1000)
    assert not verify_dingtalk(query, secret, now=ts / 1000 + 7200)  # too old


# ---- one delivery, real HTTP -------------------------------------------------------------

def test_send_to_a_local_receiver_checks_status_and_errcode(texts):
    routes = parse_routes({"targets": {
        "w": {"type": "wecom", "url": "http://127.0.0.1:1/wecom?key=K"},
        "d": {"type": "dingtalk", "url": "http://127.0.0.1:1/dingtalk?access_token=T", "secret": "SECx"},
        "h": {"type": "webhook", "url": "http://127.0.0.1:1/hook", "headers": {"Authorization": "Bearer t"}},
    }})
    body = json.dumps(chat_payload(routes.targets["w"], render(Notice("opened", event()), texts, "wecom")),
                      ensure_ascii=False)
    with Receiver(dingtalk_secret="SECx") as rx, requests.Session() as session:
        targets = {n: t.__class__(**{**t.__dict__, "url": t.url.replace(":1/", f":{rx.port}/")})
                   for n, t in routes.targets.items()}
        send(session, targets["w"], body, 1, timeout=5)
        send(session, targets["d"], body, 2, timeout=5)
        send(session, targets["h"], json.dumps(event()), 3, timeout=5)
        got = rx.accepted()
        assert [r.path for r in got] == ["/wecom", "/dingtalk", "/hook"]
        assert got[0].json["markdown"]["content"].startswith("### ")
        assert got[0].headers["X-Rivermon-Delivery"] == "1"
        assert got[1].signature_ok is True
        assert got[2].headers["Authorization"] == "Bearer t" and got[2].json["id"] == "a-20261127-0042"
        # A robot that answers 200 with an errcode refused the message.
        wrong = targets["d"].__class__(**{**targets["d"].__dict__, "secret": "SECwrong"})
        with pytest.raises(DeliveryError, match="310000"):
            send(session, wrong, body, 4, timeout=5)
        rx.status = 500
        with pytest.raises(DeliveryError, match="HTTP 500"):
            send(session, targets["w"], body, 5, timeout=5)
        rx.stop()
        with pytest.raises(DeliveryError, match="ConnectionError") as err:
            send(session, targets["w"], body, 6, timeout=5)
        assert "key=K" not in str(err.value)  # robot keys never reach the logs


# ---- the command line --------------------------------------------------------------------

def test_cli_check_lists_routes_and_refuses_mistakes(tmp_path, capsys):
    from rivermon.cli import main

    assert main(["notify", "--check", "--notify-routes", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "4 target(s), 4 route(s)" in out and "key=***" in out and "REPLACE" not in out
    assert "route water: " in out and "escalate to leader-wecom" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[targets.a]\ntype = "wecom"\nurl = "http://x"\n[[routes]]\ntargets = ["b"]\n',
                   encoding="utf-8")
    assert main(["notify", "--check", "--notify-routes", str(bad)]) == 2
    assert "routes[0].targets: unknown target 'b' (defined: a)" in capsys.readouterr().err
    assert main(["notify", "--check", "--notify-routes", str(EXAMPLE),
                 "--notify-quiet-hours", "late"]) == 2
    assert "notify_quiet_hours: 'late' must look like HH:MM-HH:MM" in capsys.readouterr().err


def test_cli_status_reads_the_outbox(tmp_path, capsys):
    from rivermon.cli import main
    from rivermon.notify.outbox import Outbox

    assert main(["notify", "--status", "--var", str(tmp_path)]) == 2
    assert "no outbox at" in capsys.readouterr().err
    box = Outbox(tmp_path / "notify.sqlite")
    box.add_event("p/huanglong/alerts", b"{}", time.time())
    box.enqueue("office", "a-1", "opened", "{}", time.time())
    box.failed(1, "HTTP 500: down", time.time() + 5)
    box.close()
    assert main(["notify", "--status", "--var", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "events: 1 stored, 1 not yet routed, 0 refused" in out
    assert "office: 1 queued, 0 held, 0 delivered, 0 digested" in out and "last error: HTTP 500: down" in out


def test_one_notifier_per_outbox(tmp_path):
    from rivermon.core.config import load_config
    from rivermon.notify.service import NotifyService

    cfg = load_config(env={}, overrides={"var": str(tmp_path), "notify_routes": str(EXAMPLE)})
    first = NotifyService(cfg)
    try:
        with pytest.raises(ValueError, match="another rivermon notify is running"):
            NotifyService(cfg)
    finally:
        first.stop()
    NotifyService(cfg).stop()  # free again once the first is gone


# ---- the notifier's timers, on a clock of its own ------------------------------------------

def test_reminders_due_together_reach_a_robot_as_one_list(tmp_path, texts):
    from rivermon.notify.notifier import Notifier, Policy
    from rivermon.notify.outbox import Outbox

    routes = parse_routes({"targets": {"w": {"type": "wecom", "url": "http://127.0.0.1:1/w"},
                                       "h": {"type": "webhook", "url": "http://127.0.0.1:1/h"}},
                           "routes": [{"targets": ["w", "h"]}]})
    clock = [1000.0]
    box = Outbox(tmp_path / "notify.sqlite")
    notifier = Notifier(box, routes, texts, Policy(remind_s=600, escalate_s=0), clock=lambda: clock[0])
    try:
        with box.tx():
            notifier.apply(event(alert_id="a-1"), 1000.0)
            notifier.apply(event(alert_id="a-2", severity="warning"), 1030.0)  # within the 60 s slack
        for now in (1500.0, 1600.0):
            clock[0] = now
            notifier.tick()
        chat = [d for d in box.deliveries("w") if d["reason"] == "reminder"]
        assert len(chat) == 1 and chat[0]["alert_id"] == "a-1,a-2"
        content = json.loads(chat[0]["body"])["markdown"]["content"]
        assert content.startswith("### 提醒：2 条告警仍未确认")
        assert "第1次提醒，已10分钟未确认" in content and f"{PANEL}/alerts/a-2" in content
        hooks = [json.loads(d["body"])["notify"] for d in box.deliveries("h") if d["reason"] == "reminder"]
        assert hooks == [{"reason": "reminder", "link": f"{PANEL}/alerts/a-1", "n": 1, "unacknowledged_s": 600.0}]
        clock[0] = 1640.0  # a-2 on its own time for the webhook; the robot already has it
        notifier.tick()
        assert len([d for d in box.deliveries("w") if d["reason"] == "reminder"]) == 1
        assert len([d for d in box.deliveries("h") if d["reason"] == "reminder"]) == 2
    finally:
        notifier.close()
        box.close()


def test_dingtalk_mentions_are_in_the_text_too(texts):
    routes = parse_routes({"targets": {"d": {"type": "dingtalk", "url": "http://127.0.0.1:1/d",
                                             "mentioned_mobile_list": ["13800000000"]}}})
    payload = chat_payload(routes.targets["d"], render(Notice("opened", event()), texts, "dingtalk"))
    assert payload["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    assert payload["markdown"]["text"].endswith("@13800000000")
    assert payload["markdown"]["title"] == "【严重】疑似排污 · 新告警"

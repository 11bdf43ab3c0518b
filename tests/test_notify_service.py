"""rivermon notify against the real broker and a real local HTTP receiver.

Alert events are published as the model publishes them (``rivermon.core.alerts``); the receiver
records what arrives, can answer 500 or be stopped (the target is down), and checks DingTalk
signatures. Intervals are seconds, through the settings.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rivermon.core.alerts import Alert, AlertStore, publish_alert
from rivermon.core.config import Config, load_config
from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.notify.outbox import Outbox
from rivermon.notify.receiver import Receiver
from rivermon.notify.service import NotifyService

SECRET = "SECtest-signing-secret"
PANEL = "http://panel.test:8080"


def routes_toml(rx: Receiver) -> str:
    return f"""
[targets.wecom]
type = "wecom"
url = "{rx.url('/wecom?key=K1')}"
[targets.leader]
type = "wecom"
url = "{rx.url('/leader?key=K2')}"
msgtype = "text"
[targets.ding]
type = "dingtalk"
url = "{rx.url('/dingtalk?access_token=T')}"
secret = "{SECRET}"
[targets.hl3]
type = "wecom"
url = "{rx.url('/hl3?key=K3')}"
[targets.hook]
type = "webhook"
url = "{rx.url('/hook')}"

[[routes]]
name = "water"
audience = ["water"]
min_severity = "warning"
targets = ["wecom"]
escalate_to = ["leader"]

[[routes]]
name = "equipment"
audience = ["equipment"]
targets = ["ding"]

[[routes]]
name = "market"
segments = ["hl-3"]
targets = ["hl3"]

[[routes]]
name = "all"
targets = ["hook"]
remind_s = 0
"""


@pytest.fixture
def rx():
    receiver = Receiver(dingtalk_secret=SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def publish(broker_url, prefix):
    client = make_client(broker_url, f"pub-{uuid.uuid4().hex[:8]}")
    b = parse_broker_url(broker_url)
    client.connect(b.host, b.port)
    client.loop_start()

    def send(alert: Alert) -> None:
        publish_alert(client, prefix, alert).wait_for_publish(5)

    yield send
    client.loop_stop()
    client.disconnect()


def make_cfg(tmp_path: Path, broker_url: str, prefix: str, rx: Receiver, **overrides) -> Config:
    routes = tmp_path / "routes.toml"
    routes.write_text(routes_toml(rx), encoding="utf-8")
    values = {"broker": broker_url, "topic_prefix": prefix, "var": str(tmp_path / "var"),
              "notify_routes": str(routes), "notify_client_id": f"notify-{uuid.uuid4().hex[:8]}",
              "notify_session_expiry_s": 300, "notify_panel_url": PANEL,
              "notify_retry_base_s": 0.2, "notify_retry_max_s": 0.5,
              "notify_remind_s": 0, "notify_escalate_s": 0, **overrides}
    return load_config(env={}, overrides=values)


def cli_args(cfg: Config) -> list[str]:
    return ["notify", "--broker", cfg.broker, "--topic-prefix", cfg.topic_prefix, "--var", cfg.var,
            "--mqtt-protocol", cfg.mqtt_protocol,
            "--notify-routes", cfg.notify_routes, "--notify-client-id", cfg.notify_client_id,
            "--notify-panel-url", cfg.notify_panel_url, "--notify-remind-s", str(cfg.notify_remind_s),
            "--notify-escalate-s", str(cfg.notify_escalate_s),
            "--notify-retry-base-s", str(cfg.notify_retry_base_s),
            "--notify-retry-max-s", str(cfg.notify_retry_max_s)]


class Running:
    def __init__(self, cfg: Config):
        self.service = NotifyService(cfg).start()
        assert self.service.listener.subscribed.wait(10), "notify did not subscribe"

    def stop(self) -> None:
        self.service.stop()


@pytest.fixture
def running():
    started: list[Running] = []

    def start(cfg: Config) -> NotifyService:
        started.append(Running(cfg))
        return started[-1].service

    yield start
    for r in started:
        r.stop()


_n = iter(range(1, 10_000))


def alert(kind="discharge", severity="critical", segment="hl-1", node="hl1-s1") -> Alert:
    now = time.time()
    return Alert(f"a-20261127-{next(_n):04d}-{uuid.uuid4().hex[:4]}", "huanglong", segment, node, kind,
                 severity, now - 300, summary={"zh": f"{segment} 溶解氧骤降", "en": f"DO drop at {segment}"},
                 evidence={"outlets": ["ol-2"]}, updated=now)


def acked(a: Alert, by: str = "李工") -> Alert:
    a.state, a.acknowledged_by, a.acknowledged_at = "acknowledged", by, time.time()
    a.updated = a.acknowledged_at
    return a


def ids(received, path: str) -> list[str]:
    out = []
    for r in received:
        if r.path == path:
            content = r.content()
            out.append(content.split("/alerts/")[-1].split(")")[0].strip() if "/alerts/" in content else "")
    return out


def by_path(rx: Receiver, path: str) -> list:
    return rx.accepted(path)


# ---- routing and formats -------------------------------------------------------------------

def test_alerts_reach_the_routed_targets_in_their_formats(tmp_path, broker_url, prefix, rx, publish, running):
    svc = running(make_cfg(tmp_path, broker_url, prefix, rx))
    water = alert("discharge", "critical", "hl-1")
    fault = alert("sensor_stuck", "warning", "hl-3", "hl3-s1")
    minor = alert("low_do", "info", "hl-2", "hl2-s1")
    for a in (water, fault, minor):
        publish(a)
    assert rx.wait_for(lambda got: len([r for r in got if r.path == "/hook"]) == 3)
    assert rx.wait_for(lambda got: {r.path for r in got} == {"/hook", "/wecom", "/dingtalk", "/hl3"})

    [wecom] = by_path(rx, "/wecom")
    assert wecom.query == {"key": "K1"} and wecom.json["msgtype"] == "markdown"
    content = wecom.json["markdown"]["content"]
    assert "【严重】疑似排污 · 新告警" in content and "华龙涌 · 华龙路西段（上游）（hl-1）" in content
    assert f"[查看告警详情]({PANEL}/alerts/{water.id})" in content

    [ding] = by_path(rx, "/dingtalk")
    assert ding.signature_ok is True and ding.json["msgtype"] == "markdown"
    assert ding.json["markdown"]["title"] == "【警告】传感器卡值 · 新告警"
    assert f"{PANEL}/alerts/{fault.id}" in ding.json["markdown"]["text"]
    assert ids(by_path(rx, "/hl3"), "/hl3") == [fault.id]  # the segment route

    hooks = by_path(rx, "/hook")
    assert sorted(r.json["id"] for r in hooks) == sorted([water.id, fault.id, minor.id])
    first = next(r for r in hooks if r.json["id"] == water.id)
    assert first.json["notify"] == {"reason": "opened", "link": f"{PANEL}/alerts/{water.id}"}
    assert first.json["kind"] == "discharge" and first.json["summary"]["zh"] == "hl-1 溶解氧骤降"
    assert len({r.headers["X-Rivermon-Delivery"] for r in hooks}) == 3
    assert not by_path(rx, "/leader")  # escalation is off here

    # Acknowledged: everyone following the alert hears it once; a repeat of the same message is
    # stored once, and an older event arriving late (still "open") changes nothing.
    late = dataclasses.replace(water, summary={"zh": "迟到的旧事件", "en": "late"})
    publish(acked(water))
    publish(water)
    publish(late)
    assert rx.wait_for(lambda got: len([r for r in got if r.path == "/wecom"]) == 2)
    assert "告警已确认（李工）" in by_path(rx, "/wecom")[1].content()
    assert rx.wait_for(lambda got: len([r for r in got if r.path == "/hook"]) == 4)
    time.sleep(0.5)
    assert len(by_path(rx, "/wecom")) == 2 and len(by_path(rx, "/hook")) == 4

    # A malformed event is kept with its reason and does not stop the service.
    client = svc.listener.client
    # Readings of a creek named "alerts" match the wildcard too; they are not alert events.
    client.publish(f"{prefix}/_accepted/alerts", b'[{"node": "n1", "ts": 1}]', qos=1).wait_for_publish(5)
    client.publish(f"{prefix}/huanglong/alerts", b'{"id": "x", "severity": "loud"}', qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while svc.outbox.status()["events"]["refused"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    # 3 opened + acknowledged (its repeat stored once) + the late one + the bad one.
    assert svc.outbox.status()["events"] == {"stored": 6, "pending": 0, "refused": 1}
    assert svc.outbox.alert(water.id).state == "acknowledged"
    assert "'creek' is missing" in svc.outbox.rejected_events()[0][3]


# ---- target down ---------------------------------------------------------------------------

def test_target_down_queues_then_delivers_in_order_once(tmp_path, broker_url, prefix, rx, publish, running):
    svc = running(make_cfg(tmp_path, broker_url, prefix, rx))
    rx.status = 500
    alerts = [alert("discharge", "critical", f"hl-{i}") for i in (1, 2, 4)]
    for a in alerts:
        publish(a)
    # The head is retried with backoff; nothing behind it overtakes it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = svc.outbox.deliveries("wecom")
        if len(rows) == 3 and rows[0]["attempts"] >= 3:
            break
        time.sleep(0.05)
    rows = svc.outbox.deliveries("wecom")
    assert [r["status"] for r in rows] == ["queued"] * 3 and rows[0]["attempts"] >= 3
    assert rows[1]["attempts"] == 0 and "HTTP 500" in rows[0]["last_error"]
    tried = {r.body for r in rx.received if r.path == "/wecom"}
    assert len(tried) == 1  # only the first message was ever attempted

    rx.stop()  # now the target does not answer at all
    time.sleep(1.0)
    rx.status = 200
    rx.start()
    assert rx.wait_for(lambda got: len([r for r in got if r.path == "/wecom"]) == 3, timeout=10)
    assert ids(rx.accepted(), "/wecom") == [a.id for a in alerts]
    assert rx.wait_for(lambda got: len([r for r in got if r.path == "/hook"]) == 3)
    assert [r.json["id"] for r in by_path(rx, "/hook")] == [a.id for a in alerts]
    time.sleep(0.5)
    assert len(by_path(rx, "/wecom")) == 3  # no duplicates
    assert all(r["status"] == "delivered" for r in svc.outbox.deliveries())


@pytest.mark.e2e
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_restart_keeps_the_outbox_and_the_broker_keeps_events(tmp_path, broker_url, prefix, rx, publish,
                                                              service, protocol):
    cfg = make_cfg(tmp_path, broker_url, prefix, rx, mqtt_protocol=protocol)
    rx.stop()  # the target is down from the start
    proc = service(*cli_args(cfg))
    _wait_log(proc, '"subscribed"')
    first = alert("discharge", "critical", "hl-1")
    publish(first)
    box_path = Path(cfg.var) / "notify.sqlite"
    _wait_until(lambda: _queued(box_path, "wecom") == 1)
    proc.kill9()  # queued, undelivered, and the process gone without a goodbye
    second = alert("black_odorous", "critical", "hl-2")
    publish(second)  # published while notify is down: the broker keeps it for the session
    rx.status = 200
    rx.start()
    service(*cli_args(cfg))
    assert rx.wait_for(lambda got: len([r for r in got if r.path == "/wecom"]) == 2, timeout=15)
    assert ids(rx.accepted(), "/wecom") == [first.id, second.id]
    time.sleep(0.5)
    assert len(by_path(rx, "/wecom")) == 2 and len(by_path(rx, "/hook")) == 2


def _wait_log(proc, needle: str, timeout: float = 15) -> None:
    _wait_until(lambda: needle in proc.log(), timeout, lambda: proc.log())


def _wait_until(cond, timeout: float = 10, why=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out; {why()}")


def _queued(path: Path, target: str) -> int:
    if not path.exists():
        return 0
    box = Outbox(path)
    try:
        return sum(1 for r in box.deliveries(target) if r["status"] == "queued")
    finally:
        box.close()


# ---- reminders and escalation -------------------------------------------------------------

def test_reminders_until_acknowledged_and_escalation(tmp_path, broker_url, prefix, rx, publish, running):
    running(make_cfg(tmp_path, broker_url, prefix, rx, notify_remind_s=1.0, notify_escalate_s=2.0))
    crit = alert("discharge", "critical", "hl-1")
    warn = alert("low_do", "warning", "hl-2", "hl2-s1")
    publish(crit)
    publish(warn)
    assert rx.wait_for(lambda got: any(r.path == "/leader" for r in got), timeout=8)
    [esc] = by_path(rx, "/leader")
    assert "升级通知：严重告警已" in esc.content() and f"/alerts/{crit.id}" in esc.content()
    wecom = [r.content() for r in by_path(rx, "/wecom")]
    # Reminders due together reach a robot as one list (robots allow ~20 messages a minute).
    assert any(("提醒（第1次）" in c or "第1次提醒" in c) and crit.id in c for c in wecom)
    assert any(("提醒（第1次）" in c or "第1次提醒" in c) and warn.id in c for c in wecom)  # warnings too
    assert not any(warn.id in r.content() for r in by_path(rx, "/leader"))  # but never escalated

    publish(acked(crit))
    publish(acked(warn))
    assert rx.wait_for(lambda got: any("告警已确认" in r.content() for r in got if r.path == "/leader"))
    time.sleep(0.3)
    settled = len(rx.accepted())
    time.sleep(2.2)  # two reminder periods: nothing more once acknowledged
    assert len(rx.accepted()) == settled
    assert sum("告警已确认" in r.content() for r in by_path(rx, "/wecom")) == 2
    assert len(by_path(rx, "/leader")) == 2  # escalation once, then its acknowledgement


def test_acknowledged_in_the_alert_store_stops_reminders(tmp_path, broker_url, prefix, rx, publish, running):
    cfg = make_cfg(tmp_path, broker_url, prefix, rx, notify_remind_s=1.0)
    store = AlertStore(Path(cfg.var) / "alerts.sqlite")
    try:
        a, _ = store.open_or_update("huanglong", "hl-1", "hl1-s1", "discharge", "critical",
                                    time.time() - 60, {"zh": "疑似排污", "en": "discharge"})
        running(cfg)
        publish(a)
        assert rx.wait_for(lambda got: any("提醒（第1次）" in r.content() for r in got if r.path == "/wecom"))
        store.acknowledge(a.id, "值班员")  # the panel acknowledged; its event has not arrived
        assert rx.wait_for(lambda got: any("告警已确认（值班员）" in r.content() for r in got))
        settled = len(by_path(rx, "/wecom"))
        time.sleep(2.2)
        assert len(by_path(rx, "/wecom")) == settled
        publish(store.get(a.id))  # the event arriving late changes nothing
        time.sleep(0.5)
        assert len(by_path(rx, "/wecom")) == settled
    finally:
        store.close()


# ---- quiet hours -----------------------------------------------------------------------------

def test_quiet_hours_hold_non_critical_then_digest(tmp_path, broker_url, prefix, rx, publish, running):
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    spec = f"{(local - timedelta(seconds=2)):%H:%M:%S}-{(local + timedelta(seconds=6)):%H:%M:%S}"
    running(make_cfg(tmp_path, broker_url, prefix, rx, notify_quiet_hours=spec, notify_remind_s=1.0))
    warn = alert("low_do", "warning", "hl-2", "hl2-s1")
    crit = alert("discharge", "critical", "hl-1")
    publish(warn)
    publish(crit)
    publish(acked(warn, "夜班"))
    assert rx.wait_for(lambda got: ids(got, "/wecom") == [crit.id])
    time.sleep(1.5)  # a reminder period: the critical one is reminded, the warning is not
    assert all(warn.id not in r.content() for r in by_path(rx, "/wecom"))
    # Webhooks are machines: never quiet.
    hooks = [(r.json["id"], r.json["notify"]["reason"]) for r in by_path(rx, "/hook")]
    assert sorted(hooks) == sorted([(warn.id, "opened"), (crit.id, "opened"), (warn.id, "acknowledged")])

    # Quiet hours end: one digest on the chat target with the held alert's state now.
    assert rx.wait_for(lambda got: any("汇总" in r.content() for r in got if r.path == "/wecom"), timeout=15)
    [digest] = [r for r in by_path(rx, "/wecom") if "汇总" in r.content()]
    text = digest.content()
    assert f"静默时段（{spec}）汇总：1 条非紧急告警" in text
    assert f"{PANEL}/alerts/{warn.id}" in text and "当前已确认" in text
    assert crit.id not in text
    time.sleep(0.5)
    assert sum("汇总" in r.content() for r in by_path(rx, "/wecom")) == 1


# ---- issue 8, done when --------------------------------------------------------------------

@pytest.mark.e2e
def test_critical_alert_reaches_local_wecom_receiver_within_seconds_and_again_as_reminder(
        tmp_path, broker_url, prefix, rx, publish, service):
    """A critical alert raised the way the model raises it reaches a WeCom-format receiver from
    the real `rivermon notify` process within seconds, and again as a reminder."""
    cfg = make_cfg(tmp_path, broker_url, prefix, rx, notify_remind_s=2.0)
    proc = service(*cli_args(cfg))
    _wait_log(proc, '"subscribed"')
    store = AlertStore(Path(cfg.var) / "alerts.sqlite")
    try:
        a, change = store.open_or_update(
            "huanglong", "hl-3", "hl3-s1", "discharge", "critical", time.time() - 120,
            {"zh": "肉菜市场段溶解氧骤降，上游正常，疑似排口 ol-5 排污", "en": "Suspected discharge at ol-5"},
            {"outlets": ["ol-5"]})
        assert change == "opened"
        sent = time.time()
        publish(a)
        assert rx.wait_for(lambda got: any(r.path == "/wecom" for r in got), timeout=5)
        first = by_path(rx, "/wecom")[0]
        assert first.at - sent < 5
        assert first.json["msgtype"] == "markdown"
        assert "【严重】疑似排污 · 新告警" in first.json["markdown"]["content"]
        assert f"{PANEL}/alerts/{a.id}" in first.json["markdown"]["content"]
        assert rx.wait_for(lambda got: any("提醒（第1次）" in r.content() for r in got if r.path == "/wecom"),
                           timeout=8)
        reminder = next(r for r in by_path(rx, "/wecom") if "提醒（第1次）" in r.content())
        assert 1.5 <= reminder.at - first.at < 6 and f"/alerts/{a.id}" in reminder.content()
    finally:
        store.close()
    assert proc.proc.poll() is None, proc.log()[-2000:]

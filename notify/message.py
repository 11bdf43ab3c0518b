"""Message text: Chinese first (with the English line after), a link to the alert in the panel.

Three styles: ``wecom`` markdown (WeCom's ``<font color>`` subset), ``dingtalk`` markdown
(plain markdown) and ``text``. Each message fits the robots' size limits (WeCom: markdown
4096 bytes, text 2048 bytes); an over-long summary is shortened, never the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from rivermon.core.alerts import KIND_NAMES, severity_rank
from rivermon.core.topology import Topology

SEVERITY_ZH = {"info": "提示", "warning": "警告", "critical": "严重"}
STATE_ZH = {"open": "未确认", "acknowledged": "已确认", "resolved": "已恢复"}
AUDIENCE_ZH = {"water": "水质事件", "equipment": "设备故障"}
WECOM_COLOR = {"info": "info", "warning": "warning", "critical": "warning"}
# Bytes, UTF-8: WeCom's documented limits (markdown 4096, text 2048); DingTalk allows more.
LIMITS = {("wecom", "markdown"): 4096, ("wecom", "text"): 2048,
          ("dingtalk", "markdown"): 4096, ("dingtalk", "text"): 4096}

REASONS = ("opened", "severity", "acknowledged", "resolved", "reminder", "escalation")


@dataclass(frozen=True)
class Notice:
    """Why a message about one alert is sent, with what the text needs to say it."""

    reason: str
    event: dict[str, Any]
    n: int = 0                      # the reminder's number
    open_s: float = 0.0             # how long it has been unacknowledged
    previous_severity: str = ""     # for a severity change


@dataclass(frozen=True)
class Message:
    title: str
    content: str


@dataclass(frozen=True)
class Texts:
    """What rendering needs besides the alert: the panel URL, the time zone, the names."""

    panel_url: str
    tz: str = "Asia/Shanghai"
    topology: Topology | None = None

    def link(self, alert_id: str) -> str:
        return f"{self.panel_url.rstrip('/')}/alerts/{quote(str(alert_id), safe='')}"

    def place(self, event: dict[str, Any]) -> str:
        """``华龙涌 · 肉菜市场对出河段（hl-3）``; creek-wide alerts say 全河涌."""
        creek_id, seg_id = str(event.get("creek", "")), event.get("segment") or ""
        creek = self.topology.creek(creek_id) if self.topology else None
        creek_name = creek.name.zh if creek else creek_id
        if not seg_id:
            return f"{creek_name} · 全河涌"
        try:
            seg_name = creek.segment(seg_id).name.zh if creek else ""
        except KeyError:
            seg_name = ""
        return f"{creek_name} · {seg_name}（{seg_id}）" if seg_name else f"{creek_name} · {seg_id}"

    def time(self, value: Any) -> str:
        """An RFC 3339 string or Unix seconds -> ``2026-11-27 02:14`` in the local zone."""
        if value in (None, ""):
            return "—"
        try:
            dt = (datetime.fromtimestamp(float(value), ZoneInfo(self.tz))
                  if isinstance(value, (int, float)) else
                  datetime.fromisoformat(str(value)).astimezone(ZoneInfo(self.tz)))
        except (ValueError, OverflowError):
            return str(value)
        return dt.strftime("%Y-%m-%d %H:%M")


def kind_name(event: dict[str, Any]) -> dict[str, str]:
    kind = str(event.get("kind", ""))
    given = event.get("kind_name")
    if isinstance(given, dict) and given.get("zh"):
        return {"zh": str(given["zh"]), "en": str(given.get("en", kind))}
    return KIND_NAMES.get(kind, {"zh": kind, "en": kind})


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)}秒"
    return f"{int(seconds // 60)}分钟"


def headline(notice: Notice) -> str:
    """What happened, in Chinese: 新告警, 提醒（第2次）..., 升级通知..., 已确认, 已恢复."""
    e = notice.event
    if notice.reason == "opened":
        return "新告警" if e.get("state", "open") == "open" else f"新告警（{STATE_ZH.get(e.get('state'), '')}）"
    if notice.reason == "severity":
        old = SEVERITY_ZH.get(notice.previous_severity, notice.previous_severity)
        return f"告警级别变化：{old} → {SEVERITY_ZH.get(e.get('severity'), e.get('severity'))}"
    if notice.reason == "acknowledged":
        return f"告警已确认（{e.get('acknowledged_by') or '值班人员'}）"
    if notice.reason == "resolved":
        by = e.get("resolved_by")
        return "告警已恢复（自动）" if by == "auto" else f"告警已恢复（{by or '值班人员'}）"
    if notice.reason == "reminder":
        return f"提醒（第{notice.n}次）：告警已{_minutes(notice.open_s)}未确认"
    if notice.reason == "escalation":
        return f"升级通知：严重告警已{_minutes(notice.open_s)}未确认"
    return notice.reason


def _summary(e: dict[str, Any], lang: str) -> str:
    summary = e.get("summary") if isinstance(e.get("summary"), dict) else {}
    return str(summary.get(lang) or "").strip()


def _detail_lines(notice: Notice, t: Texts) -> list[tuple[str, str]]:
    e = notice.event
    rows = [("地点", t.place(e))]
    if e.get("node"):
        rows.append(("节点", str(e["node"])))
    rows.append(("类别", AUDIENCE_ZH.get(e.get("audience") or "", "") or str(e.get("kind", ""))))
    rows.append(("开始", t.time(e.get("start"))))
    if e.get("end"):
        rows.append(("结束", t.time(e.get("end"))))
    rows.append(("状态", STATE_ZH.get(str(e.get("state")), str(e.get("state")))))
    evidence = e.get("evidence") if isinstance(e.get("evidence"), dict) else {}
    outlets = evidence.get("outlets")
    if isinstance(outlets, list) and outlets:
        rows.append(("疑似排口", "、".join(str(o.get("id", o)) if isinstance(o, dict) else str(o)
                                       for o in outlets[:5])))
    rows.append(("编号", str(e.get("id", ""))))
    return rows


def title_of(notice: Notice) -> str:
    e = notice.event
    sev = SEVERITY_ZH.get(str(e.get("severity")), str(e.get("severity")))
    return f"【{sev}】{kind_name(e)['zh']} · {headline(notice)}"


def english_line(notice: Notice, t: Texts) -> str:
    e = notice.event
    where = e.get("segment") or "creek-wide"
    text = _summary(e, "en")
    return (f"{kind_name(e)['en']} ({e.get('severity')}, {e.get('state')}) at "
            f"{e.get('creek')} {where}{': ' + text if text else ''} [{notice.reason}]")


def render(notice: Notice, t: Texts, style: str) -> Message:
    """One message in ``wecom``/``dingtalk`` markdown or ``text`` style."""
    title, link = title_of(notice), t.link(notice.event.get("id", ""))
    zh = _summary(notice.event, "zh")
    rows = _detail_lines(notice, t)
    if style == "text":
        body = [title] + [f"{k}：{v}" for k, v in rows] + ([f"说明：{zh}"] if zh else [])
        body.append(english_line(notice, t))
        tail = f"查看详情：{link}"
        return Message(title, _fit(body, tail, LIMITS[("wecom", "text")]))
    sev = str(notice.event.get("severity"))
    if style == "wecom":
        head = f'### <font color="{WECOM_COLOR.get(sev, "comment")}">{title}</font>'
        body = [head] + [f"> {k}：{v}" for k, v in rows] + ([f"> 说明：{zh}"] if zh else [])
        body.append(f'<font color="comment">{english_line(notice, t)}</font>')
    else:
        body = [f"### {title}", ""] + [f"- {k}：{v}" for k, v in rows] + (
            [f"- 说明：{zh}"] if zh else []) + ["", f"> {english_line(notice, t)}", ""]
    tail = f"[查看告警详情]({link})"
    return Message(title, _fit(body, tail, LIMITS[("wecom", "markdown")]))


def render_digest(events: list[dict[str, Any]], t: Texts, style: str, window: str) -> list[Message]:
    """The quiet-hours digest: one line per held alert (its state now), split to fit the limits."""
    lines = [_digest_line(e, t, style) for e in events]
    head = f"静默时段（{window}）汇总：{len(events)} 条非紧急告警"
    english = f"Quiet-hours digest ({window}): {len(events)} non-critical alert(s)"
    return _list_messages(f"【汇总】{head}", head, english, lines, style)


def render_reminders(items: list[tuple[dict[str, Any], int, float]], t: Texts,
                     style: str) -> list[Message]:
    """One reminder for several alerts due at once (``(event, n, unacknowledged_s)`` each).

    The robots allow about 20 messages a minute; a burst of reminders, one per alert, would
    hit that limit and bury the group, so they go out as one list.
    """
    worst = max((str(e.get("severity")) for e, _, _ in items), key=severity_rank)
    lines = [_digest_line(e, t, style, f"第{n}次提醒，已{_minutes(open_s)}未确认") for e, n, open_s in items]
    head = f"提醒：{len(items)} 条告警仍未确认"
    english = f"Reminder: {len(items)} alert(s) still unacknowledged"
    title = f"【{SEVERITY_ZH.get(str(worst), str(worst))}】{head}"
    return _list_messages(title, head, english, lines, style)


def _list_messages(title: str, head: str, english: str, lines: list[str], style: str) -> list[Message]:
    """A heading, one line per alert and an English footer, split into messages that fit."""
    limit = LIMITS[("wecom", "text" if style == "text" else "markdown")]
    chunks: list[list[str]] = [[]]
    budget = limit - len(head.encode()) - len(english.encode()) - 100
    for line in lines:
        if chunks[-1] and sum(len(x.encode()) + 1 for x in chunks[-1]) + len(line.encode()) > budget:
            chunks.append([])
        chunks[-1].append(line)
    out = []
    for i, chunk in enumerate(chunks, 1):
        part = f"（{i}/{len(chunks)}）" if len(chunks) > 1 else ""
        top = f"### {head}{part}" if style != "text" else f"{head}{part}"
        foot = f'<font color="comment">{english}</font>' if style == "wecom" else english
        out.append(Message(title + part, "\n".join([top, *chunk, foot])))
    return out


def _digest_line(e: dict[str, Any], t: Texts, style: str, status: str = "") -> str:
    sev = SEVERITY_ZH.get(str(e.get("severity")), str(e.get("severity")))
    status = status or f"当前{STATE_ZH.get(str(e.get('state')), str(e.get('state')))}"
    text = f"【{sev}】{kind_name(e)['zh']} {t.place(e)} {t.time(e.get('start'))} 起，{status}"
    zh = _summary(e, "zh")
    if zh:
        text += f"：{zh[:80]}"
    link = t.link(e.get("id", ""))
    return f"{text} {link}" if style == "text" else f"- {text} [详情]({link})"


def _fit(body: list[str], tail: str, limit: int) -> str:
    """Join ``body`` and the ``tail`` (the link, always kept) within ``limit`` UTF-8 bytes."""
    text = "\n".join(body)
    room = limit - len(tail.encode()) - 4
    raw = text.encode()
    if len(raw) > room:
        text = raw[:max(0, room - 3)].decode("utf-8", errors="ignore") + "…"
    return f"{text}\n{tail}"

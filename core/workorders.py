"""Work orders: alerts as rows for the river-chief patrol workflow (CSV and JSON).

One row per alert: where (segment names, channel, chainage of the outlet named in the
evidence or else of the node, bank), when, what (kind in Chinese and English, severity,
the evidence sentence), who handled it (acknowledged_by, resolved_by, notes) and the result
(state, resolved time, how long it took). ``rivermon workorders`` and the panel serve the same
rows from :func:`workorder_rows`.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

from rivermon.core.alerts import KIND_NAMES, Alert, format_time
from rivermon.core.topology import Creek

__all__ = ["WORKORDER_COLUMNS", "workorder_row", "workorder_rows", "workorders_csv",
           "workorders_json", "SEVERITY_ZH", "STATE_ZH", "BANK_ZH"]

WORKORDER_COLUMNS = (
    "id", "creek", "segment", "segment_zh", "segment_en", "channel", "channel_zh", "chainage_m",
    "located_by", "node", "node_chainage_m", "outlet", "outlet_chainage_m", "bank", "location_zh",
    "start", "end", "kind", "kind_zh", "kind_en", "severity", "severity_zh", "audience",
    "summary_zh", "summary_en", "evidence_zh", "evidence_en", "evidence_json",
    "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "notes", "handlers",
    "state", "state_zh", "result_zh", "minutes_to_acknowledge", "minutes_to_resolve",
)
SEVERITY_ZH = {"info": "提示", "warning": "警告", "critical": "严重"}
STATE_ZH = {"open": "待处理", "acknowledged": "已确认，处理中", "resolved": "已解决"}
BANK_ZH = {"north": "北岸", "south": "南岸", "east": "东岸", "west": "西岸"}
AUDIENCE_ZH = {"water": "水体事件", "equipment": "设备故障"}


def _outlet_id(evidence: dict[str, Any]) -> str | None:
    """The outlet the evidence names (``outlet`` or the first of ``outlets``), if any."""
    one = evidence.get("outlet")
    if isinstance(one, str) and one:
        return one
    many = evidence.get("outlets")
    if isinstance(many, list) and many:
        first = many[0]
        if isinstance(first, dict):
            first = first.get("id")
        return first if isinstance(first, str) else None
    return None


def _location(alert: Alert, creek: Creek | None) -> dict[str, Any]:
    """Segment names and chainage: the named outlet's place first, else the node's."""
    loc: dict[str, Any] = {"segment_zh": "", "segment_en": "", "channel": "", "channel_zh": "",
                           "chainage_m": None, "located_by": "", "node_chainage_m": None,
                           "outlet": _outlet_id(alert.evidence) or "", "outlet_chainage_m": None,
                           "bank": ""}
    if creek is None:
        return loc
    if alert.segment:
        try:
            seg = creek.segment(alert.segment)
            loc["segment_zh"], loc["segment_en"] = seg.name.zh, seg.name.en
            loc["channel"] = seg.channel
        except KeyError:
            pass
    node = creek.node(alert.node) if alert.node else None
    if node is not None:
        loc["node_chainage_m"] = node.chainage_m
        loc.update(channel=node.channel, chainage_m=node.chainage_m, located_by="node")
    outlet = next((o for o in creek.outlets if o.id == loc["outlet"]), None)
    if outlet is not None:
        loc["outlet_chainage_m"] = outlet.chainage_m
        loc.update(channel=outlet.channel, chainage_m=outlet.chainage_m, located_by="outlet",
                   bank=outlet.bank)
    if loc["channel"]:
        loc["channel_zh"] = creek.channel(loc["channel"]).name.zh
    return loc


def _location_zh(alert: Alert, loc: dict[str, Any], creek_zh: str) -> str:
    """``肉菜市场对出河段（华龙涌主涌 215 米处，北岸排污口 ol-l3）``."""
    if not alert.segment:
        return f"{creek_zh}全涌"
    where = loc["segment_zh"] or alert.segment
    detail = []
    if loc["chainage_m"] is not None:
        detail.append(f"{loc['channel_zh']} {loc['chainage_m']:g} 米处")
    if loc["located_by"] == "outlet":
        detail.append(f"{BANK_ZH.get(loc['bank'], loc['bank'])}排污口 {loc['outlet']}")
    elif alert.node:
        detail.append(f"监测点 {alert.node}")
    return f"{where}（{'，'.join(detail)}）" if detail else where


def _minutes(later: float | None, start: float) -> float | None:
    return None if later is None else round(max(0.0, later - start) / 60.0, 1)


def _sentence(evidence: dict[str, Any], lang: str) -> str:
    s = evidence.get("sentence")
    return str(s.get(lang, "")) if isinstance(s, dict) else (str(s) if s and lang == "zh" else "")


def _handlers(alert: Alert) -> str:
    """The people who acted on the alert, in order (``auto`` is the model, not a person)."""
    names = [alert.acknowledged_by, *(n["by"] for n in alert.notes), alert.resolved_by]
    return "、".join(dict.fromkeys(n for n in names if n and n != "auto"))


def _result_zh(alert: Alert, tz: str) -> str:
    if alert.state == "resolved":
        who = "系统自动" if alert.resolved_by == "auto" else (alert.resolved_by or "")
        return f"已解决（{who}，{format_time(alert.resolved_at, tz)}）"
    if alert.state == "acknowledged":
        return f"处理中（{alert.acknowledged_by} 已确认）"
    return "待处理"


def workorder_row(alert: Alert, creek: Creek | None, tz: str = "Asia/Shanghai") -> dict[str, Any]:
    """One alert as a work-order row (notes as a list of ``{by, at, text}``)."""
    loc = _location(alert, creek)
    kind = KIND_NAMES.get(alert.kind, {"zh": alert.kind, "en": alert.kind})
    row: dict[str, Any] = {
        "id": alert.id, "creek": alert.creek, "segment": alert.segment, **loc,
        "node": alert.node or "",
        "location_zh": _location_zh(alert, loc, creek.name.zh if creek else alert.creek),
        "start": format_time(alert.start, tz), "end": format_time(alert.end, tz),
        "kind": alert.kind, "kind_zh": kind["zh"], "kind_en": kind["en"],
        "severity": alert.severity, "severity_zh": SEVERITY_ZH.get(alert.severity, alert.severity),
        "audience": alert.audience,
        "summary_zh": alert.summary.get("zh", ""), "summary_en": alert.summary.get("en", ""),
        "evidence_zh": _sentence(alert.evidence, "zh"), "evidence_en": _sentence(alert.evidence, "en"),
        "evidence_json": alert.evidence,
        "acknowledged_by": alert.acknowledged_by or "",
        "acknowledged_at": format_time(alert.acknowledged_at, tz),
        "resolved_by": alert.resolved_by or "", "resolved_at": format_time(alert.resolved_at, tz),
        "notes": [{"by": n["by"], "at": format_time(n["at"], tz), "text": n["text"]} for n in alert.notes],
        "handlers": _handlers(alert),
        "state": alert.state, "state_zh": STATE_ZH.get(alert.state, alert.state),
        "result_zh": _result_zh(alert, tz),
        "minutes_to_acknowledge": _minutes(alert.acknowledged_at, alert.start),
        "minutes_to_resolve": _minutes(alert.resolved_at if alert.state == "resolved" else None, alert.start),
    }
    return {k: row[k] for k in WORKORDER_COLUMNS}


def workorder_rows(alerts: Iterable[Alert], creek: Creek | None,
                   tz: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    """Work-order rows, oldest alert first (the order a patrol log is read in)."""
    return [workorder_row(a, creek, tz) for a in sorted(alerts, key=lambda a: (a.start, a.id))]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):  # notes
        return " | ".join(f"{n['at']} {n['by']}：{n['text']}" for n in value)
    return value


def workorders_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV text (header = :data:`WORKORDER_COLUMNS`); notes joined with `` | ``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=WORKORDER_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


def workorders_json(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> str:
    """``{"count", "workorders": [...], **meta}`` as JSON (UTF-8 text, Chinese unescaped)."""
    doc = {**(meta or {}), "count": len(rows), "workorders": rows}
    return json.dumps(doc, ensure_ascii=False, indent=2)

"""The monthly compliance report: CSV rows and the printable Chinese HTML page.

Both ``rivermon report`` and the panel render from here (the HTML from the Jinja2 template
``core/templates/report.html``: A4 print CSS, no external assets, no script), so the office
gets the same figures wherever it asks.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from rivermon.core.alerts import EQUIPMENT_KINDS, KIND_NAMES
from rivermon.core.compliance import (CLASS_NAMES, DEFAULT_GAP_LIMIT_S, DO_CLASSES, AlertSummary,
                                      SegmentCompliance, alert_summaries, month_range,
                                      segment_compliance)
from rivermon.core.topology import Creek

__all__ = ["REPORT_COLUMNS", "MonthReport", "month_period", "month_report", "report_rows",
           "report_csv", "report_context", "render_report_html"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
CREEK_WIDE = ""  # the segment of creek-wide alerts (rain)
MEETS = ("I", "II", "III")  # classes meeting the usual urban-creek target (Class III or better)

REPORT_COLUMNS = (
    "period_start", "period_end", "creek", "segment", "segment_zh", "segment_en", "period_h",
    *(f"hours_{c}" for c in DO_CLASSES), "hours_black_light", "hours_black_severe",
    "hours_covered", "hours_missing", "share_class_iii_or_better_pct", "do_mean_mg_l", "do_min_mg_l",
    "readings_expected", "readings_received", "completeness_pct",
    "alerts_total", "alerts_water", "alerts_equipment", "alerts_by_kind", "alerts_acknowledged",
    "alerts_resolved", "alerts_auto_resolved", "alerts_unresolved",
    "ack_median_min", "ack_mean_min", "resolve_median_min", "resolve_mean_min",
)


def _r(value: float | None, digits: int = 2) -> float | str:
    return "" if value is None else round(value, digits)


def _min(seconds: float | None) -> float | str:
    return "" if seconds is None else round(seconds / 60.0, 1)


def _local(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).isoformat(timespec="seconds")


def _alert_cells(a: AlertSummary | None) -> dict[str, Any]:
    a = a or AlertSummary()
    equipment = sum(n for k, n in a.by_kind.items() if k in EQUIPMENT_KINDS)
    return {
        "alerts_total": a.total, "alerts_water": a.total - equipment, "alerts_equipment": equipment,
        "alerts_by_kind": ";".join(f"{k}={n}" for k, n in sorted(a.by_kind.items())),
        "alerts_acknowledged": a.acknowledged, "alerts_resolved": a.resolved,
        "alerts_auto_resolved": a.auto_resolved, "alerts_unresolved": a.still_open,
        "ack_median_min": _min(a.ack_median_s), "ack_mean_min": _min(a.ack_mean_s),
        "resolve_median_min": _min(a.resolve_median_s), "resolve_mean_min": _min(a.resolve_mean_s),
    }


def report_rows(results: Iterable[SegmentCompliance], tz: str,
                creek_wide: AlertSummary | None = None) -> list[dict[str, Any]]:
    """One row per segment (plus a creek-wide alerts row when there were such alerts)."""
    rows = []
    last: SegmentCompliance | None = None
    for s in results:
        last = s
        d = s.do
        meets = sum(d.classes[c] for c in MEETS)
        rows.append({
            "period_start": _local(s.start_ms, tz), "period_end": _local(s.end_ms, tz),
            "creek": s.creek, "segment": s.segment, "segment_zh": s.name["zh"],
            "segment_en": s.name["en"], "period_h": _r(d.period_h),
            **{f"hours_{c}": _r(d.classes[c]) for c in DO_CLASSES},
            "hours_black_light": _r(d.black_light_h), "hours_black_severe": _r(d.black_severe_h),
            "hours_covered": _r(d.covered_h), "hours_missing": _r(d.missing_h),
            "share_class_iii_or_better_pct": _r(100 * meets / d.covered_h, 1) if d.covered_h else "",
            "do_mean_mg_l": _r(d.mean_do), "do_min_mg_l": _r(d.min_do),
            "readings_expected": s.expected, "readings_received": s.received,
            "completeness_pct": _r(100 * s.completeness, 1),
            **_alert_cells(s.alerts),
        })
    if creek_wide is not None and creek_wide.total and last is not None:
        blank = {k: "" for k in REPORT_COLUMNS}
        rows.append({**blank, "period_start": _local(last.start_ms, tz),
                     "period_end": _local(last.end_ms, tz), "creek": last.creek,
                     "segment": CREEK_WIDE, "segment_zh": "全涌（不分河段）",
                     "segment_en": "Creek-wide", **_alert_cells(creek_wide)})
    return rows


def report_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV text with :data:`REPORT_COLUMNS` as the header."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for row in rows:
        w.writerow(row)
    return buf.getvalue()


def _fmt_h(hours: float) -> str:
    return f"{hours:.1f}"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def _fmt_min(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = seconds / 60
    return f"{minutes:.0f} 分钟" if minutes < 120 else f"{minutes / 60:.1f} 小时"


def report_context(creek: Creek, results: list[SegmentCompliance], month_label: str,
                   creek_wide: AlertSummary | None = None,
                   generated_ms: int | None = None) -> dict[str, Any]:
    """The template's variables, formatted for print (strings, not numbers)."""
    tz = creek.timezone
    start_ms = results[0].start_ms if results else 0
    end_ms = results[0].end_ms if results else 0
    generated = datetime.now(ZoneInfo(tz)) if generated_ms is None else \
        datetime.fromtimestamp(generated_ms / 1000, ZoneInfo(tz))
    segments, nodes, alert_rows = [], [], []
    for s in results:
        d = s.do
        segments.append({
            "id": s.segment, "name": s.name["zh"], "name_en": s.name["en"],
            "classes": [_fmt_h(d.classes[c]) for c in DO_CLASSES],
            "shares": [_pct(d.classes[c], d.covered_h) for c in DO_CLASSES],
            "missing": _fmt_h(d.missing_h), "covered": _fmt_h(d.covered_h),
            "meets": _pct(sum(d.classes[c] for c in MEETS), d.covered_h),
            "mean_do": "—" if d.mean_do is None else f"{d.mean_do:.2f}",
            "min_do": "—" if d.min_do is None else f"{d.min_do:.2f}",
            "black_light": _fmt_h(d.black_light_h), "black_severe": _fmt_h(d.black_severe_h),
            "black_share": _pct(d.black_light_h + d.black_severe_h, d.covered_h),
            "expected": s.expected, "received": s.received,
            "completeness": f"{100 * s.completeness:.1f}%",
        })
        for n in s.nodes:
            nodes.append({"segment": s.name["zh"], "node": n.node,
                          "kind": "水质监测" if n.kind == "sensor" else "曝气机",
                          "interval": f"{n.interval_s / 60:.1f} 分钟" + ("" if n.interval_known else "（推定）"),
                          "expected": n.expected, "received": n.received,
                          "completeness": f"{100 * n.completeness:.1f}%"})
        alert_rows.append(_alert_row(s.name["zh"], s.alerts))
    if creek_wide is not None and creek_wide.total:
        alert_rows.append(_alert_row("全涌（不分河段）", creek_wide))
    return {
        "title": f"{creek.name.zh}水质达标月报（{month_label}）",
        "creek": creek.name.zh, "creek_en": creek.name.en, "month": month_label,
        "period": f"{_local(start_ms, tz)[:16].replace('T', ' ')} 至 {_local(end_ms, tz)[:16].replace('T', ' ')}",
        "timezone": tz, "generated": generated.strftime("%Y-%m-%d %H:%M"),
        "class_names": [CLASS_NAMES[c]["zh"] for c in DO_CLASSES],
        "segments": segments, "nodes": nodes,
        "alert_rows": alert_rows, "has_alerts": any(r["total"] for r in alert_rows),
        "illustrative": creek.illustrative,
    }


def _alert_row(name: str, a: AlertSummary | None) -> dict[str, Any]:
    a = a or AlertSummary()
    equipment = sum(n for k, n in a.by_kind.items() if k in EQUIPMENT_KINDS)
    by_kind = "；".join(f"{KIND_NAMES.get(k, {'zh': k})['zh']} {n}"
                       for k, n in sorted(a.by_kind.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"name": name, "total": a.total, "water": a.total - equipment, "equipment": equipment,
            "by_kind": by_kind or "—",
            "acknowledged": a.acknowledged, "resolved": a.resolved, "auto": a.auto_resolved,
            "open": a.still_open, "ack_median": _fmt_min(a.ack_median_s),
            "resolve_median": _fmt_min(a.resolve_median_s), "resolve_max": _fmt_min(a.resolve_max_s)}


def render_report_html(context: dict[str, Any]) -> str:
    """Render ``templates/report.html`` (autoescaped) with :func:`report_context` output."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html").render(**context)


# ---- one call for a month ---------------------------------------------------------------------

@dataclass
class MonthReport:
    """A month's compliance for a creek, ready to render as CSV or HTML."""

    creek: Creek
    month: str  # YYYY-MM
    segments: list[SegmentCompliance]
    creek_wide: AlertSummary | None  # creek-wide alerts (None when one segment was asked for)

    @property
    def label(self) -> str:
        """``2026年11月``."""
        return f"{self.month[:4]}年{int(self.month[5:7])}月"

    def rows(self) -> list[dict[str, Any]]:
        return report_rows(self.segments, self.creek.timezone, self.creek_wide)

    def csv(self) -> str:
        return report_csv(self.rows())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the month, the period and every segment's figures (node detail included)."""
        return {"creek": self.creek.id, "month": self.month, "timezone": self.creek.timezone,
                "segments": [s.as_dict() for s in self.segments],
                "creek_wide_alerts": self.creek_wide.as_dict() if self.creek_wide else None}

    def html(self, generated_ms: int | None = None) -> str:
        return render_report_html(report_context(self.creek, self.segments, self.label,
                                                 self.creek_wide, generated_ms))


def month_period(month: str, tz: str, now_ms: int | None = None) -> tuple[int, int]:
    """The local month as ``[start_ms, end_ms)``, ending now while it is in progress."""
    start_ms, end_ms = month_range(month, tz)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if start_ms >= now_ms:
        raise ValueError(f"month {month} has not started yet ({tz})")
    # Hours yet to come are not "missing": the month in progress is reported up to now.
    return start_ms, min(end_ms, now_ms)


def month_report(client: Any, creek: Creek, month: str, store: Any = None,
                 segment: str | None = None, gap_limit_s: float = DEFAULT_GAP_LIMIT_S,
                 now_ms: int | None = None,
                 on_node: Callable[[str], None] | None = None) -> MonthReport:
    """Compute a month's report: telemetry from ``client``, alerts from ``store`` (optional)."""
    start_ms, end_ms = month_period(month, creek.timezone, now_ms)
    alerts = alert_summaries(store, creek.id, start_ms, end_ms) if store is not None else {}
    results = segment_compliance(client, creek, start_ms, end_ms, segment=segment,
                                 gap_limit_s=gap_limit_s, alerts=alerts, on_node=on_node)
    return MonthReport(creek, month, results, alerts.get(CREEK_WIDE) if segment is None else None)

"""Segment status from open alerts and data freshness, and the standards' DO bands.

Status order, most urgent first: ``critical`` (an unresolved critical water event),
``warning`` (any other unresolved warning/critical alert, equipment faults included),
``offline`` (data older than the freshness limit), ``unknown`` (no data yet), ``ok``.
An acknowledged alert still colours its segment: the water is not better because someone is
on the way.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from rivermon.core.alerts import EQUIPMENT_KINDS

STATUSES = ("critical", "warning", "offline", "unknown", "ok")
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
UNRESOLVED = ("open", "acknowledged")

# GB 3838-2002 DO classes (minimum mg/L) and the black-odorous DO bands (2015 guide), as
# half-open bands [low, high). Below class V is "worse than V"; it is split into the two
# black-odorous bands, which together cover it exactly.
DO_BANDS: tuple[tuple[str, float, float, dict[str, str]], ...] = (
    ("I", 7.5, 1000.0, {"zh": "I 类 (≥7.5)", "en": "Class I (≥7.5)"}),
    ("II", 6.0, 7.5, {"zh": "II 类 (6–7.5)", "en": "Class II (6–7.5)"}),
    ("III", 5.0, 6.0, {"zh": "III 类 (5–6)", "en": "Class III (5–6)"}),
    ("IV", 3.0, 5.0, {"zh": "IV 类 (3–5)", "en": "Class IV (3–5)"}),
    ("V", 2.0, 3.0, {"zh": "V 类 (2–3)", "en": "Class V (2–3)"}),
    ("bo_light", 0.2, 2.0, {"zh": "轻度黑臭 (0.2–2)", "en": "Light black-odorous (0.2–2)"}),
    ("bo_severe", -1000.0, 0.2, {"zh": "重度黑臭 (<0.2)", "en": "Severe black-odorous (<0.2)"}),
)


def is_equipment(alert: Mapping[str, Any]) -> bool:
    """True for a fault of a probe, node or aerator; False for an event in the water."""
    audience = alert.get("audience")
    if audience in ("operator", "maintenance", "equipment"):
        return True
    if audience in ("cleaner", "water"):
        return False
    kind = str(alert.get("kind", ""))
    # Kinds added later keep the naming convention of the equipment ones.
    return kind in EQUIPMENT_KINDS or kind.startswith(("sensor_", "node_", "aerator_"))


def alert_status(alert: Mapping[str, Any]) -> str | None:
    """The colour one unresolved alert gives its segment (None for info)."""
    sev = alert.get("severity")
    if sev == "critical" and not is_equipment(alert):
        return "critical"
    if sev in ("critical", "warning"):
        return "warning"
    return None


def segment_status(latest_s: float | None, alerts: Iterable[Mapping[str, Any]], now_s: float,
                   offline_after_s: float) -> str:
    """The status of one segment from its newest reading time and its alerts."""
    found = {alert_status(a) for a in alerts if a.get("state") in UNRESOLVED}
    if "critical" in found:
        return "critical"
    if "warning" in found:
        return "warning"
    if latest_s is None:
        return "unknown"
    if now_s - latest_s > offline_after_s:
        return "offline"
    return "ok"


def sort_alerts(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Most urgent first: unacknowledged before acknowledged, then severity, water before
    equipment, newest first."""
    def key(a: Mapping[str, Any]) -> tuple:
        return (a.get("state") != "open", SEVERITY_RANK.get(str(a.get("severity")), 3),
                is_equipment(a), -_ts(a.get("start")))
    return sorted(alerts, key=key)


def _ts(value: Any) -> float:
    from datetime import datetime
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def do_band(value: float) -> str:
    """The band id of one DO value."""
    for band, low, high, _ in DO_BANDS:
        if low <= value < high:
            return band
    return "I"

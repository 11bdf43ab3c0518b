"""Alerts: the contract's alert event, its lifecycle in SQLite, and how it is emitted.

Shared by the model service (which opens, updates and auto-resolves alerts) and the panel
(which acknowledges, annotates and resolves them), so both write the same rows and emit the
same MQTT event and InfluxDB point.

Lifecycle::

    open --acknowledge--> acknowledged --resolve--> resolved
      \\____________________resolve_____________________/

Anything else (acknowledging a resolved alert, resolving twice) raises
:class:`InvalidTransition` with a sentence saying what the alert's state is. Times are Unix
seconds (float) inside rivermon and RFC 3339 with the creek's offset in the event JSON.

Exceptions::

    AlertError (ValueError)
    ├── AlertNotFound      no alert with that id
    └── InvalidTransition  the state change is not allowed from the current state

The store is one SQLite file in WAL mode; every write is one ``BEGIN IMMEDIATE`` transaction,
so several processes (the model service and the panel's workers) can share it safely.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Literal
from zoneinfo import ZoneInfo

_log = logging.getLogger("rivermon.alerts")

from rivermon.core.influx import ALERTS, line
from rivermon.core.reading import alerts_topic

__all__ = [
    "Alert", "AlertStore", "AlertError", "AlertNotFound", "InvalidTransition",
    "KIND_NAMES", "WATER_KINDS", "EQUIPMENT_KINDS", "SEVERITIES", "STATES",
    "audience_of", "publish_alert", "alert_line", "format_time", "severity_rank",
]

SEVERITIES = ("info", "warning", "critical")
STATES = ("open", "acknowledged", "resolved")
ACTIVE_STATES = ("open", "acknowledged")

# Water events go to the river cleaner; equipment faults to the operator.
WATER_KINDS = frozenset({
    "low_do", "black_odorous", "discharge", "turbidity_spike", "rain",
    "baseline_departure", "sustained_shift",
})
EQUIPMENT_KINDS = frozenset({
    "sensor_stuck", "sensor_spike", "sensor_drift", "sensor_out_of_range", "sensor_gap",
    "node_offline", "low_battery", "aerator_fault",
})

KIND_NAMES: dict[str, dict[str, str]] = {
    "low_do": {"zh": "溶解氧偏低", "en": "Low dissolved oxygen"},
    "black_odorous": {"zh": "黑臭风险", "en": "Black-odorous risk"},
    "discharge": {"zh": "疑似排污", "en": "Suspected discharge"},
    "turbidity_spike": {"zh": "浊度突升", "en": "Turbidity jump"},
    "rain": {"zh": "降雨影响", "en": "Rain event"},
    "baseline_departure": {"zh": "偏离日常规律", "en": "Departure from daily pattern"},
    "sustained_shift": {"zh": "持续偏移", "en": "Sustained shift"},
    "sensor_stuck": {"zh": "传感器卡值", "en": "Sensor stuck"},
    "sensor_spike": {"zh": "传感器尖峰", "en": "Sensor spike"},
    "sensor_drift": {"zh": "传感器漂移/污损", "en": "Sensor drift / fouling"},
    "sensor_out_of_range": {"zh": "读数超出量程", "en": "Reading out of range"},
    "sensor_gap": {"zh": "数据缺失", "en": "Data gap"},
    "node_offline": {"zh": "节点离线", "en": "Node offline"},
    "low_battery": {"zh": "电池电量低", "en": "Low battery"},
    "aerator_fault": {"zh": "曝气机故障", "en": "Aerator fault"},
}

Audience = Literal["water", "equipment"]


class AlertError(ValueError):
    """An alert operation was refused; the message says why."""


class AlertNotFound(AlertError):
    """No alert has this id."""


class InvalidTransition(AlertError):
    """The requested state change is not allowed from the alert's current state."""


def audience_of(kind: str) -> Audience:
    """``equipment`` for sensor, node and aerator faults; ``water`` for everything else."""
    return "equipment" if kind in EQUIPMENT_KINDS else "water"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def format_time(ts: float | None, tz: str = "Asia/Shanghai") -> str | None:
    """Unix seconds -> RFC 3339 with the zone's offset (``2026-11-27T02:14:00+08:00``)."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, ZoneInfo(tz))
    return dt.isoformat(timespec="seconds" if float(ts).is_integer() else "milliseconds")


def _parse_time(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(value).timestamp()


@dataclass
class Alert:
    """One alert: the contract's event fields plus its lifecycle."""

    id: str
    creek: str
    segment: str
    node: str | None
    kind: str
    severity: str
    start: float
    end: float | None = None
    state: str = "open"
    summary: dict[str, str] = field(default_factory=lambda: {"zh": "", "en": ""})
    evidence: dict[str, Any] = field(default_factory=dict)
    audience: str = ""
    updated: float = 0.0
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.audience:
            self.audience = audience_of(self.kind)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_event(self, tz: str = "Asia/Shanghai") -> dict[str, Any]:
        """The contract's alert event JSON (plus the lifecycle keys, added compatibly)."""
        return {
            "id": self.id, "creek": self.creek, "segment": self.segment, "node": self.node,
            "kind": self.kind, "severity": self.severity,
            "start": format_time(self.start, tz), "end": format_time(self.end, tz),
            "state": self.state, "summary": dict(self.summary), "evidence": self.evidence,
            "audience": self.audience, "kind_name": KIND_NAMES.get(self.kind, {"zh": self.kind, "en": self.kind}),
            "updated": format_time(self.updated, tz),
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": format_time(self.acknowledged_at, tz),
            "resolved_by": self.resolved_by, "resolved_at": format_time(self.resolved_at, tz),
            "notes": [{"by": n["by"], "at": format_time(n["at"], tz), "text": n["text"]}
                      for n in self.notes],
        }

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "Alert":
        """Rebuild an alert from :meth:`to_event` output (e.g. received over MQTT)."""
        return cls(
            id=event["id"], creek=event["creek"], segment=event.get("segment") or "",
            node=event.get("node"), kind=event["kind"], severity=event["severity"],
            start=_parse_time(event["start"]) or 0.0, end=_parse_time(event.get("end")),
            state=event.get("state", "open"), summary=dict(event.get("summary") or {}),
            evidence=dict(event.get("evidence") or {}), audience=event.get("audience", ""),
            updated=_parse_time(event.get("updated")) or 0.0,
            acknowledged_by=event.get("acknowledged_by"),
            acknowledged_at=_parse_time(event.get("acknowledged_at")),
            resolved_by=event.get("resolved_by"), resolved_at=_parse_time(event.get("resolved_at")),
            notes=[{"by": n["by"], "at": _parse_time(n["at"]), "text": n["text"]}
                   for n in event.get("notes") or []],
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- emitting ------------------------------------------------------------------------------

def publish_alert(mqtt_client: Any, prefix: str, alert: Alert, tz: str = "Asia/Shanghai") -> Any:
    """Publish the alert event, QoS 1, on ``{prefix}/{creek}/alerts``; returns paho's info."""
    payload = json.dumps(alert.to_event(tz), ensure_ascii=False, separators=(",", ":"))
    return mqtt_client.publish(alerts_topic(prefix, alert.creek), payload.encode("utf-8"), qos=1)


def alert_line(alert: Alert, tz: str = "Asia/Shanghai") -> str:
    """The InfluxDB ``alerts`` point (contract + docs/contract-extensions.md), time = start.

    A later state of the same alert overwrites the point (same tags, same time); a severity
    change writes it under the new ``severity`` tag, so readers take the latest by ``id``.
    """
    tags = {"creek": alert.creek, "segment": alert.segment, "kind": alert.kind,
            "severity": alert.severity}
    fields: dict[str, Any] = {
        "id": alert.id, "node": alert.node or "", "state": alert.state,
        "summary": alert.summary.get("zh", ""), "summary_en": alert.summary.get("en", ""),
        "end": format_time(alert.end, tz) or "",
        "evidence": json.dumps(alert.evidence, ensure_ascii=False, sort_keys=True),
        "audience": alert.audience,
        "acknowledged_by": alert.acknowledged_by or "", "resolved_by": alert.resolved_by or "",
    }
    return line(ALERTS, tags, fields, int(round(alert.start * 1000)))


# ---- the store -------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    creek TEXT NOT NULL,
    segment TEXT NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL,
    state TEXT NOT NULL,
    summary_zh TEXT NOT NULL,
    summary_en TEXT NOT NULL,
    evidence TEXT NOT NULL,
    audience TEXT NOT NULL,
    updated REAL NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    resolved_by TEXT,
    resolved_at REAL,
    notes TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state);
CREATE INDEX IF NOT EXISTS alerts_segment ON alerts(segment, state);
CREATE INDEX IF NOT EXISTS alerts_start ON alerts(start);
CREATE INDEX IF NOT EXISTS alerts_key ON alerts(creek, segment, node, kind, state);
CREATE TABLE IF NOT EXISTS alert_counters (day TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""

_COLUMNS = ("id", "creek", "segment", "node", "kind", "severity", "start", "end", "state",
            "summary_zh", "summary_en", "evidence", "audience", "updated", "acknowledged_by",
            "acknowledged_at", "resolved_by", "resolved_at", "notes")
_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in _COLUMNS) + " FROM alerts"

Change = Literal["opened", "severity", "updated"]
MAX_NOTE_CHARS = 2000
MAX_BY_CHARS = 64


class AlertStore:
    """Alert lifecycle in one SQLite file (WAL), safe for several processes; close() it."""

    def __init__(self, path: str | Path, tz: str = "Asia/Shanghai", timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tz = tz
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        with self._tx():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(stmt)

    # -- plumbing --------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    class _Tx:
        def __init__(self, store: "AlertStore"):
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            try:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _tx(self) -> "AlertStore._Tx":
        return AlertStore._Tx(self)

    @staticmethod
    def _row_to_alert(row: tuple) -> Alert:
        d = dict(zip(_COLUMNS, row))
        return Alert(
            id=d["id"], creek=d["creek"], segment=d["segment"], node=d["node"] or None,
            kind=d["kind"], severity=d["severity"], start=d["start"], end=d["end"],
            state=d["state"], summary={"zh": d["summary_zh"], "en": d["summary_en"]},
            evidence=json.loads(d["evidence"]), audience=d["audience"], updated=d["updated"],
            acknowledged_by=d["acknowledged_by"], acknowledged_at=d["acknowledged_at"],
            resolved_by=d["resolved_by"], resolved_at=d["resolved_at"], notes=json.loads(d["notes"]))

    def _get(self, db: sqlite3.Connection, alert_id: str) -> Alert:
        row = db.execute(_SELECT + " WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        return self._row_to_alert(row)

    def _save(self, db: sqlite3.Connection, a: Alert) -> None:
        values = (a.id, a.creek, a.segment, a.node or "", a.kind, a.severity, a.start, a.end,
                  a.state, a.summary.get("zh", ""), a.summary.get("en", ""),
                  json.dumps(a.evidence, ensure_ascii=False, sort_keys=True), a.audience,
                  a.updated, a.acknowledged_by, a.acknowledged_at, a.resolved_by, a.resolved_at,
                  json.dumps(a.notes, ensure_ascii=False))
        cols = ", ".join(f'"{c}"' for c in _COLUMNS)
        db.execute(f"INSERT OR REPLACE INTO alerts ({cols}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                   values)

    def _new_id(self, db: sqlite3.Connection, start: float) -> str:
        day = datetime.fromtimestamp(start, ZoneInfo(self.tz)).strftime("%Y%m%d")
        db.execute("INSERT INTO alert_counters(day, n) VALUES (?, 1) "
                   "ON CONFLICT(day) DO UPDATE SET n = n + 1", (day,))
        n = db.execute("SELECT n FROM alert_counters WHERE day = ?", (day,)).fetchone()[0]
        return f"a-{day}-{n:04d}"

    # -- the model's side -------------------------------------------------------------------
    def open_or_update(self, creek: str, segment: str, node: str | None, kind: str,
                       severity: str, start: float, summary: dict[str, str],
                       evidence: dict[str, Any] | None = None,
                       now: float | None = None) -> tuple[Alert, Change]:
        """The one active alert of this (creek, segment, node, kind), created or refreshed.

        Returns the alert and what happened: ``opened`` (new), ``severity`` (its severity
        changed, worth publishing) or ``updated`` (summary/evidence refreshed).
        """
        _check_choice(severity, SEVERITIES, "severity")
        if kind not in KIND_NAMES:
            raise AlertError(f"kind {kind!r} is not one of {', '.join(KIND_NAMES)}")
        now = time.time() if now is None else now
        evidence = evidence or {}
        with self._tx() as db:
            row = db.execute(_SELECT + " WHERE creek=? AND segment=? AND node=? AND kind=? "
                             "AND state IN ('open','acknowledged') ORDER BY start DESC LIMIT 1",
                             (creek, segment, node or "", kind)).fetchone()
            if row is None:
                a = Alert(self._new_id(db, start), creek, segment, node or None, kind, severity,
                          start, None, "open", dict(summary), evidence, updated=now)
                change: Change = "opened"
            else:
                a = self._row_to_alert(row)
                change = "severity" if a.severity != severity else "updated"
                a.severity, a.summary, a.evidence, a.updated = severity, dict(summary), evidence, now
            self._save(db, a)
        return a, change

    # -- the people's side ------------------------------------------------------------------
    def acknowledge(self, alert_id: str, by: str, at: float | None = None) -> Alert:
        """open -> acknowledged, recording who and when."""
        by = _check_by(by)
        with self._tx() as db:
            a = self._get(db, alert_id)
            if a.state != "open":
                raise InvalidTransition(self._state_sentence(a, "acknowledged"))
            a.state, a.acknowledged_by = "acknowledged", by
            a.acknowledged_at = a.updated = time.time() if at is None else at
            self._save(db, a)
        return a

    def resolve(self, alert_id: str, by: str, at: float | None = None,
                end: float | None = None) -> Alert:
        """open|acknowledged -> resolved; ``by`` may be ``auto``; ``end`` defaults to ``at``."""
        by = _check_by(by)
        with self._tx() as db:
            a = self._get(db, alert_id)
            if a.state == "resolved":
                raise InvalidTransition(self._state_sentence(a, "resolved"))
            at = time.time() if at is None else at
            a.state, a.resolved_by, a.resolved_at, a.updated = "resolved", by, at, at
            a.end = max(a.start, end if end is not None else at)
            self._save(db, a)
        return a

    def add_note(self, alert_id: str, by: str, text: str, at: float | None = None) -> Alert:
        """Append a note ``{by, at, text}`` (allowed in every state)."""
        by = _check_by(by)
        if not isinstance(text, str) or not text.strip():
            raise AlertError("a note needs some text")
        if len(text) > MAX_NOTE_CHARS:
            raise AlertError(f"a note holds at most {MAX_NOTE_CHARS} characters, got {len(text)}")
        with self._tx() as db:
            a = self._get(db, alert_id)
            at = time.time() if at is None else at
            a.notes.append({"by": by, "at": at, "text": text.strip()})
            a.updated = at
            self._save(db, a)
        return a

    def _state_sentence(self, a: Alert, wanted: str) -> str:
        if a.state == "resolved":
            who = f" by {a.resolved_by} at {format_time(a.resolved_at, self.tz)}"
        elif a.state == "acknowledged":
            who = f" by {a.acknowledged_by} at {format_time(a.acknowledged_at, self.tz)}"
        else:
            who = ""
        return f"alert {a.id} cannot become {wanted}: it is already {a.state}{who}"

    # -- reading ----------------------------------------------------------------------------
    def get(self, alert_id: str) -> Alert:
        with self._lock:
            return self._get(self._db, alert_id)

    def list(self, state: str | Iterable[str] | None = None, segment: str | None = None,
             kind: str | None = None, since: float | None = None, until: float | None = None,
             creek: str | None = None, limit: int | None = None) -> list[Alert]:
        """Alerts, newest start first; ``since``/``until`` bound the start (Unix seconds)."""
        where, params = [], []
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            for s in states:
                _check_choice(s, STATES, "state")
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params += states
        for col, value in (("segment", segment), ("kind", kind), ("creek", creek)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if since is not None:
            where.append("start >= ?")
            params.append(since)
        if until is not None:
            where.append("start < ?")
            params.append(until)
        q = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY start DESC, id DESC"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        with self._lock:
            return [self._row_to_alert(r) for r in self._db.execute(q, params).fetchall()]

    def active(self, creek: str | None = None) -> list[Alert]:
        """Open and acknowledged alerts."""
        return self.list(state=ACTIVE_STATES, creek=creek)

    def open_counts_by_segment(self, creek: str | None = None) -> dict[str, int]:
        """Active (open or acknowledged) alerts per segment; creek-wide alerts count under ``""``."""
        q = "SELECT segment, COUNT(*) FROM alerts WHERE state IN ('open','acknowledged')"
        params: list[Any] = []
        if creek is not None:
            q += " AND creek = ?"
            params.append(creek)
        with self._lock:
            return {seg: n for seg, n in self._db.execute(q + " GROUP BY segment", params)}

    def worst_open_by_segment(self, creek: str | None = None) -> dict[str, str]:
        """The most severe active alert's severity per segment (for the status colour)."""
        out: dict[str, str] = {}
        for a in self.active(creek):
            if a.segment not in out or severity_rank(a.severity) > severity_rank(out[a.segment]):
                out[a.segment] = a.severity
        return out


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise AlertError(f"{what} {value!r} is not one of {', '.join(choices)}")


def _check_by(by: str) -> str:
    if not isinstance(by, str) or not by.strip():
        raise AlertError("who did it (`by`) must be a non-empty name")
    if len(by) > MAX_BY_CHARS:
        raise AlertError(f"`by` holds at most {MAX_BY_CHARS} characters, got {len(by)}")
    return by.strip()


class AlertPoints:
    """Alert points on their way to InfluxDB's ``alerts`` measurement, kept in order until written.

    The SQLite store is the record of every alert; InfluxDB holds a copy for dashboards. While
    InfluxDB is down or slow the points wait here, all of them (alert changes are few); a point
    InfluxDB refuses as malformed (4xx) is logged with InfluxDB's reason and not retried.
    """

    def __init__(self, influx: Any, tz: str):
        self.influx = influx
        self.tz = tz
        self.lines: list[str] = []

    def add(self, alert: "Alert") -> None:
        self.lines.append(alert_line(alert, self.tz))

    def flush(self) -> bool:
        """Write what waits; True when nothing is left waiting."""
        if not self.lines:
            return True
        from rivermon.core.influx import InfluxError

        try:
            self.influx.write_lines(self.lines)
        except InfluxError as exc:
            if exc.retryable:
                _log.warning("alerts not written to InfluxDB yet (%d waiting): %s", len(self.lines), exc)
                return False
            _log.error("InfluxDB refused alert points; they stay in the alert store: %s", exc,
                       extra={"lines": self.lines[:20]})
        self.lines = []
        return True

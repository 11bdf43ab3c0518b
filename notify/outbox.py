"""The notifier's durable state: one SQLite file, ``{var}/notify.sqlite``.

- ``events``: every alert event as received, written (synchronous=FULL) before the broker gets
  its acknowledgement; ``processed`` once routed, ``error`` when it was refused (kept).
- ``alerts``: the latest event per alert id and what the notifier did about it.
- ``subs``: which target follows which alert (through which route), for reminders and for the
  acknowledged/resolved notices.
- ``escalations``: one row per (alert, route) escalated.
- ``deliveries``: the outbox proper; one row per message per target, sent in ``seq`` order per
  target. ``status``: ``queued`` -> ``delivered``; ``held`` (quiet hours) -> ``queued`` (webhook)
  or ``digested`` (chat targets, replaced by one digest message).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    received REAL NOT NULL,
    processed REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS events_pending ON events(processed);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    updated REAL NOT NULL,
    first_seen REAL NOT NULL,
    critical_since REAL,
    routes TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state);
CREATE TABLE IF NOT EXISTS subs (
    alert_id TEXT NOT NULL,
    target TEXT NOT NULL,
    route TEXT NOT NULL,
    last_notice REAL NOT NULL,
    reminders INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (alert_id, target)
);
CREATE TABLE IF NOT EXISTS escalations (
    alert_id TEXT NOT NULL,
    route TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (alert_id, route)
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    release_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries(target, status, seq);
CREATE INDEX IF NOT EXISTS deliveries_held ON deliveries(status, release_at);
"""


@dataclass(frozen=True)
class Delivery:
    seq: int
    target: str
    alert_id: str
    reason: str
    body: str
    attempts: int
    next_try: float


@dataclass
class TrackedAlert:
    id: str
    event: dict[str, Any]
    state: str
    severity: str
    updated: float
    first_seen: float
    critical_since: float | None
    routes: list[str]


class Outbox:
    """The SQLite outbox; thread-safe (one connection behind a lock); close() it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL (WAL): a power cut may lose the last routing or delivery marks, never corrupt,
        # and every event commit below syncs the log up to itself: at worst a message is sent
        # twice, never lost.
        self.db.execute("PRAGMA synchronous=NORMAL")
        with self.tx():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self.db.execute(stmt)
        # The listener's own connection, FULL: an event acknowledged to the broker must survive
        # a power cut, not only a crash.
        self._events_lock = threading.Lock()
        self._events_db = sqlite3.connect(str(self.path), isolation_level=None,
                                          check_same_thread=False, timeout=30)
        self._events_db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        with self._events_lock:
            self._events_db.close()
        with self._lock:
            self.db.close()

    class _Tx:
        def __init__(self, box: "Outbox"):
            self.box = box

        def __enter__(self) -> sqlite3.Connection:
            self.box._lock.acquire()
            if self.box._depth == 0:
                self.box.db.execute("BEGIN IMMEDIATE")
            self.box._depth += 1
            return self.box.db

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            try:
                self.box._depth -= 1
                if self.box._depth == 0:
                    self.box.db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.box._lock.release()

    def tx(self) -> "Outbox._Tx":
        """One transaction (nested calls join the outer one)."""
        return Outbox._Tx(self)

    # -- events -----------------------------------------------------------------------------
    def add_event(self, topic: str, payload: bytes, received: float) -> bool:
        """Store a received message durably; False when this exact message was stored before."""
        text = payload.decode("utf-8", errors="replace")
        digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()
        with self._events_lock:
            cur = self._events_db.execute("INSERT OR IGNORE INTO events(digest, topic, payload, received) "
                                          "VALUES (?, ?, ?, ?)", (digest, topic, text, received))
            return cur.rowcount == 1

    def pending_events(self, limit: int = 500) -> list[tuple[int, str, str]]:
        with self._lock:
            return self.db.execute("SELECT seq, topic, payload FROM events WHERE processed IS NULL "
                                   "ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def mark_event(self, seq: int, now: float, error: str | None = None) -> None:
        with self.tx() as db:
            db.execute("UPDATE events SET processed = ?, error = ? WHERE seq = ?", (now, error, seq))

    def rejected_events(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        with self._lock:
            return self.db.execute("SELECT seq, topic, payload, error FROM events WHERE error IS NOT NULL "
                                   "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()

    # -- alerts -----------------------------------------------------------------------------
    def alert(self, alert_id: str) -> TrackedAlert | None:
        with self._lock:
            row = self.db.execute("SELECT id, event, state, severity, updated, first_seen, "
                                  "critical_since, routes FROM alerts WHERE id = ?",
                                  (alert_id,)).fetchone()
        return _tracked(row) if row else None

    def alerts_in_state(self, state: str) -> list[TrackedAlert]:
        with self._lock:
            rows = self.db.execute("SELECT id, event, state, severity, updated, first_seen, "
                                   "critical_since, routes FROM alerts WHERE state = ? ORDER BY first_seen",
                                   (state,)).fetchall()
        return [_tracked(r) for r in rows]

    def save_alert(self, a: TrackedAlert) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO alerts(id, event, state, severity, updated, first_seen, "
                       "critical_since, routes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (a.id, json.dumps(a.event, ensure_ascii=False), a.state, a.severity,
                        a.updated, a.first_seen, a.critical_since, json.dumps(a.routes)))

    # -- subscriptions and escalations ----------------------------------------------------
    def subs(self, alert_id: str) -> dict[str, tuple[str, float, int]]:
        """target -> (route, last_notice, reminders) for one alert."""
        with self._lock:
            rows = self.db.execute("SELECT target, route, last_notice, reminders FROM subs "
                                   "WHERE alert_id = ? ORDER BY rowid", (alert_id,)).fetchall()
        return {t: (r, ln, n) for t, r, ln, n in rows}

    def add_sub(self, alert_id: str, target: str, route: str, now: float) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO subs(alert_id, target, route, last_notice) "
                       "VALUES (?, ?, ?, ?)", (alert_id, target, route, now))

    def touch_sub(self, alert_id: str, target: str, now: float, reminded: bool = False) -> None:
        with self.tx() as db:
            db.execute("UPDATE subs SET last_notice = ?, reminders = reminders + ? "
                       "WHERE alert_id = ? AND target = ?", (now, int(reminded), alert_id, target))

    def escalated(self, alert_id: str, route: str) -> bool:
        with self._lock:
            return self.db.execute("SELECT 1 FROM escalations WHERE alert_id = ? AND route = ?",
                                   (alert_id, route)).fetchone() is not None

    def mark_escalated(self, alert_id: str, route: str, now: float) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO escalations VALUES (?, ?, ?)", (alert_id, route, now))

    # -- deliveries -------------------------------------------------------------------------
    def enqueue(self, target: str, alert_id: str, reason: str, body: str, now: float,
                release_at: float | None = None) -> int:
        """Add a message for ``target``; ``release_at`` holds it (quiet hours) until then."""
        status = "held" if release_at is not None else "queued"
        with self.tx() as db:
            cur = db.execute("INSERT INTO deliveries(target, alert_id, reason, body, status, created, "
                             "release_at, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (target, alert_id, reason, body, status, now, release_at, now))
            return int(cur.lastrowid)

    def head(self, target: str) -> Delivery | None:
        """The oldest queued message of a target: nothing after it goes first."""
        with self._lock:
            row = self.db.execute("SELECT seq, target, alert_id, reason, body, attempts, next_try "
                                  "FROM deliveries WHERE target = ? AND status = 'queued' "
                                  "ORDER BY seq LIMIT 1", (target,)).fetchone()
        return Delivery(*row) if row else None

    def delivered(self, seq: int, now: float) -> None:
        with self.tx() as db:
            db.execute("UPDATE deliveries SET status = 'delivered', delivered = ?, "
                       "attempts = attempts + 1, last_error = NULL WHERE seq = ?", (now, seq))

    def failed(self, seq: int, error: str, next_try: float) -> None:
        with self.tx() as db:
            db.execute("UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_try = ? "
                       "WHERE seq = ?", (error, next_try, seq))

    def held_due(self, now: float) -> list[tuple[int, str, str, str]]:
        """(seq, target, alert_id, reason) of held messages whose quiet hours are over."""
        with self._lock:
            return self.db.execute("SELECT seq, target, alert_id, reason FROM deliveries "
                                   "WHERE status = 'held' AND release_at <= ? ORDER BY seq",
                                   (now,)).fetchall()

    def set_status(self, seqs: list[int], status: str, now: float) -> None:
        with self.tx() as db:
            db.executemany("UPDATE deliveries SET status = ?, next_try = ? WHERE seq = ?",
                           [(status, now, s) for s in seqs])

    def deliveries(self, target: str | None = None) -> list[dict[str, Any]]:
        """All messages (for tests and ``rivermon notify --status``), oldest first."""
        q = ("SELECT seq, target, alert_id, reason, status, attempts, last_error, created, delivered, "
             "body FROM deliveries")
        with self._lock:
            rows = self.db.execute(q + (" WHERE target = ?" if target else "") + " ORDER BY seq",
                                   (target,) if target else ()).fetchall()
        keys = ("seq", "target", "alert_id", "reason", "status", "attempts", "last_error",
                "created", "delivered", "body")
        return [dict(zip(keys, r)) for r in rows]

    def status(self) -> dict[str, Any]:
        """Counts per target and status, the oldest waiting message and the last error."""
        with self._lock:
            per = self.db.execute("SELECT target, status, COUNT(*), MIN(created) FROM deliveries "
                                  "GROUP BY target, status").fetchall()
            errors = dict(self.db.execute(
                "SELECT target, last_error FROM deliveries d WHERE status = 'queued' AND seq = "
                "(SELECT MIN(seq) FROM deliveries WHERE target = d.target AND status = 'queued')"
            ).fetchall())
            events = self.db.execute("SELECT COUNT(*), SUM(processed IS NULL), SUM(error IS NOT NULL) "
                                     "FROM events").fetchone()
        targets: dict[str, dict[str, Any]] = {}
        for target, status, n, oldest in per:
            t = targets.setdefault(target, {"last_error": errors.get(target)})
            t[status] = n
            if status in ("queued", "held"):
                t[f"oldest_{status}"] = oldest
        return {"targets": targets,
                "events": {"stored": events[0] or 0, "pending": events[1] or 0, "refused": events[2] or 0}}

    def prune(self, before: float) -> int:
        """Forget what was delivered, processed or resolved before ``before``."""
        with self.tx() as db:
            n = db.execute("DELETE FROM deliveries WHERE status IN ('delivered', 'digested') "
                           "AND created < ?", (before,)).rowcount
            n += db.execute("DELETE FROM events WHERE processed IS NOT NULL AND processed < ?",
                            (before,)).rowcount
            old = [r[0] for r in db.execute("SELECT id FROM alerts WHERE state = 'resolved' "
                                            "AND updated < ?", (before,))]
            for table, col in (("subs", "alert_id"), ("escalations", "alert_id"), ("alerts", "id")):
                db.executemany(f"DELETE FROM {table} WHERE {col} = ?", [(a,) for a in old])
        return n + len(old)


def _tracked(row: tuple) -> TrackedAlert:
    id_, event, state, severity, updated, first_seen, critical_since, routes = row
    return TrackedAlert(id_, json.loads(event), state, severity, updated, first_seen,
                        critical_since, json.loads(routes))

"""Aeration command log and manual overrides, shared by the controller and the panel: ``{var}/control.sqlite``.

Tables:

- ``commands`` (append-only): every command the controller decided, with its time, creek,
  segment, node, ``aerator_on``, ``mode`` (``auto``, ``fallback``, ``manual``, or ``dry-run``),
  ``rule``, reason (zh, en) and the segment DO it saw;
- ``overrides``: the current manual order per aerator (``on``/``off`` until a time, by whom);
  ``override_log`` (append-only): every order given, including ``auto`` (back to the controller).

The panel uses the module functions (each opens and closes its own connection, so any number
of processes can share the file)::

    set_override("hl3-a1", "on", until=time.time() + 3600, by="operator1", var=cfg.var)
    overrides(var=cfg.var)                  # active orders
    recent_commands("hl-3", var=cfg.var)    # newest first
    aerator_states(var=cfg.var)             # per aerator: last command, override, mode

Refusals raise :class:`ControlError` (a ValueError) with a sentence naming what was wrong.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

DB_NAME = "control.sqlite"
OVERRIDE_MODES = ("on", "off", "auto")
MAX_OVERRIDE_S = 7 * 86400.0  # an order longer than a week is more likely a typo than a plan
MAX_BY_CHARS = 64
_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    creek TEXT NOT NULL,
    segment TEXT NOT NULL,
    node TEXT NOT NULL,
    aerator_on INTEGER NOT NULL,
    mode TEXT NOT NULL,
    rule TEXT NOT NULL,
    reason_zh TEXT NOT NULL,
    reason_en TEXT NOT NULL,
    do_mg_l REAL
);
CREATE INDEX IF NOT EXISTS commands_segment ON commands(segment, ts);
CREATE INDEX IF NOT EXISTS commands_node ON commands(node, ts);
CREATE TABLE IF NOT EXISTS overrides (
    node TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    until REAL NOT NULL,
    by TEXT NOT NULL,
    set_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeat (
    name TEXT PRIMARY KEY,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS override_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    mode TEXT NOT NULL,
    until REAL,
    by TEXT NOT NULL,
    set_at REAL NOT NULL
);
"""
_CMD_COLS = ("id", "ts", "creek", "segment", "node", "aerator_on", "mode", "rule", "reason_zh",
             "reason_en", "do_mg_l")


class ControlError(ValueError):
    """A control request was refused; the message says why."""


class ControlStore:
    """One connection to ``control.sqlite`` (WAL); close() it or use ``with``."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if {"commands", "overrides", "override_log", "heartbeat"} <= tables:
            return  # the panel opens the file per request: no write lock when nothing is missing
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(stmt)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ControlStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------
    def log_command(self, *, creek: str, segment: str, node: str, aerator_on: bool, mode: str,
                    rule: str, reason: dict[str, str], do_mg_l: float | None,
                    ts: float | None = None) -> int:
        """Append one command; returns its id."""
        cur = self._db.execute(
            "INSERT INTO commands (ts, creek, segment, node, aerator_on, mode, rule, reason_zh, "
            "reason_en, do_mg_l) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time() if ts is None else ts, creek, segment, node, int(aerator_on), mode, rule,
             reason.get("zh", ""), reason.get("en", ""), do_mg_l))
        return int(cur.lastrowid or 0)

    def recent_commands(self, segment: str | None = None, node: str | None = None,
                        limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, optionally of one segment or one aerator."""
        where, params = [], []
        if segment:
            where.append("segment = ?")
            params.append(segment)
        if node:
            where.append("node = ?")
            params.append(node)
        q = ("SELECT " + ", ".join(_CMD_COLS) + " FROM commands"
             + (" WHERE " + " AND ".join(where) if where else "")
             + f" ORDER BY ts DESC, id DESC LIMIT {max(1, int(limit))}")
        return [_command_dict(r) for r in self._db.execute(q, params).fetchall()]

    def last_commands(self) -> dict[str, dict[str, Any]]:
        """The newest command of every aerator."""
        q = ("SELECT " + ", ".join(f"c.{c}" for c in _CMD_COLS) + " FROM commands c JOIN "
             "(SELECT node, MAX(id) AS id FROM commands GROUP BY node) m ON c.id = m.id")
        return {r[4]: _command_dict(r) for r in self._db.execute(q).fetchall()}

    # -- heartbeat --------------------------------------------------------------------------
    def beat(self, name: str = "controller", now: float | None = None) -> None:
        """Record that the controller is alive (every tick), so the panel knows who applies orders."""
        self._db.execute("INSERT OR REPLACE INTO heartbeat (name, ts) VALUES (?, ?)",
                         (name, time.time() if now is None else now))

    def last_beat(self, name: str = "controller") -> float | None:
        row = self._db.execute("SELECT ts FROM heartbeat WHERE name = ?", (name,)).fetchone()
        return float(row[0]) if row else None

    # -- overrides --------------------------------------------------------------------------
    def set_override(self, node: str, mode: str, until: float | None, by: str,
                     now: float | None = None) -> dict[str, Any]:
        """Order one aerator ``on``/``off`` until ``until`` (Unix s), or back to ``auto``."""
        now = time.time() if now is None else now
        node, mode, until, by = _check_override(node, mode, until, by, now)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if mode == "auto":
                self._db.execute("DELETE FROM overrides WHERE node = ?", (node,))
            else:
                self._db.execute("INSERT OR REPLACE INTO overrides (node, mode, until, by, set_at) "
                                 "VALUES (?, ?, ?, ?, ?)", (node, mode, until, by, now))
            self._db.execute("INSERT INTO override_log (node, mode, until, by, set_at) "
                             "VALUES (?, ?, ?, ?, ?)", (node, mode, until, by, now))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return {"node": node, "mode": mode, "until": until, "by": by, "set_at": now}

    def overrides(self, now: float | None = None) -> list[dict[str, Any]]:
        """Orders still in force at ``now`` (expired ones are simply ignored)."""
        now = time.time() if now is None else now
        rows = self._db.execute("SELECT node, mode, until, by, set_at FROM overrides "
                                "WHERE until > ? ORDER BY node", (now,)).fetchall()
        return [dict(zip(("node", "mode", "until", "by", "set_at"), r)) for r in rows]

    def override_log(self, node: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = "SELECT node, mode, until, by, set_at FROM override_log"
        params: list[Any] = []
        if node:
            q += " WHERE node = ?"
            params.append(node)
        q += f" ORDER BY id DESC LIMIT {max(1, int(limit))}"
        return [dict(zip(("node", "mode", "until", "by", "set_at"), r))
                for r in self._db.execute(q, params).fetchall()]


def _command_dict(row: tuple) -> dict[str, Any]:
    d = dict(zip(_CMD_COLS, row))
    d["aerator_on"] = bool(d["aerator_on"])
    d["reason"] = {"zh": d.pop("reason_zh"), "en": d.pop("reason_en")}
    return d


def _check_override(node: Any, mode: Any, until: Any, by: Any,
                    now: float) -> tuple[str, str, float | None, str]:
    if not isinstance(node, str) or not _ID_RE.fullmatch(node):
        raise ControlError(f"node {node!r} must be a node id matching [a-z0-9][a-z0-9-]{{0,31}}")
    if mode not in OVERRIDE_MODES:
        raise ControlError(f"mode {mode!r} is not one of {', '.join(OVERRIDE_MODES)}")
    if not isinstance(by, str) or not by.strip():
        raise ControlError("who gave the order (`by`) must be a non-empty name")
    if len(by) > MAX_BY_CHARS:
        raise ControlError(f"`by` holds at most {MAX_BY_CHARS} characters, got {len(by)}")
    if mode == "auto":
        return node, mode, None, by.strip()
    if isinstance(until, bool) or not isinstance(until, (int, float)):
        raise ControlError(f"mode {mode!r} needs `until` (Unix seconds), got {until!r}")
    until = float(until)
    if not until > now:
        raise ControlError(f"`until` {until:.0f} is not in the future (now {now:.0f})")
    if until - now > MAX_OVERRIDE_S:
        raise ControlError(f"an override lasts at most {MAX_OVERRIDE_S / 86400:g} days; "
                           f"`until` is {(until - now) / 86400:.1f} days away")
    return node, mode, until, by.strip()


# ---- the panel's function API ------------------------------------------------------------------

def store_path(var: str | Path) -> Path:
    return Path(var) / DB_NAME


def set_override(node: str, mode: str, until: float | None, by: str, *,
                 var: str | Path = "./var", now: float | None = None) -> dict[str, Any]:
    """Order an aerator ``on``/``off`` until ``until`` (Unix seconds), or ``auto``; ControlError says why not."""
    with ControlStore(store_path(var)) as s:
        return s.set_override(node, mode, until, by, now)


def overrides(*, var: str | Path = "./var", now: float | None = None) -> list[dict[str, Any]]:
    """Manual orders in force now: ``[{node, mode, until, by, set_at}]``."""
    with ControlStore(store_path(var)) as s:
        return s.overrides(now)


def recent_commands(segment: str | None = None, *, var: str | Path = "./var", node: str | None = None,
                    limit: int = 50) -> list[dict[str, Any]]:
    """The command log, newest first: ``[{id, ts, creek, segment, node, aerator_on, mode, rule, reason, do_mg_l}]``."""
    with ControlStore(store_path(var)) as s:
        return s.recent_commands(segment, node, limit)


def aerator_states(*, var: str | Path = "./var", now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per aerator: its last command, the override in force (or None) and the mode it is in."""
    with ControlStore(store_path(var)) as s:
        last = s.last_commands()
        ovs = {o["node"]: o for o in s.overrides(now)}
    out: dict[str, dict[str, Any]] = {}
    for node in sorted(set(last) | set(ovs)):
        cmd = last.get(node)
        out[node] = {"last_command": cmd, "override": ovs.get(node),
                     "mode": "manual" if node in ovs else (cmd["mode"] if cmd else "auto")}
    return out


def override_log(*, var: str | Path = "./var", node: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Every order given (including ``auto``), newest first: ``[{node, mode, until, by, set_at}]``."""
    with ControlStore(store_path(var)) as s:
        return s.override_log(node, limit)


def log_manual_command(*, creek: str, segment: str, node: str, aerator_on: bool, by: str,
                       var: str | Path = "./var", ts: float | None = None) -> int:
    """Log a command the panel published itself because no controller was running."""
    reason = {"zh": f"人工操作（{by}），控制器未运行，面板直接下发",
              "en": f"manual order by {by}, sent by the panel (controller not running)"}
    with ControlStore(store_path(var)) as s:
        return s.log_command(creek=creek, segment=segment, node=node, aerator_on=aerator_on,
                             mode="manual", rule="override_direct", reason=reason, do_mg_l=None,
                             ts=ts)


def controller_alive(*, var: str | Path = "./var", max_age_s: float = 30.0,
                     now: float | None = None) -> bool:
    """True when the controller recorded a tick within ``max_age_s`` (wall clock)."""
    if not store_path(var).exists():
        return False
    with ControlStore(store_path(var)) as s:
        last = s.last_beat()
    now = time.time() if now is None else now
    return last is not None and now - last <= max_age_s

"""Panel accounts in SQLite (``{var}/web.sqlite``): names, roles, slow password hashes.

Passwords are hashed with werkzeug's scrypt (a memory-hard KDF; pbkdf2 as fallback when the
Python build lacks scrypt). The same file keeps small panel state (aggregate watermarks).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

ROLES = ("viewer", "cleaner", "operator", "admin")
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    created REAL NOT NULL,
    changed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class UserError(ValueError):
    """A user cannot be added or changed; the message says why."""


def _hash_method() -> str:
    try:
        hashlib.scrypt(b"x", salt=b"y", n=2, r=1, p=1)
        return "scrypt"
    except (AttributeError, ValueError):
        return "pbkdf2:sha256:600000"


HASH_METHOD = _hash_method()
# Compared against when a user name does not exist, so a login takes as long either way.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=HASH_METHOD)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    changed: float

    def can(self, role: str) -> bool:
        """True when this user's role is ``role`` or above."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class UserStore:
    """CRUD over the users table; a connection per call keeps threads apart."""

    # Sessions look their user up on every request; a short cache keeps that off SQLite while
    # a role change or deletion still takes effect within a second (and at once in this process).
    CACHE_TTL_S = 1.0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._cache: dict[int, tuple[float, User | None]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def add(self, name: str, role: str, password: str) -> User:
        _check(name, role, password)
        now = time.time()
        try:
            with closing(self._connect()) as db, db:
                cur = db.execute("INSERT INTO users (name, role, pw_hash, created, changed) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (name, role, generate_password_hash(password, method=HASH_METHOD), now, now))
                return User(cur.lastrowid, name, role, now)
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} already exists") from None

    def set_role(self, name: str, role: str) -> None:
        if role not in ROLES:
            raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
        self._update(name, "role = ?", (role,))

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise UserError(f"password must be at least {MIN_PASSWORD} characters")
        self._update(name, "pw_hash = ?", (generate_password_hash(password, method=HASH_METHOD),))

    def _update(self, name: str, assignment: str, params: tuple[Any, ...]) -> None:
        self._cache.clear()
        with closing(self._connect()) as db, db:
            cur = db.execute(f"UPDATE users SET {assignment}, changed = ? WHERE name = ?",
                             (*params, time.time(), name))
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")

    def delete(self, name: str) -> None:
        self._cache.clear()
        with closing(self._connect()) as db, db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user {name!r}")

    def get(self, user_id: int) -> User | None:
        hit = self._cache.get(user_id)
        if hit is not None and time.monotonic() - hit[0] < self.CACHE_TTL_S:
            return hit[1]
        user = self._load(user_id)
        self._cache[user_id] = (time.monotonic(), user)
        return user

    def _load(self, user_id: int) -> User | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT id, name, role, changed FROM users WHERE id = ?", (user_id,)).fetchone()
        return User(row["id"], row["name"], row["role"], row["changed"]) if row else None

    def all(self) -> list[User]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, name, role, changed FROM users ORDER BY name").fetchall()
        return [User(r["id"], r["name"], r["role"], r["changed"]) for r in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches, else None (constant work either way)."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT id, name, role, pw_hash, changed FROM users WHERE name = ?",
                             (name,)).fetchone()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        if not check_password_hash(row["pw_hash"], password):
            return None
        return User(row["id"], row["name"], row["role"], row["changed"])

    # ---- small key/value state ----------------------------------------------------------
    def kv_get(self, key: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def kv_set(self, key: str, value: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO kv (key, value) VALUES (?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


def _check(name: str, role: str, password: str) -> None:
    if not NAME_RE.fullmatch(name or ""):
        raise UserError(f"user name {name!r} must be 1-64 letters, digits or _.@-")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"password must be at least {MIN_PASSWORD} characters")

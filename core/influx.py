"""InfluxDB access through the v1 HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

Why v1 and not the ``influxdb-client`` package: the only server that installs here is Debian's
InfluxDB 1.6.7, which has no ``/api/v2``; InfluxDB 3 dropped Flux; and ``/write`` + ``/query``
are served natively by 1.x and as the v1 compatibility API by 2.x and 3.x. ``requests`` with a
pooled session gives connection reuse.

Line protocol and InfluxQL are built here only, from validated identifiers and escaped
literals, so no caller concatenates user input into a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests

TELEMETRY = "telemetry"
ALERTS = "alerts"
NODE_STATUS = "node_status"
REJECTS = "rejects"


class InfluxError(RuntimeError):
    """InfluxDB answered with an error or could not be reached."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """Connection failures and 5xx are worth retrying; 4xx (bad points) are not."""
        return self.status is None or self.status >= 500 or self.status == 429


# ---- line protocol -----------------------------------------------------------------------

# InfluxDB 1.x keeps a backslash in a name literally unless it precedes a character that
# needs escaping (it does not unescape a doubled backslash). So a backslash is left alone, except one
# right before a comma, equals sign or space, which would otherwise escape what follows: that
# one is doubled, the nearest the 1.x parser can carry (stored as two backslashes). A trailing
# backslash cannot be carried at all (it would escape the separator): it becomes U+FF3C "＼".
_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_DANGLING_BACKSLASH = re.compile(r"\\(?=[,= ])")


def _backslashes(name: str) -> str:
    if name.endswith("\\"):
        name = name[:-1] + "\uff3c"
    return _DANGLING_BACKSLASH.sub(r"\\\\", name)


def escape_measurement(name: str) -> str:
    if "\\" in name:
        name = _backslashes(name)
    return name.translate(_MEAS_ESC)


def escape_key(key: str) -> str:
    """Escape a tag key, tag value or field key (InfluxDB 1.x rules)."""
    if "\\" in key:
        key = _backslashes(key)
    return key.translate(_KEY_ESC)


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_field(value: Any) -> str:
    """Floats as floats (always with a point), ints with ``i``, bools, strings quoted.

    Measurements are always floats, so a field never changes type between writes.
    """
    t = type(value)
    if t is bool:
        return "true" if value else "false"
    if t is float:
        return repr(value)
    if t is int:
        return f"{value}i"
    if t is str:
        return escape_string_field(value)
    raise TypeError(f"cannot store {value!r} in InfluxDB")


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], ts_ms: int) -> str:
    """One line of line protocol, millisecond precision. Empty tag values are left out."""
    tag_part = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v != "")
    field_part = ",".join(f"{escape_key(k)}={format_field(v)}" for k, v in fields.items())
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {ts_ms}"


# ---- InfluxQL ------------------------------------------------------------------------------

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def quote_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier; refuses anything but a plain name."""
    if not IDENT_RE.match(name):
        raise ValueError(f"{name!r} is not a valid identifier")
    return f'"{name}"'


def quote_literal(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ms_literal(ts_ms: int) -> str:
    """A time literal for WHERE clauses (``time >= 123ms``)."""
    return f"{int(ts_ms)}ms"


# ---- client -------------------------------------------------------------------------------

@dataclass(frozen=True)
class InfluxTarget:
    base: str
    database: str
    auth: tuple[str, str] | None


def parse_influx_url(url: str, database: str) -> InfluxTarget:
    """``http(s)://[user:pass@]host:port[/path]`` -> base URL without credentials, and auth."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"InfluxDB URL {url!r} must look like http://HOST:PORT")
    auth = (parts.username or "", parts.password or "") if parts.username else None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return InfluxTarget(base, database, auth)


class InfluxClient:
    """A small v1 HTTP API client with connection reuse."""

    def __init__(self, url: str, database: str = "rivermon", timeout: float = 10.0):
        self.target = parse_influx_url(url, database)
        self.database = database
        self.timeout = timeout
        self.session = requests.Session()
        if self.target.auth:
            self.session.auth = self.target.auth

    @property
    def url(self) -> str:
        return self.target.base

    def close(self) -> None:
        self.session.close()

    def ping(self) -> bool:
        try:
            r = self.session.get(self.url + "/ping", timeout=min(self.timeout, 3.0))
            return r.status_code == 204
        except requests.RequestException:
            return False

    def version(self) -> str:
        r = self.session.get(self.url + "/ping", timeout=self.timeout)
        return r.headers.get("X-Influxdb-Version", "")

    def ensure_database(self) -> None:
        self.query(f"CREATE DATABASE {quote_ident(self.database)}", method="POST", db=None)

    def drop_database(self) -> None:
        self.query(f"DROP DATABASE {quote_ident(self.database)}", method="POST", db=None)

    def write_lines(self, lines: Iterable[str] | str, precision: str = "ms") -> None:
        """POST line protocol; raises :class:`InfluxError` (with ``.status``) on failure."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        if not body:
            return
        try:
            r = self.session.post(self.url + "/write",
                                  params={"db": self.database, "precision": precision},
                                  data=body.encode("utf-8"), timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {exc}") from None
        if r.status_code != 204:
            raise InfluxError(f"InfluxDB refused the write ({r.status_code}): {_error_text(r)}",
                              r.status_code, _error_text(r))

    def query(self, q: str, method: str = "GET", db: str | None | type[...] = ...,
              epoch: str | None = "ms") -> list[dict[str, Any]]:
        """Run InfluxQL; returns the ``results`` list; raises on any statement error."""
        params: dict[str, str] = {"q": q}
        database = self.database if db is ... else db
        if database:
            params["db"] = database
        if epoch:
            params["epoch"] = epoch
        try:
            if method == "POST":
                r = self.session.post(self.url + "/query", data=params, timeout=self.timeout)
            else:
                r = self.session.get(self.url + "/query", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {exc}") from None
        if r.status_code != 200:
            raise InfluxError(f"InfluxDB query failed ({r.status_code}): {_error_text(r)}",
                              r.status_code, _error_text(r))
        results = r.json().get("results", [])
        for res in results:
            if "error" in res:
                raise InfluxError(f"InfluxQL error: {res['error']}", 400, res["error"])
        return results

    def rows(self, q: str) -> list[dict[str, Any]]:
        """Flatten the first statement's series into dicts (tags merged into each row)."""
        out: list[dict[str, Any]] = []
        for series in (self.query(q)[0].get("series") or []):
            tags = series.get("tags") or {}
            cols = series["columns"]
            for values in series["values"]:
                row = dict(zip(cols, values))
                row.update(tags)
                out.append(row)
        return out


def _error_text(r: requests.Response) -> str:
    try:
        return str(r.json().get("error", r.text))[:2000]
    except ValueError:
        return r.text[:2000]

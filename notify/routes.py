"""The routes file: named targets (where messages go) and routes (which alerts go where).

A TOML file (``notify_routes``)::

    [targets.office-wecom]
    type = "wecom"                    # wecom | dingtalk | webhook
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."

    [[routes]]
    name = "water-critical"
    severity = ["critical"]           # or min_severity = "warning"
    audience = ["water"]              # kind class: water | equipment
    segments = ["hl-3", "hl-4"]
    targets = ["office-wecom"]
    escalate_to = ["leader-wecom"]

Every key is checked; a mistake is refused with the key and the problem named
(``routes[1].targets: unknown target 'ops' (defined: office-wecom)``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rivermon.core.alerts import SEVERITIES, audience_of, severity_rank
from rivermon.notify.quiet import QuietHours, parse_quiet_hours

TARGET_TYPES = ("wecom", "dingtalk", "webhook")
MSGTYPES = {"wecom": ("markdown", "text"), "dingtalk": ("markdown", "text"), "webhook": ("json",)}
AUDIENCES = ("water", "equipment")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_TARGET_KEYS = {"type", "url", "msgtype", "secret", "headers", "mentioned_mobile_list",
                "mentioned_list", "at_all"}
_ROUTE_KEYS = {"name", "targets", "severity", "min_severity", "audience", "kinds", "segments",
               "creeks", "escalate_to", "remind_s", "escalate_s", "quiet_hours"}


class RoutesError(ValueError):
    """The routes file is wrong; the message names the key and the problem."""


@dataclass(frozen=True)
class Target:
    """One webhook: a WeCom group robot, a DingTalk robot or a generic JSON endpoint."""

    name: str
    type: str
    url: str
    msgtype: str
    secret: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    mentioned_mobile_list: tuple[str, ...] = ()
    mentioned_list: tuple[str, ...] = ()
    at_all: bool = False

    @property
    def chat(self) -> bool:
        """A chat robot (people read it), as opposed to a machine webhook."""
        return self.type in ("wecom", "dingtalk")

    def display_url(self) -> str:
        """The URL with query values (robot keys, tokens) masked, for logs."""
        return mask_url(self.url)


@dataclass(frozen=True)
class Route:
    """Alerts matching every given criterion go to ``targets``; unset criteria match all."""

    name: str
    targets: tuple[str, ...]
    severity: frozenset[str] | None = None
    min_severity: str | None = None
    audience: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    segments: frozenset[str] | None = None
    creeks: frozenset[str] | None = None
    escalate_to: tuple[str, ...] = ()
    remind_s: float | None = None
    escalate_s: float | None = None
    quiet: QuietHours | None = field(default=None, compare=False)
    quiet_set: bool = False

    def matches(self, event: dict[str, Any]) -> bool:
        """Does this alert event fall under the route?"""
        severity = event.get("severity", "")
        if self.severity is not None and severity not in self.severity:
            return False
        if self.min_severity is not None and (
                severity not in SEVERITIES or severity_rank(severity) < severity_rank(self.min_severity)):
            return False
        if self.audience is not None and event_audience(event) not in self.audience:
            return False
        if self.kinds is not None and event.get("kind") not in self.kinds:
            return False
        # A creek-wide alert (segment "") concerns every segment, so segment routes get it too.
        segment = event.get("segment") or ""
        if self.segments is not None and segment and segment not in self.segments:
            return False
        if self.creeks is not None and event.get("creek") not in self.creeks:
            return False
        return True


@dataclass(frozen=True)
class Routes:
    targets: dict[str, Target]
    routes: tuple[Route, ...]
    source: str = ""

    def matching(self, event: dict[str, Any]) -> list[Route]:
        return [r for r in self.routes if r.matches(event)]

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


def event_audience(event: dict[str, Any]) -> str:
    """The kind class: the event's ``audience`` if it carries one, else derived from ``kind``."""
    audience = event.get("audience")
    return audience if audience in AUDIENCES else audience_of(str(event.get("kind", "")))


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# ---- loading --------------------------------------------------------------------------------

def load_routes(path: str | Path, tz: str = "Asia/Shanghai") -> Routes:
    """Read and check a routes file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutesError(f"routes file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(f"routes file {path} is not valid TOML: {exc}") from None
    try:
        return parse_routes(data, tz, str(path))
    except RoutesError as exc:
        raise RoutesError(f"{path}: {exc}") from None


def empty_routes() -> Routes:
    return Routes({}, (), "")


def parse_routes(data: dict[str, Any], tz: str = "Asia/Shanghai", source: str = "") -> Routes:
    unknown = set(data) - {"targets", "routes"}
    if unknown:
        raise RoutesError(f"unknown top-level key(s) {', '.join(sorted(unknown))}; "
                          "expected [targets.NAME] tables and [[routes]]")
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, dict):
        raise RoutesError("targets: must be tables [targets.NAME]")
    targets = {name: _parse_target(name, raw) for name, raw in raw_targets.items()}
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        raise RoutesError("routes: must be an array of tables [[routes]]")
    routes = tuple(_parse_route(raw, f"routes[{i}]", targets, tz) for i, raw in enumerate(raw_routes))
    names = [r.name for r in routes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RoutesError(f"routes: name(s) used twice: {', '.join(dup)}")
    return Routes(targets, routes, source)


def _parse_target(name: str, raw: Any) -> Target:
    where = f"targets.{name}"
    if not NAME_RE.match(name):
        raise RoutesError(f"{where}: a target name is letters, digits, '-', '_' or '.'")
    if not isinstance(raw, dict):
        raise RoutesError(f"{where}: must be a table")
    _no_unknown(raw, _TARGET_KEYS, where)
    type_ = _req_str(raw, "type", where)
    if type_ not in TARGET_TYPES:
        raise RoutesError(f"{where}.type: {type_!r} is not one of {', '.join(TARGET_TYPES)}")
    url = _req_str(raw, "url", where)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RoutesError(f"{where}.url: {mask_url(url)!r} must be an http:// or https:// URL")
    msgtype = raw.get("msgtype", MSGTYPES[type_][0])
    if msgtype not in MSGTYPES[type_]:
        raise RoutesError(f"{where}.msgtype: {msgtype!r} is not one of {', '.join(MSGTYPES[type_])}")
    secret = raw.get("secret", "")
    if not isinstance(secret, str) or (secret and type_ != "dingtalk"):
        raise RoutesError(f"{where}.secret: a string, and only for dingtalk targets (its signing)")
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise RoutesError(f"{where}.headers: must be a table of strings")
    at_all = raw.get("at_all", False)
    if not isinstance(at_all, bool):
        raise RoutesError(f"{where}.at_all: must be true or false")
    return Target(name, type_, url, msgtype, secret, tuple(headers.items()),
                  _str_list(raw, "mentioned_mobile_list", where) or (),
                  _str_list(raw, "mentioned_list", where) or (), at_all)


def _parse_route(raw: Any, where: str, targets: dict[str, Target], tz: str) -> Route:
    if not isinstance(raw, dict):
        raise RoutesError(f"{where}: must be a table")
    _no_unknown(raw, _ROUTE_KEYS, where)
    name = raw.get("name", where)
    if not isinstance(name, str) or not name:
        raise RoutesError(f"{where}.name: must be a non-empty string")
    where = f"{where} ({name})" if "name" in raw else where
    route_targets = _target_list(raw, "targets", where, targets, required=True)
    severity = _choices(raw, "severity", where, SEVERITIES)
    min_sev = raw.get("min_severity")
    if min_sev is not None and min_sev not in SEVERITIES:
        raise RoutesError(f"{where}.min_severity: {min_sev!r} is not one of {', '.join(SEVERITIES)}")
    quiet_set = "quiet_hours" in raw
    try:
        quiet = parse_quiet_hours(raw["quiet_hours"], tz, f"{where}.quiet_hours") if quiet_set else None
    except ValueError as exc:
        raise RoutesError(str(exc)) from None
    return Route(
        name=name, targets=route_targets, severity=severity, min_severity=min_sev,
        audience=_choices(raw, "audience", where, AUDIENCES),
        kinds=_set(raw, "kinds", where), segments=_set(raw, "segments", where),
        creeks=_set(raw, "creeks", where),
        escalate_to=_target_list(raw, "escalate_to", where, targets, required=False),
        remind_s=_seconds(raw, "remind_s", where), escalate_s=_seconds(raw, "escalate_s", where),
        quiet=quiet, quiet_set=quiet_set)


def _no_unknown(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise RoutesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(allowed: {', '.join(sorted(allowed))})")


def _req_str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise RoutesError(f"{where}.{key}: missing or not a string")
    return value


def _str_list(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RoutesError(f"{where}.{key}: must be a list of strings")
    return tuple(value)


def _set(raw: dict[str, Any], key: str, where: str) -> frozenset[str] | None:
    values = _str_list(raw, key, where)
    if values is not None and not values:
        raise RoutesError(f"{where}.{key}: an empty list matches nothing; leave the key out to match all")
    return frozenset(values) if values is not None else None


def _choices(raw: dict[str, Any], key: str, where: str, allowed: Iterable[str]) -> frozenset[str] | None:
    values = _set(raw, key, where)
    bad = sorted(set(values or ()) - set(allowed))
    if bad:
        raise RoutesError(f"{where}.{key}: {', '.join(map(repr, bad))} not in {', '.join(allowed)}")
    return values


def _target_list(raw: dict[str, Any], key: str, where: str, targets: dict[str, Target],
                 required: bool) -> tuple[str, ...]:
    values = _str_list(raw, key, where)
    if not values:
        if required:
            raise RoutesError(f"{where}.{key}: a route needs at least one target")
        return ()
    for v in values:
        if v not in targets:
            raise RoutesError(f"{where}.{key}: unknown target {v!r} "
                              f"(defined: {', '.join(targets) or 'none'})")
    return tuple(dict.fromkeys(values))


def _seconds(raw: dict[str, Any], key: str, where: str) -> float | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RoutesError(f"{where}.{key}: must be a number of seconds >= 0 (0 turns it off)")
    return float(value)

"""The contract's topics and payloads: parsing and validation.

This is the one place that decides what a node's message means, used by the ingestor, the
model, backfill and replay alike. It implements the contract's bad-input table: the whole
message is refused when it cannot be read at all; otherwise a bad reading is refused and the
rest of a backlog kept, and a bad field is refused and the rest of the reading kept. Every
refusal is a :class:`Rejection` with a short ``reason`` code (counted by) and a sentence
(``detail``) that says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BACKLOG = 1000
MAX_FUTURE_S = 300.0
# Readings stamped before 2000 come from a node whose clock was never set; storing them at
# 1970 would hide them from every chart, so they are refused with that reason.
MIN_TS_S = 946684800.0
RAW_KEEP_BYTES = 4096

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
RESERVED = ("ts", "seq")

# name -> (unit, low, high); bool fields have no range.
KNOWN_FIELDS: dict[str, tuple[str, float, float]] = {
    "do_mg_l": ("mg/L", 0.0, 50.0),
    "do_sat_pct": ("%", 0.0, 500.0),
    "turbidity_ntu": ("NTU", 0.0, 4000.0),
    "temp_c": ("°C", -5.0, 50.0),
    "rssi_dbm": ("dBm", -150.0, 0.0),
    "orp_mv": ("mV", -1000.0, 1000.0),
    "nh3n_mg_l": ("mg/L", 0.0, 100.0),
    "transparency_cm": ("cm", 0.0, 500.0),
    "battery_v": ("V", 0.0, 30.0),
    "power_w": ("W", 0.0, 100000.0),
}
BOOL_FIELDS = frozenset({"aerator_on"})
STATUS_STATES = ("online", "offline")

# Rejection reason codes (the label of the rejects counter).
R_TOPIC = "bad_topic"
R_TOO_LARGE = "too_large"
R_NOT_JSON = "not_json"
R_NOT_OBJECT = "not_object_or_array"
R_BACKLOG = "backlog_too_long"
R_BACKLOG_EMPTY = "backlog_empty"
R_NOT_READING = "reading_not_object"
R_TS_MISSING = "ts_missing"
R_TS_INVALID = "ts_invalid"
R_TS_FUTURE = "ts_future"
R_TS_ANCIENT = "ts_before_2000"
R_FIELD_NAME = "field_bad_name"
R_FIELD_TYPE = "field_wrong_type"
R_FIELD_NONFINITE = "field_not_finite"
R_FIELD_RANGE = "field_out_of_range"
R_SEQ = "seq_invalid"
R_EMPTY = "no_valid_measurement"
R_STATUS = "status_invalid"
R_INFLUX = "influx_refused"

Value = float | bool


@dataclass(slots=True)
class Reading:
    """One accepted reading; ``fields`` hold only valid measurements (numbers as float)."""

    creek: str
    node: str
    ts_ms: int
    fields: dict[str, Value]
    seq: int | None = None

    @property
    def ts(self) -> float:
        return self.ts_ms / 1000.0


@dataclass(slots=True)
class Rejection:
    """A refused message, reading or field, and why."""

    reason: str
    detail: str
    index: int | None = None  # position in a backlog array
    field: str | None = None  # the refused field, for field-level refusals

    @property
    def whole_message(self) -> bool:
        return self.index is None and self.field is None


@dataclass(slots=True)
class Topic:
    creek: str
    node: str | None
    channel: str  # telemetry, status, cmd, alerts


@dataclass(slots=True)
class Telemetry:
    """The outcome of one telemetry message: what is kept and what is refused."""

    topic: Topic | None
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(slots=True)
class Status:
    creek: str
    node: str
    state: str
    fw: str | None
    extra: dict[str, Any]


class TopicError(ValueError):
    pass


def parse_topic(topic: str, prefix: str = "rivermon/v1") -> Topic:
    """Split a contract topic; raises :class:`TopicError` saying what is wrong."""
    if not topic.startswith(prefix + "/"):
        raise TopicError(f"topic {topic[:200]!r} does not start with {prefix + '/'!r}")
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) == 2 and parts[1] == "alerts":
        creek, channel, node = parts[0], "alerts", None
    elif len(parts) == 3 and parts[2] in ("telemetry", "status", "cmd"):
        creek, node, channel = parts
    else:
        raise TopicError(f"topic {topic[:200]!r} is not {prefix}/CREEK/NODE/(telemetry|status|cmd)"
                         f" or {prefix}/CREEK/alerts")
    if not ID_RE.match(creek):
        raise TopicError(f"creek {creek[:64]!r} in topic must match [a-z0-9][a-z0-9-]{{0,31}}")
    if node is not None and not ID_RE.match(node):
        raise TopicError(f"node {node[:64]!r} in topic must match [a-z0-9][a-z0-9-]{{0,31}}")
    return Topic(creek, node, channel)


def telemetry_topic(prefix: str, creek: str, node: str) -> str:
    return f"{prefix}/{creek}/{node}/telemetry"


def status_topic(prefix: str, creek: str, node: str) -> str:
    return f"{prefix}/{creek}/{node}/status"


def cmd_topic(prefix: str, creek: str, node: str) -> str:
    return f"{prefix}/{creek}/{node}/cmd"


def alerts_topic(prefix: str, creek: str) -> str:
    return f"{prefix}/{creek}/alerts"


def decode_json(payload: bytes) -> tuple[Any, Rejection | None]:
    """Size check and JSON decoding of a whole message."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None, Rejection(R_TOO_LARGE, f"payload is {len(payload)} bytes, over the "
                                            f"{MAX_PAYLOAD_BYTES}-byte limit")
    try:
        # Decoding first spares json.loads its encoding detection on bytes.
        return json.loads(payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload), None
    except UnicodeDecodeError as exc:
        return None, Rejection(R_NOT_JSON, f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    except RecursionError:
        return None, Rejection(R_NOT_JSON, "payload is nested too deeply to be JSON we accept")
    except ValueError as exc:
        return None, Rejection(R_NOT_JSON, f"payload is not JSON: {exc}")


def parse_telemetry(topic: str, payload: bytes, prefix: str = "rivermon/v1",
                    now: float | None = None) -> Telemetry:
    """Validate a telemetry message per the contract's bad-input table."""
    try:
        t = parse_topic(topic, prefix)
    except TopicError as exc:
        return Telemetry(None, rejections=[Rejection(R_TOPIC, str(exc))])
    if t.channel != "telemetry":
        return Telemetry(t, rejections=[Rejection(R_TOPIC, f"topic channel {t.channel!r} is not telemetry")])
    data, bad = decode_json(payload)
    if bad:
        return Telemetry(t, rejections=[bad])
    return validate_readings(t.creek, t.node or "", data, now=now, topic=t)


def validate_readings(creek: str, node: str, data: Any, now: float | None = None,
                      topic: Topic | None = None) -> Telemetry:
    """Validate one decoded reading object or a backlog array of them."""
    out = Telemetry(topic or Topic(creek, node, "telemetry"))
    if isinstance(data, dict):
        items: list[Any] = [data]
        indexed = False
    elif isinstance(data, list):
        if len(data) > MAX_BACKLOG:
            out.rejections.append(Rejection(
                R_BACKLOG, f"backlog holds {len(data)} readings, over the {MAX_BACKLOG} allowed"))
            return out
        if not data:
            out.rejections.append(Rejection(R_BACKLOG_EMPTY, "backlog array is empty: no reading to keep"))
            return out
        items, indexed = data, True
    else:
        out.rejections.append(Rejection(
            R_NOT_OBJECT, f"payload is a JSON {type(data).__name__}, not an object or an array"))
        return out
    limit = (time.time() if now is None else now) + MAX_FUTURE_S
    for i, item in enumerate(items):
        reading = _validate_one(creek, node, item, limit, i if indexed else None, out.rejections)
        if reading is not None:
            out.readings.append(reading)
    return out


def _validate_one(creek: str, node: str, item: Any, limit: float, index: int | None,
                  rejections: list[Rejection]) -> Reading | None:
    where = f"reading {index}: " if index is not None else ""
    if not isinstance(item, dict):
        rejections.append(Rejection(R_NOT_READING, f"{where}is a JSON {type(item).__name__}, "
                                                   f"not an object", index if index is not None else 0))
        return None
    ts_s, bad = parse_ts(item.get("ts", _MISSING), limit)
    if bad:
        reason, detail = bad
        rejections.append(Rejection(reason, where + detail, index if index is not None else 0))
        return None
    fields: dict[str, Value] = {}
    seq = None
    for key, value in item.items():
        if key == "ts":
            continue
        if key == "seq":
            if type(value) is int and 0 <= value < 2 ** 63:
                seq = value
            else:
                rejections.append(Rejection(R_SEQ, f"{where}seq {_short(value)} is not a "
                                                   f"non-negative integer", index, "seq"))
            continue
        # Fast path for the common case, a known measurement in range (NaN fails the
        # comparison and falls through to check_field, which names the problem).
        vt = type(value)
        if vt is float or vt is int:
            known = KNOWN_FIELDS.get(key)
            if known is not None and known[1] <= value <= known[2]:
                fields[key] = float(value)
                continue
        problem = check_field(key, value)
        if problem:
            rejections.append(Rejection(problem[0], where + problem[1], index, key[:64]))
        else:
            fields[key] = value if type(value) is bool else float(value)
    if not fields:
        rejections.append(Rejection(R_EMPTY, f"{where}no valid measurement left",
                                    index if index is not None else 0))
        return None
    return Reading(creek, node, int(round(ts_s * 1000)), fields, seq)


_MISSING = object()


def parse_ts(value: Any, limit: float | None = None) -> tuple[float, tuple[str, str] | None]:
    """Unix seconds or RFC 3339 with an offset -> seconds; or a (reason, detail) refusal."""
    if value is _MISSING or value is None:
        return 0.0, (R_TS_MISSING, "ts is missing")
    if type(value) in (int, float):
        try:
            ts = float(value)
        except OverflowError:
            return 0.0, (R_TS_INVALID, f"ts {_short(value)} is too large to be a time")
        if not math.isfinite(ts):
            return 0.0, (R_TS_INVALID, f"ts {value!r} is not finite")
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            return 0.0, (R_TS_INVALID, f"ts {_short(value)} is not Unix seconds or RFC 3339")
        if dt.tzinfo is None:
            return 0.0, (R_TS_INVALID, f"ts {_short(value)} has no UTC offset")
        ts = dt.timestamp()
    else:
        return 0.0, (R_TS_INVALID, f"ts {_short(value)} is not Unix seconds or RFC 3339")
    if ts < MIN_TS_S:
        return 0.0, (R_TS_ANCIENT, f"ts {_short(value)} is before 2000-01-01: is the node's clock set?")
    if limit is not None and ts > limit:
        ahead = ts - (limit - MAX_FUTURE_S)
        return 0.0, (R_TS_FUTURE, f"ts {_short(value)} is {ahead:.0f} s in the future "
                                  f"(more than {MAX_FUTURE_S:.0f} s)")
    return ts, None


def check_field(key: str, value: Any) -> tuple[str, str] | None:
    """None when ``key: value`` is a valid measurement, else (reason, sentence)."""
    known = KNOWN_FIELDS.get(key)
    if known is None and key not in BOOL_FIELDS and not FIELD_RE.match(key):
        return R_FIELD_NAME, f"field name {_short(key)} must match [a-z][a-z0-9_]{{0,63}}"
    vt = type(value)
    if key in BOOL_FIELDS:
        if vt is not bool:
            return R_FIELD_TYPE, f"{key} {_short(value)} must be true or false"
        return None
    if vt is bool:
        if known is not None:
            return R_FIELD_TYPE, f"{key} {_short(value)} must be a number ({known[0]})"
        return None
    if vt is not float and vt is not int:
        return R_FIELD_TYPE, f"{key} {_short(value)} must be a number or a boolean"
    try:
        f = float(value)
    except OverflowError:
        return R_FIELD_NONFINITE, f"{key} {_short(value)} is too large to be finite"
    if not math.isfinite(f):
        return R_FIELD_NONFINITE, f"{key} {_short(value)} is not finite"
    if known is not None and not known[1] <= f <= known[2]:
        return R_FIELD_RANGE, (f"{key} {_short(value)} is outside the possible range "
                               f"{known[1]:g} to {known[2]:g} {known[0]}")
    if known is None and abs(f) > 1e300:
        return R_FIELD_RANGE, f"{key} {_short(value)} is too large to store"
    return None


def parse_status(topic: Topic, payload: bytes) -> tuple[Status | None, Rejection | None]:
    """A node's retained status or last will."""
    data, bad = decode_json(payload)
    if bad:
        return None, Rejection(R_STATUS, "status " + bad.detail)
    if not isinstance(data, dict):
        return None, Rejection(R_STATUS, "status payload must be a JSON object")
    state = data.get("state")
    if state not in STATUS_STATES:
        return None, Rejection(R_STATUS, f"status state {_short(state)} must be 'online' or 'offline'")
    fw = data.get("fw")
    if fw is not None and not isinstance(fw, str):
        return None, Rejection(R_STATUS, f"status fw {_short(fw)} must be a string")
    extra = {k: v for k, v in data.items() if k not in ("state", "fw")}
    return Status(topic.creek, topic.node or "", state, fw, extra), None


def raw_excerpt(payload: bytes) -> str:
    """The first 4 KiB of a payload as text an operator can read (invalid UTF-8 escaped)."""
    return payload[:RAW_KEEP_BYTES].decode("utf-8", errors="backslashreplace")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def reading_to_dict(r: Reading) -> dict[str, Any]:
    """A reading as a contract payload object (for republishing and tests)."""
    d: dict[str, Any] = {"ts": r.ts_ms / 1000.0}
    if r.seq is not None:
        d["seq"] = r.seq
    d.update(r.fields)
    return d


def iter_fields(readings: Iterable[Reading]) -> set[str]:
    return {k for r in readings for k in r.fields}

"""Durations (``7d``, ``1d10h30m``), instants (RFC 3339 or Unix seconds) and RFC 3339 output."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str | int | float, what: str = "duration") -> float:
    """``"7d"``, ``"1d10h"``, ``"90s"``, ``"2.5h"`` or a number of seconds -> seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{what}: {text!r} is not a duration")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"{what}: {text!r} must not be negative")
        return float(text)
    s = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    pos, total = 0, 0.0
    for m in _PART_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"{what}: {text!r} is not a duration like 7d, 10m, 1d10h or 90s")
    return total


def parse_instant(text: str | int | float, what: str = "time") -> float:
    """RFC 3339 with an offset, or Unix seconds -> Unix seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not RFC 3339 (2026-11-27T08:00:00+08:00) "
                         f"or Unix seconds") from None
    if dt.tzinfo is None:
        raise ValueError(f"{what}: {text!r} has no UTC offset (add +08:00 or Z)")
    return dt.timestamp()


def rfc3339(ts: float, tz: tzinfo | str = timezone.utc) -> str:
    """Unix seconds -> RFC 3339 with the offset of ``tz`` (seconds, or milliseconds if fractional)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    dt = datetime.fromtimestamp(ts, zone)
    spec = "milliseconds" if abs(ts - round(ts)) > 1e-6 else "seconds"
    return dt.isoformat(timespec=spec)


def local_hours(ts: float, offset_h: float) -> float:
    """Hour of day (0-24, fractional) at a fixed UTC offset."""
    return ((ts / 3600.0) + offset_h) % 24.0


def utc_offset_hours(tz: str, ts: float) -> float:
    """The UTC offset of zone ``tz`` at ``ts``, in hours."""
    off = datetime.fromtimestamp(ts, ZoneInfo(tz)).utcoffset() or timedelta(0)
    return off.total_seconds() / 3600.0

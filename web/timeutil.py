"""Time parsing and formatting for the panel: query parameters in, RFC 3339 in the creek's zone out."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

# A trend may span at most this much; longer requests are refused with a reason.
MAX_SPAN_S = 400 * 86400
MIN_TS_S = 946684800.0  # 2000-01-01, as the contract extension for readings


class BadParam(ValueError):
    """A query parameter is wrong; the message names it and says what is expected."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.param = name


def parse_time(name: str, raw: str | None, default: float) -> float:
    """Unix seconds or RFC 3339 (with offset, or ``Z``) -> Unix seconds; empty -> ``default``."""
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadParam(name, f"{raw[:40]!r} is neither Unix seconds nor an RFC 3339 time") from None
        if dt.tzinfo is None:
            raise BadParam(name, f"{raw[:40]!r} needs a UTC offset (e.g. +08:00 or Z)")
        value = dt.timestamp()
    if not math.isfinite(value) or value < MIN_TS_S or value > time.time() + 366 * 86400:
        raise BadParam(name, f"{raw[:40]!r} is out of range (2000 to a year from now)")
    return value


def parse_range(start_raw: str | None, end_raw: str | None, default_span_s: float,
                now: float | None = None) -> tuple[float, float]:
    """A validated ``[start, end)`` in Unix seconds; end defaults to now, start to end - span."""
    now = time.time() if now is None else now
    end = parse_time("end", end_raw, now)
    start = parse_time("start", start_raw, end - default_span_s)
    if start >= end:
        raise BadParam("start", "must be before end")
    if end - start > MAX_SPAN_S:
        raise BadParam("start", f"the span may be at most {MAX_SPAN_S // 86400} days")
    return start, end


def iso(ts_s: float | None, tz: str = "Asia/Shanghai") -> str | None:
    """Unix seconds -> RFC 3339 in ``tz`` (seconds precision), or None."""
    if ts_s is None:
        return None
    return datetime.fromtimestamp(ts_s, ZoneInfo(tz)).isoformat(timespec="seconds")


def iso_utc(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, timezone.utc).isoformat(timespec="seconds")

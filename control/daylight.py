"""When it is night at the creek: sunset and sunrise from a simple solar calculation, or fixed hours.

The solar times use the NOAA low-accuracy formulas (declination and equation of time from the
fractional year; geometric sunrise at a zenith of 90.833 degrees), good to a minute or two,
which is all an aeration rule needs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Huanglong Creek, Guicheng, Nanhai, Foshan (approximate).
LATITUDE_DEG = 23.03
LONGITUDE_DEG = 113.14
ZENITH_DEG = 90.833  # sun's upper limb on the horizon, with refraction

_HHMM = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


def parse_hhmm(text: str, what: str) -> float:
    """``"18:30"`` -> 18.5 (local clock hours); ValueError names ``what`` otherwise."""
    m = _HHMM.match(text)
    if not m:
        raise ValueError(f"{what}: {text!r} is not a time HH:MM (00:00-23:59)")
    return int(m.group(1)) + int(m.group(2)) / 60.0


def parse_windows(text: str, what: str) -> tuple[tuple[float, float], ...]:
    """``"08:00-10:00,19:00-21:00"`` -> ((8, 10), (19, 21)); empty -> (); a window may wrap midnight."""
    if not text.strip():
        return ()
    out = []
    for part in text.split(","):
        if part.count("-") != 1:
            raise ValueError(f"{what}: {part.strip()!r} is not a window HH:MM-HH:MM")
        a, b = part.split("-")
        start, end = parse_hhmm(a, what), parse_hhmm(b, what)
        if start == end:
            raise ValueError(f"{what}: window {part.strip()!r} is empty")
        out.append((start, end))
    return tuple(out)


def in_windows(hour: float, windows: tuple[tuple[float, float], ...]) -> bool:
    """Whether the local ``hour`` falls in one of the windows (end excluded; wrapping allowed)."""
    for a, b in windows:
        if (a <= hour < b) if a < b else (hour >= a or hour < b):
            return True
    return False


def sun_times_utc_min(day_of_year: int, lat_deg: float = LATITUDE_DEG,
                      lon_deg: float = LONGITUDE_DEG) -> tuple[float, float]:
    """(sunrise, sunset) in minutes after UTC midnight of that day (NOAA formulas)."""
    g = 2 * math.pi / 365 * (day_of_year - 1)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    lat = math.radians(lat_deg)
    cos_ha = (math.cos(math.radians(ZENITH_DEG)) / (math.cos(lat) * math.cos(decl))
              - math.tan(lat) * math.tan(decl))
    ha = math.degrees(math.acos(max(-1.0, min(1.0, cos_ha))))
    noon = 720.0 - 4.0 * lon_deg - eqtime
    return noon - 4.0 * ha, noon + 4.0 * ha


@dataclass(frozen=True)
class NightClock:
    """Decides whether a Unix time is night (dusk to dawn) at the creek."""

    timezone: str = "Asia/Shanghai"
    fixed: tuple[float, float] | None = None   # (dusk, dawn) local hours; None = solar

    @classmethod
    def from_setting(cls, text: str, timezone: str) -> "NightClock":
        """``solar`` or ``HH:MM-HH:MM`` (the ``control_night`` setting)."""
        if text.strip().lower() == "solar":
            return cls(timezone)
        windows = parse_windows(text, "control_night")
        if len(windows) != 1:
            raise ValueError(f"control_night: {text!r} must be 'solar' or one window HH:MM-HH:MM")
        return cls(timezone, windows[0])

    def local_hour(self, ts: float) -> float:
        dt = datetime.fromtimestamp(ts, ZoneInfo(self.timezone))
        return dt.hour + dt.minute / 60.0 + dt.second / 3600.0

    def dusk_dawn(self, ts: float) -> tuple[float, float]:
        """Local clock hours of dusk and dawn for the local date of ``ts``."""
        if self.fixed is not None:
            return self.fixed
        local = datetime.fromtimestamp(ts, ZoneInfo(self.timezone))
        offset_h = (local.utcoffset() or timedelta(0)).total_seconds() / 3600.0
        rise, sset = sun_times_utc_min(local.timetuple().tm_yday)
        return (sset / 60.0 + offset_h) % 24.0, (rise / 60.0 + offset_h) % 24.0

    def is_night(self, ts: float) -> bool:
        dusk, dawn = self.dusk_dawn(ts)
        return in_windows(self.local_hour(ts), ((dusk, dawn),))

"""Quiet hours: a daily local-time window in which non-critical messages wait."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_SPEC = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
DAY_S = 24 * 3600


@dataclass(frozen=True)
class QuietHours:
    """``start``/``end`` in seconds after local midnight; the window may cross midnight."""

    start: int
    end: int
    tz: str
    spec: str

    def _local_seconds(self, ts: float) -> tuple[datetime, int]:
        local = datetime.fromtimestamp(ts, ZoneInfo(self.tz))
        return local, local.hour * 3600 + local.minute * 60 + local.second

    def active(self, ts: float) -> bool:
        """Is ``ts`` (Unix seconds) inside the window?"""
        _, sec = self._local_seconds(ts)
        if self.start < self.end:
            return self.start <= sec < self.end
        return sec >= self.start or sec < self.end

    def ends_after(self, ts: float) -> float:
        """The Unix time at which the window containing ``ts`` ends (``ts`` itself if outside)."""
        if not self.active(ts):
            return ts
        local, sec = self._local_seconds(ts)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        day = midnight if sec < self.end else midnight + timedelta(days=1)
        # Build the end from the calendar date, so a DST change in the zone stays correct.
        end = day.replace(hour=self.end // 3600, minute=self.end % 3600 // 60, second=self.end % 60)
        return end.timestamp()


def parse_quiet_hours(spec: str, tz: str, where: str = "notify_quiet_hours") -> QuietHours | None:
    """``"22:00-07:00"`` (or with seconds, ``"22:00:00-07:00:30"``) -> QuietHours; ``""`` -> None."""
    if spec is None or not str(spec).strip():
        return None
    m = _SPEC.match(str(spec))
    if not m:
        raise ValueError(f"{where}: {spec!r} must look like HH:MM-HH:MM (e.g. 22:00-07:00)")
    h1, m1, s1, h2, m2, s2 = (int(g) if g else 0 for g in m.groups())
    for h, mi, s in ((h1, m1, s1), (h2, m2, s2)):
        if h > 23 or mi > 59 or s > 59:
            raise ValueError(f"{where}: {spec!r} has a time outside 00:00-23:59")
    start, end = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
    if start == end:
        raise ValueError(f"{where}: {spec!r} starts and ends at the same time; "
                         "leave it empty for no quiet hours")
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError):
        raise ValueError(f"timezone {tz!r} is not a known time zone") from None
    return QuietHours(start, end, tz, str(spec).strip())

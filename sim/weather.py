"""Weather over the creek: water temperature and the light that reaches it, seeded per day."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

from .physics import Coefficients
from .scenario import MONTHLY_WATER_C, SEASONS
from .sun import sin_elevation


class Weather:
    """Deterministic per (seed, local day): the same day of the same seed has the same weather."""

    def __init__(self, seed: int, season: str, utc_offset_h: float, k: Coefficients):
        self.seed = seed
        self.season = season
        self.offset_h = utc_offset_h
        self.k = k
        self._days: dict[int, tuple[float, float]] = {}

    def _day(self, day: int) -> tuple[float, float]:
        """(temperature offset °C, cloud light factor) of one local day."""
        if day not in self._days:
            rng = np.random.default_rng([self.seed, 1, day % 1_000_000])
            temp = float(rng.normal(0.0, self.k.temp_weather_sd_c))
            # Mostly bright with some overcast days (ASSUMPTION; Foshan has ~1600 sun hours/year).
            cloud = float(np.clip(rng.beta(8.0, 1.5), 0.6, 1.0))
            self._days[day] = (temp, cloud)
        return self._days[day]

    def _smooth(self, ts: float) -> tuple[float, float]:
        """Daily values interpolated between local noons, so nothing jumps at midnight."""
        local_day = (ts / 86400.0) + self.offset_h / 24.0 - 0.5
        d0 = math.floor(local_day)
        w = local_day - d0
        a, b = self._day(d0), self._day(d0 + 1)
        return a[0] * (1 - w) + b[0] * w, a[1] * (1 - w) + b[1] * w

    def mean_temp(self, ts: float) -> float:
        """Mean water temperature of the season, or of the calendar date."""
        if self.season in SEASONS:
            return SEASONS[self.season][0]
        dt = datetime.fromtimestamp(ts, timezone.utc)
        m0 = dt.month - 1
        frac = (dt.day - 1) / 31.0
        a, b = MONTHLY_WATER_C[m0], MONTHLY_WATER_C[(m0 + 1) % 12]
        # Monthly means sit mid-month: interpolate towards the next month.
        return a + (b - a) * max(0.0, frac - 0.5) + (a - MONTHLY_WATER_C[m0 - 1]) * min(0.0, frac - 0.5)

    def temperature(self, ts: float) -> float:
        """Water temperature °C: seasonal mean, day-to-day weather, afternoon peak."""
        hour = (ts / 3600.0 + self.offset_h) % 24.0
        daily = self.k.temp_daily_amplitude_c * math.cos(2 * math.pi * (hour - self.k.temp_peak_hour) / 24.0)
        return self.mean_temp(ts) + self._smooth(ts)[0] + daily

    def light(self, ts: float) -> float:
        """Fraction of full overhead sun reaching the water (0 at night)."""
        doy = SEASONS[self.season][1] if self.season in SEASONS else None
        s = float(sin_elevation(ts, doy))
        return max(0.0, s) * self._smooth(ts)[1]

    def cloud(self, ts: float) -> float:
        """The day's cloud light factor (0.6-1)."""
        return self._smooth(ts)[1]

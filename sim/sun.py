"""Where the sun is over the creek: solar elevation and sunrise, for photosynthesis.

Spencer (1971) declination and equation of time, the standard hour-angle formula; good to a few
minutes, which is all a photosynthesis driver needs.
"""

from __future__ import annotations

import math

import numpy as np

# Huanglong Creek, Guicheng, Nanhai, Foshan (approximate).
LATITUDE_DEG = 23.03
LONGITUDE_DEG = 113.14


def _day_angle(day_of_year: float | np.ndarray) -> float | np.ndarray:
    return 2 * np.pi * (np.asarray(day_of_year) - 1) / 365.0


def declination(day_of_year: float | np.ndarray) -> float | np.ndarray:
    """Solar declination in radians (Spencer 1971)."""
    g = _day_angle(day_of_year)
    return (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))


def equation_of_time_min(day_of_year: float | np.ndarray) -> float | np.ndarray:
    """Equation of time in minutes (Spencer 1971)."""
    g = _day_angle(day_of_year)
    return 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                     - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))


def sin_elevation(ts: float | np.ndarray, day_of_year: float | np.ndarray | None = None,
                  lat_deg: float = LATITUDE_DEG, lon_deg: float = LONGITUDE_DEG) -> np.ndarray:
    """Sine of the solar elevation at Unix time ``ts`` (negative at night).

    ``day_of_year`` overrides the date's own (a scenario's season can borrow another date's sun).
    """
    ts = np.asarray(ts, dtype=float)
    doy = (ts / 86400.0 % 365.2425) + 1 if day_of_year is None else np.asarray(day_of_year)
    utc_min = (ts % 86400.0) / 60.0
    solar_min = utc_min + equation_of_time_min(doy) + 4.0 * lon_deg
    hour_angle = np.radians(solar_min / 4.0 - 180.0)
    lat = math.radians(lat_deg)
    dec = declination(doy)
    return np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)


def sunrise_local_hours(day_of_year: float, utc_offset_h: float = 8.0,
                        lat_deg: float = LATITUDE_DEG, lon_deg: float = LONGITUDE_DEG) -> float:
    """Local clock hour of sunrise (geometric, elevation 0) on ``day_of_year``."""
    lat = math.radians(lat_deg)
    dec = float(declination(day_of_year))
    cos_h = -math.tan(lat) * math.tan(dec)
    h_deg = math.degrees(math.acos(max(-1.0, min(1.0, cos_h))))
    solar_noon_utc_min = 720.0 - 4.0 * lon_deg - float(equation_of_time_min(day_of_year))
    return ((solar_noon_utc_min - 4.0 * h_deg) / 60.0 + utc_offset_h) % 24.0


def day_of_year(ts: float) -> float:
    """Approximate day of year (1..366) of a Unix time, as the sun formulas use it."""
    return ts / 86400.0 % 365.2425 + 1

"""What the detectors know about each measurement field: priors, plausible ranges, roles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldPrior:
    """Starting values until a node's own history has taught better ones."""

    scale: float | None        # typical departure from the recent level (transformed units)
    noise: float | None        # typical sample-to-sample change (raw units)
    spike_min: float           # smallest jump worth calling a spike (raw units)
    lo: float                  # plausible range: outside it the probe is wrong
    hi: float
    log: bool = False          # score departures on log1p (relative change)
    water: str = "both"        # which departure direction is a water event: down, up, both, none
    # a shift that lasts for days with nothing else changing is the probe's (longterm.py): true
    # for turbidity, which returns to its base within days of a rain unless something is wrong;
    # not for DO, conductivity or level, which follow season, weather and flow for weeks
    own_drift: bool = False
    # its normal day is flat (no daily swing like DO's photosynthesis or temperature's): a bin of
    # its daily profile is not founded by an hour that departed from the node's level
    # (models/diurnal.py); a swinging field founds every bin on its first day
    flat_day: bool = False


PRIORS: dict[str, FieldPrior] = {
    "do_mg_l": FieldPrior(0.3, 0.05, 1.0, 0.0, 25.0, water="down"),
    "do_sat_pct": FieldPrior(4.0, 0.6, 12.0, 0.0, 300.0, water="down"),
    "turbidity_ntu": FieldPrior(0.12, 0.3, 15.0, 0.0, 3000.0, log=True, water="up", own_drift=True,
                                flat_day=True),
    "temp_c": FieldPrior(None, 0.05, 3.0, 0.0, 45.0, water="none"),
    "orp_mv": FieldPrior(None, 2.0, 80.0, -800.0, 800.0, water="down"),
    "nh3n_mg_l": FieldPrior(None, 0.05, 3.0, 0.0, 80.0, log=True, water="up"),
    "transparency_cm": FieldPrior(None, 1.0, 20.0, 0.0, 400.0, water="down"),
}
GENERIC = FieldPrior(None, None, 0.0, float("-inf"), float("inf"))

# Fields that describe the node, not the water: no departure, spike or stuck detection.
NOT_WATER = frozenset({"battery_v", "rssi_dbm", "power_w", "aerator_on", "seq"})

UNITS = {"do_mg_l": "mg/L", "do_sat_pct": "%", "turbidity_ntu": "NTU", "temp_c": "°C",
         "orp_mv": "mV", "nh3n_mg_l": "mg/L", "transparency_cm": "cm", "battery_v": "V",
         "power_w": "W"}
NAMES = {
    "do_mg_l": ("溶解氧", "DO"), "do_sat_pct": ("溶解氧饱和度", "DO saturation"),
    "turbidity_ntu": ("浊度", "turbidity"), "temp_c": ("水温", "water temperature"),
    "orp_mv": ("氧化还原电位", "ORP"), "nh3n_mg_l": ("氨氮", "NH3-N"),
    "transparency_cm": ("透明度", "transparency"), "battery_v": ("电池电压", "battery voltage"),
    "power_w": ("功率", "power"),
}


def prior(field: str) -> FieldPrior:
    return PRIORS.get(field, GENERIC)


def unit(field: str) -> str:
    return UNITS.get(field, "")


def name(field: str) -> tuple[str, str]:
    return NAMES.get(field, (field, field))


def is_water_field(field: str) -> bool:
    return field not in NOT_WATER

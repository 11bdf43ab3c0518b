"""Sensor nodes' probes: what an optical DO, a turbidity and a temperature probe report.

Noise is at the accuracy of real probes (creek.md: DO ±0.1 mg/L or ±1 %, turbidity ±0.3 NTU or
±2 %; taken as two standard deviations), values are rounded to the probe's resolution (0.01 mg/L,
0.1 NTU, 0.01 °C), and each probe has a small fixed calibration error. Faults change what a
probe reports, never the water: fouling (drift and growing noise), stuck (the same value at the
probe's resolution), spikes (one wild sample), and a failing battery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rivermon.core.topology import Node

RESOLUTION = {"do_mg_l": 0.01, "turbidity_ntu": 0.1, "temp_c": 0.01, "battery_v": 0.01}
LIMITS = {"do_mg_l": (0.0, 50.0), "turbidity_ntu": (0.0, 4000.0), "temp_c": (-5.0, 50.0),
          "battery_v": (0.0, 30.0)}
FIELDS = ("do_mg_l", "turbidity_ntu", "temp_c")
BATTERY_DEAD_V = 3.30          # the node browns out (ASSUMPTION: Li-ion cut-off with margin)
BATTERY_LOW_V = 3.50           # what a low-battery alert should use (ASSUMPTION)
DEFAULT_DRIFT = {"do_mg_l": -0.8, "turbidity_ntu": 6.0, "temp_c": 0.3}  # per day (ASSUMPTION:
# a biofilm on an optical DO cap consumes oxygen, so it reads low; on a turbidity window it scatters,
# so it reads high)
DEFAULT_SPIKE = {"do_mg_l": 9.0, "turbidity_ntu": 600.0, "temp_c": 18.0}


@dataclass
class ProbeFaults:
    """The faults active on one sensor node's probes."""

    drift: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # field -> (since, rate/d, noise growth/d)
    stuck: dict[str, float] = field(default_factory=dict)  # field -> held value
    spikes: dict[float, tuple[str, float | None, bool]] = field(default_factory=dict)
    # step time -> (field, magnitude or None for the default, upwards)
    battery: tuple[float, float] | None = None  # (since, V per day)


class ProbeBank:
    """Per sensor node: calibration, radio and battery constants, and the readings they give."""

    def __init__(self, sensors: list[Node], rng: np.random.Generator):
        n = len(sensors)
        self.nodes = sensors
        self.do_offset = rng.normal(0.0, 0.04, n)
        self.turb_gain = rng.normal(0.0, 0.02, n)
        self.temp_offset = rng.normal(0.0, 0.15, n)
        self.rssi_base = rng.uniform(-96.0, -62.0, n)
        self.batt_base = rng.uniform(3.88, 4.02, n)
        self.faults = [ProbeFaults() for _ in sensors]
        self.last: list[dict[str, float]] = [{} for _ in sensors]

    def observe(self, t: float, do_true: np.ndarray, turb_true: np.ndarray, temp: float,
                charge: float, rain: bool, z: np.ndarray,
                fired: list[tuple[int, str, float]] | None = None) -> list[dict[str, float]]:
        """One reading per sensor node (fields only); ``z`` is (nodes, 5) standard normals.

        Spikes that fire are appended to ``fired`` as (node index, field, value).
        """
        do = do_true + self.do_offset
        turb = turb_true * (1.0 + self.turb_gain)
        vals = np.stack([do, turb, temp + self.temp_offset], axis=1)
        sd = np.stack([np.maximum(0.05, 0.005 * np.abs(do)), np.maximum(0.15, 0.01 * turb),
                       np.full(len(do), 0.04)], axis=1)
        batt = self.batt_base + 0.12 * charge + 0.006 * z[:, 3]
        for i, f in enumerate(self.faults):
            for name, (since, rate, noise_growth) in f.drift.items():
                j = FIELDS.index(name)
                days = max(0.0, (t - since) / 86400.0)
                vals[i, j] += rate * days
                sd[i, j] *= 1.0 + noise_growth * days
            if f.battery is not None:
                batt[i] -= f.battery[1] * max(0.0, (t - f.battery[0]) / 86400.0) + 0.12 * charge
        vals += sd * z[:, :3]
        cols = [_quantise_array(name, vals[:, j]) for j, name in enumerate(FIELDS)]
        cols.append(_quantise_array("battery_v", batt))
        rssi = np.clip(np.round(self.rssi_base + 2.0 * z[:, 4] - (4.0 if rain else 0.0)), -150, 0)
        names = FIELDS + ("battery_v", "rssi_dbm")
        out = [dict(zip(names, row)) for row in zip(*[c.tolist() for c in cols], rssi.tolist())]
        for i, f in enumerate(self.faults):
            if f.stuck or f.spikes:
                self._apply_faults(i, t, f, out[i], fired)
        self.last = out
        return out

    @staticmethod
    def _apply_faults(i: int, t: float, f: ProbeFaults, reading: dict[str, float],
                      fired: list[tuple[int, str, float]] | None) -> None:
        for name, held in f.stuck.items():
            reading[name] = held
        spike = f.spikes.pop(t, None)
        if spike is not None:
            name, magnitude, up = spike
            mag = DEFAULT_SPIKE[name] if magnitude is None else magnitude
            wild = reading[name] + mag if up or name == "turbidity_ntu" else reading[name] - mag
            reading[name] = _quantise(name, wild if wild > 0 else 0.0)
            if fired is not None:
                fired.append((i, name, reading[name]))


_DECIMALS = {"do_mg_l": 2, "turbidity_ntu": 1, "temp_c": 2, "battery_v": 2}


def _quantise_array(name: str, values: np.ndarray) -> np.ndarray:
    lo, hi = LIMITS[name]
    return np.round(np.clip(values, lo, hi), _DECIMALS[name])


def _quantise(name: str, value: float) -> float:
    lo, hi = LIMITS[name]
    res = RESOLUTION[name]
    v = min(max(value, lo), hi)
    return round(round(v / res) * res, 4)

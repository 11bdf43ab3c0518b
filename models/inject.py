"""Synthetic creek series and fault/plume injection with exact onsets.

Used by the tests (targeted synthetic series) and by the evaluation harness (faults and plumes
injected into the clean NEON Pringle Creek pair). Every injector returns the truth interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Truth:
    kind: str
    node: str
    start: float
    end: float
    outlet: str | None = None


def diurnal_day(t: np.ndarray, rng: np.random.Generator, mean: float = 6.0, amp: float = 2.0,
                tz_offset_s: float = 8 * 3600, noise: float = 0.05) -> dict[str, np.ndarray]:
    """A normal planted-creek node: DO with its minimum before dawn, turbidity, temperature."""
    hour = ((t + tz_offset_s) % 86400) / 3600.0
    days = (t + tz_offset_s) / 86400.0
    knots = np.arange(np.floor(days.min()) - 1, np.ceil(days.max()) + 2)
    daily = np.interp(days, knots, rng.normal(0, 0.4, knots.size))  # weather changes smoothly
    do = mean + daily + amp * np.sin(2 * np.pi * (hour - 11.0) / 24.0) + rng.normal(0, noise, t.size)
    turb = 12.0 * np.exp(rng.normal(0, 0.03, t.size)) + 1.5 * np.sin(2 * np.pi * hour / 24.0)
    temp = 27.0 + 1.2 * np.sin(2 * np.pi * (hour - 9.0) / 24.0) + rng.normal(0, 0.02, t.size)
    batt = 3.95 - 1e-7 * (t - t[0]) + rng.normal(0, 0.003, t.size)
    return {"do_mg_l": np.round(np.maximum(do, 0.0), 2), "turbidity_ntu": np.round(turb, 1),
            "temp_c": np.round(temp, 2), "battery_v": np.round(batt, 3)}


def stuck(t: np.ndarray, x: np.ndarray, start: float, end: float) -> np.ndarray:
    y = x.copy()
    sel = (t >= start) & (t < end)
    if sel.any():
        y[sel] = x[np.argmax(sel)]
    return y


def spike(t: np.ndarray, x: np.ndarray, at: float, delta: float) -> tuple[np.ndarray, float]:
    y = x.copy()
    i = int(np.searchsorted(t, at))
    y[i] = x[i] + delta
    return y, float(t[i])


def drift(t: np.ndarray, x: np.ndarray, start: float, end: float, per_day: float,
          noise_growth: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Fouling: a slow ramp (and optionally growing noise) from ``start`` to ``end``."""
    y = x.copy()
    sel = (t >= start) & (t < end)
    el = (t[sel] - start) / 86400.0
    y[sel] = x[sel] + per_day * el
    if noise_growth and rng is not None:
        y[sel] += rng.normal(0, 1, sel.sum()) * noise_growth * el
    return y


def plume(t: np.ndarray, do: np.ndarray, turb: np.ndarray, start: float, rise_s: float,
          hold_s: float, recover_s: float, do_drop: float, turb_factor: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """A discharge passing a node: DO sags and turbidity jumps, then both recover."""
    el = t - start
    shape = np.clip(el / rise_s, 0, 1)
    shape = np.where(el > rise_s + hold_s, np.clip(1 - (el - rise_s - hold_s) / recover_s, 0, 1), shape)
    shape = np.where(el < 0, 0.0, shape)
    return np.abs(do - do_drop * shape) + 0.02, turb * (1 + (turb_factor - 1) * shape)


def drop_readings(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """The mask of readings kept when a node is silent from ``start`` to ``end``."""
    return ~((t >= start) & (t < end))


def creek_series(creek, t: np.ndarray, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Normal readings for every sensor node of a topology creek (each with its own level)."""
    out = {}
    for n in creek.nodes:
        if n.kind == "sensor":
            out[n.id] = diurnal_day(t, rng, mean=float(rng.uniform(5.0, 7.0)), amp=float(rng.uniform(1.5, 2.5)))
    return out


def discharge(creek, series: dict[str, dict[str, np.ndarray]], t: np.ndarray, outlet_id: str,
              start: float, speed_m_s: float = 0.05, hold_s: float = 5400.0,
              do_drop: float = 3.5, turb_factor: float = 6.0, reverse: bool = False) -> Truth:
    """A discharge at an outlet reaching every node downstream of it, later and weaker further on."""
    o = next(x for x in creek.outlets if x.id == outlet_id)
    op = (o.channel, o.chainage_m)
    opos = creek.flow_position(*op)
    for n in creek.nodes:
        if n.kind != "sensor":
            continue
        npos = (n.channel, n.chainage_m)
        down = creek.is_downstream(npos, op) if reverse else creek.is_downstream(op, npos)
        if not down:
            continue
        dist = abs(creek.flow_position(*npos) - opos)
        fade = max(0.0, 1.0 - dist / 500.0)
        if fade <= 0.1:
            continue
        s = series[n.id]
        s["do_mg_l"], s["turbidity_ntu"] = plume(t, s["do_mg_l"], s["turbidity_ntu"],
                                                 start + dist / speed_m_s, 900.0, hold_s, 3600.0,
                                                 do_drop * fade, 1 + (turb_factor - 1) * fade)
        s["do_mg_l"] = np.round(s["do_mg_l"], 2)
        s["turbidity_ntu"] = np.round(s["turbidity_ntu"], 1)
    return Truth("discharge", "", start, start + hold_s + 1800.0, outlet_id)


def to_csv(path, t: np.ndarray, series: dict[str, dict[str, np.ndarray]],
           keep: dict[str, np.ndarray] | None = None) -> None:
    """Write per-node series as a replay CSV (time in Unix seconds)."""
    import csv
    fields = sorted({f for s in series.values() for f in s})
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "node", *fields])
        for node, s in series.items():
            mask = keep.get(node) if keep else None
            for i in range(t.size):
                if mask is not None and not mask[i]:
                    continue
                w.writerow([f"{t[i]:.3f}", node, *("" if f not in s or np.isnan(s[f][i]) else repr(float(s[f][i]))
                                                    for f in fields)])

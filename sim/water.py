"""The water of the creek, cell by cell: DO, organic load (fast and slow BOD) and turbidity.

One :meth:`WaterModel.advance` moves the state over one sampling interval: transport (advection
along the flow, reversed when the flow factor is negative, plus dispersion) in sub-steps that keep
the explicit scheme stable, then the kinetics of :mod:`physics` over the same interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rivermon.core.topology import Creek, Node

from .grid import Grid, build_grid
from .physics import Coefficients, DO_SAT_20C, do_saturation, reaeration_per_s

DO, LF, LS, TURB = range(4)  # columns of the state
N_SPECIES = 4

# Ghost (boundary) water, relative to a restored reach (ASSUMPTION): the creek above is planted
# but not aerated; the receiving river is deeper, more turbid and less productive.
GHOST_FACTORS = {
    "_up": {"sod_factor": 0.8, "respiration_factor": 0.6, "photosynthesis_factor": 0.9,
            "turbidity_base_ntu": 10.0},
    "_river": {"sod_factor": 0.5, "respiration_factor": 0.35, "photosynthesis_factor": 0.3,
               "turbidity_base_ntu": 25.0},
}
RIVER_DO, RIVER_DO_DAY, RIVER_BOD, RIVER_TURB = 5.0, 1.2, 2.0, 25.0
# Default per-segment factors of the shipped Huanglong topology (ASSUMPTION, from creek.md: the
# market reach was the worst, and still carries more organic sediment).
DEFAULT_SEGMENT_FACTORS = {
    "hl-3": {"sod_factor": 2.0, "respiration_factor": 1.1, "turbidity_base_ntu": 13.0},
    "hl-2": {"sod_factor": 1.3, "turbidity_base_ntu": 11.0},
}


@dataclass
class Forcing:
    """What drives the water over one interval."""

    temp_c: float
    light: float                        # 0..1, fraction of full overhead sun reaching the water
    flow_factor: float = 1.0            # x normal flow; negative = reversed
    # Inflows at outlets: (weights over cells summing to 1, m3/s, concentrations [DO, LF, LS, TURB]).
    sources: list[tuple[np.ndarray, float, tuple[float, float, float, float]]] = field(default_factory=list)
    # Lateral inflow spread over every cell (rain runoff): 1/s of each cell's volume, and concentrations.
    lateral_per_s: float = 0.0
    lateral_conc: tuple[float, float, float, float] = (6.0, 0.0, 0.0, 0.0)
    sod_mult: np.ndarray | None = None  # per cell and ghost
    aerator_transfer: np.ndarray | None = None  # per aerator: 0..1 of its oxygen transfer
    aerator_running: np.ndarray | None = None   # per aerator: 1 when the machine turns (resuspends)


class WaterModel:
    """State and stepping of one creek's water."""

    def __init__(self, creek: Creek, k: Coefficients, segment_factors: dict[str, dict[str, float]],
                 aerators: list[Node]):
        self.k = k
        self.grid: Grid = build_grid(creek, k)
        g = self.grid
        factors = {**{s: dict(v) for s, v in DEFAULT_SEGMENT_FACTORS.items()
                      if creek.id == "huanglong"}}
        for seg, vals in segment_factors.items():
            factors.setdefault(seg, {}).update(vals)
        self.sod_f = np.ones(g.n_all)
        self.resp_f = np.ones(g.n_all)
        self.photo_f = np.ones(g.n_all)
        self.turb_base = np.full(g.n_all, k.turbidity_base_ntu)
        for i, seg in enumerate(g.segment):
            f = GHOST_FACTORS["_river" if seg == "_river" else "_up"] if seg.startswith("_") \
                else factors.get(seg, {})
            self.sod_f[i] = f.get("sod_factor", 1.0)
            self.resp_f[i] = f.get("respiration_factor", 1.0)
            self.photo_f[i] = f.get("photosynthesis_factor", 1.0)
            self.turb_base[i] = f.get("turbidity_base_ntu", k.turbidity_base_ntu)
        self.aerators = aerators
        self.aer_kw = np.array([(a.rated_w or 0.0) / 1000.0 for a in aerators])
        self.aer_micro = np.array([a.aerator == "micropore" for a in aerators], dtype=bool)
        spread = [k.spread_micropore_m if a.aerator == "micropore" else k.spread_fountain_m
                  for a in aerators]
        self.aer_w = (np.array([g.spread_weights(a.channel, a.chainage_m, s)
                                for a, s in zip(aerators, spread)])
                      if aerators else np.zeros((0, g.n_all)))
        self.aer_resusp = np.where(self.aer_micro, k.resuspension_micropore, k.resuspension_fountain)
        self.is_cell = np.zeros(g.n_all, dtype=bool)
        self.is_cell[:g.n_cells] = True
        self.velocity = np.zeros(g.n_all)
        self.velocity[:g.n_cells] = g.flow_m3_s / g.area_m2[:g.n_cells]
        self.activity = 0.0  # recent photosynthetic activity 0..1, drives enhanced respiration
        self.state = np.zeros((g.n_all, N_SPECIES))
        self.state[:, DO] = 6.5
        self.state[:, TURB] = self.turb_base

    # ---- transport ------------------------------------------------------------------------
    def _transport(self, dt: float, f: float) -> None:
        g = self.grid
        rate = abs(f) * g.max_courant_rate + g.disp_rate
        n_sub = max(1, math.ceil(rate * dt / 0.8))
        h = dt / n_sub
        adv = g.adv_fwd * f if f >= 0 else g.adv_rev * (-f)
        m = (adv + g.disp) * (h / g.volume_m3[:g.n_cells, None])
        x = self.state
        for _ in range(n_sub):
            x[:g.n_cells] += m @ x

    # ---- kinetics -------------------------------------------------------------------------
    def _kinetics(self, dt: float, fc: Forcing) -> None:
        k, g, x = self.k, self.grid, self.state
        t = fc.temp_c
        c = np.maximum(x[:, DO], 0.0)
        lim = c / (c + k.half_sat_o2_mg_l)
        ka = reaeration_per_s(self.velocity * abs(fc.flow_factor), g.depth_m, t, k)
        sod = k.sod_g_m2_d * self.sod_f * (fc.sod_mult if fc.sod_mult is not None else 1.0)
        light_use = math.tanh(fc.light / k.light_saturation)
        self.activity += (light_use - self.activity) * min(1.0, dt / (k.ledr_time_h * 3600.0))
        resp = k.respiration_g_m3_d * (1.0 + k.light_enhanced_respiration * self.activity)
        demand = (resp * self.resp_f * k.theta_respiration ** (t - 20)
                  + sod * k.theta_sod ** (t - 20) / g.depth_m) / 86400.0
        kf = k.bod_fast_per_h / 3600.0 * k.theta_bod ** (t - 20)
        ks = k.bod_slow_per_d / 86400.0 * k.theta_bod ** (t - 20)
        bod_use = (kf * x[:, LF] + ks * x[:, LS]) * lim
        photo = (k.photosynthesis_g_m3_h / 3600.0 * self.photo_f * light_use
                 * k.theta_photosynthesis ** (t - 20))
        d_do = ka * (do_saturation(t) - c) + photo - demand * lim - bod_use
        d_do += self._aeration(c, t, fc) / g.volume_m3
        stir = k.resuspension_flow * max(0.0, fc.flow_factor ** 2 - 1.0)
        turb_eq = self.turb_base * (1.0 + self._resuspension(fc) + stir)
        d_turb = -k.settling_per_h / 3600.0 * (x[:, TURB] - turb_eq)
        x[:, DO] = c + d_do * dt
        x[:, LF] -= kf * x[:, LF] * lim * dt
        x[:, LS] -= ks * x[:, LS] * lim * dt
        x[:, TURB] += d_turb * dt
        self._inflows(dt, fc)
        np.maximum(x, 0.0, out=x)
        # The receiving river is large and slow to change: a prescribed boundary (ASSUMPTION:
        # DO 5-6 mg/L, GB 3838 class III-IV, a little higher by day; some slow BOD; turbid).
        x[self.grid.ghosts["_river"]] = (RIVER_DO + RIVER_DO_DAY * fc.light, 0.0, RIVER_BOD, RIVER_TURB)

    def _aeration(self, c: np.ndarray, t: float, fc: Forcing) -> np.ndarray:
        """Oxygen added by running aerators, g/s per cell."""
        if fc.aerator_transfer is None or not len(self.aerators):
            return np.zeros_like(c)
        local = self.aer_w @ c
        sae = np.where(self.aer_micro, self.k.sae_micropore_kg_kwh, self.k.sae_fountain_kg_kwh)
        alpha = np.where(self.aer_micro, self.k.alpha_micropore, self.k.alpha_fountain)
        deficit = np.maximum(0.0, do_saturation(t) - local) / DO_SAT_20C
        g_s = (sae * self.aer_kw * alpha * self.k.theta_aeration ** (t - 20) * deficit
               * fc.aerator_transfer) * 1000.0 / 3600.0
        return g_s @ self.aer_w

    def _resuspension(self, fc: Forcing) -> np.ndarray | float:
        if fc.aerator_running is None or not len(self.aerators):
            return 0.0
        touched = (self.aer_w > 0).astype(float)
        return (fc.aerator_running * self.aer_resusp) @ touched

    def _inflows(self, dt: float, fc: Forcing) -> None:
        x, v = self.state, self.grid.volume_m3
        for weights, q, conc in fc.sources:
            frac = np.minimum(1.0, q * dt * weights / v)
            x += frac[:, None] * (np.asarray(conc) - x)
        if fc.lateral_per_s > 0:
            frac = min(1.0, fc.lateral_per_s * dt)
            x[self.is_cell] += frac * (np.asarray(fc.lateral_conc) - x[self.is_cell])

    def advance(self, dt: float, fc: Forcing) -> None:
        """Move the state on by ``dt`` seconds under the given forcing."""
        self._transport(dt, fc.flow_factor)
        self._kinetics(dt, fc)

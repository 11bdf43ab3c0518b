"""Water-quality kinetics of the simulated creek: oxygen, organic load and turbidity.

Every coefficient is a field of :class:`Coefficients` with its source beside it, or marked
ASSUMPTION where it is a plausible value chosen to make a restored, planted, aerated urban creek
behave like the one described in ``creek.md`` (a normal diurnal DO swing of about 4-9 mg/L,
minimum before dawn). ``docs/simulator.md`` lists them all; a scenario may override any of them
under ``[coefficients]``.

The kinetics are written for arrays over cells, so one call steps the whole creek.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

DO_SAT_20C = 9.09  # mg/L, fresh water at 20 °C and 1 atm (Benson & Krause 1984)


@dataclass(frozen=True)
class Coefficients:
    """Physical coefficients; 20 °C values with Arrhenius ``theta`` corrections."""

    # --- hydraulics -------------------------------------------------------------------
    velocity_main_m_s: float = 0.03     # ASSUMPTION: slow, gated PRD creek flow (0.01-0.1 m/s)
    velocity_branch_m_s: float = 0.02   # ASSUMPTION
    depth_main_m: float = 1.2           # ASSUMPTION: after full dredging
    depth_branch_m: float = 1.0         # ASSUMPTION
    width_main_m: float = 8.0           # ASSUMPTION: urban creek along a road
    width_branch_m: float = 5.0         # ASSUMPTION
    dispersion_m2_s: float = 0.1        # ASSUMPTION: small channels 0.05-5 m²/s (Fischer et al. 1979);
    #                                      the upwind scheme adds about u·dx/2 of numerical dispersion
    discharge_mixing_m: float = 10.0    # ASSUMPTION: an outfall jet mixes across the channel and
    #                                      about this far along it before the flow takes over
    cell_m: float = 10.0                # numerical: cell length along each channel
    # --- re-aeration ------------------------------------------------------------------
    oconnor_dobbins: float = 3.93       # k_a = 3.93 u^0.5 H^-1.5 per day (O'Connor & Dobbins 1958)
    wind_m_s: float = 2.0               # ASSUMPTION: light wind in a built-up valley
    theta_reaeration: float = 1.024     # Elmore & West 1961; the usual value in QUAL2K
    # --- oxygen demand ----------------------------------------------------------------
    respiration_g_m3_d: float = 13.0    # ASSUMPTION: community respiration of a planted creek with
    #                                      biofilm carriers; planted streams 2-20 g/m³/d (Odum 1956 range)
    theta_respiration: float = 1.047    # ASSUMPTION: the classic theta of oxygen demand (QUAL2K
    #                                      uses 1.07 for algal respiration, Chapra et al. 2008)
    light_enhanced_respiration: float = 1.0  # respiration is raised after a day of photosynthesis
    #                                      and relaxes overnight (daytime respiration well above
    #                                      night-time in streams: Hotchkiss & Hall 2014); size ASSUMPTION
    ledr_time_h: float = 3.0            # ASSUMPTION: relaxation time of that enhancement
    sod_g_m2_d: float = 1.0             # dredged sediment; typical ranges 0.1-1 mineral, 1-10
    #                                      organic (Thomann & Mueller 1987; Chapra 1997)
    theta_sod: float = 1.065            # Thomann & Mueller 1987
    half_sat_o2_mg_l: float = 0.5       # ASSUMPTION: Monod oxygen limitation of every demand
    bod_fast_per_h: float = 1.2         # ASSUMPTION: immediate oxygen demand of raw sewage
    #                                      (sulphide, ferrous iron, labile COD), hours not days
    bod_slow_per_d: float = 0.35        # carbonaceous BOD decay 0.1-0.5 /d (Chapra 1997)
    theta_bod: float = 1.047            # Chapra 1997
    # --- photosynthesis ---------------------------------------------------------------
    photosynthesis_g_m3_h: float = 1.2  # ASSUMPTION: gross production at full overhead sun,
    #                                      calibrated so the normal swing is ~4-9 mg/L
    theta_photosynthesis: float = 1.036  # ASSUMPTION (growth thetas are ~1.07; light limits it here)
    light_saturation: float = 0.3       # I_k of P = Pmax·tanh(I/I_k) (Jassby & Platt 1976), as a
    #                                      fraction of full sun; ASSUMPTION (~300 of ~2000 µmol/m²/s)
    # --- aerators ---------------------------------------------------------------------
    sae_micropore_kg_kwh: float = 1.8   # ASSUMPTION: suppliers of micro-pore aeration tubes for
    #                                      aquaculture quote ~1.8-3 kg O2/kWh (standard conditions);
    #                                      the low end, for a 1.2 m creek
    sae_fountain_kg_kwh: float = 0.9    # ASSUMPTION: spray aerators test around 1-1.5 kg O2/kWh in
    #                                      ponds (Boyd 1998); a decorative fountain does less
    alpha_micropore: float = 0.6        # fine-pore alpha 0.4-0.8 (EPA 1989 fine pore design manual)
    alpha_fountain: float = 0.85        # ASSUMPTION: surface aeration is less affected by surfactants
    theta_aeration: float = 1.024       # ASCE 2-91 (oxygen transfer in clean water)
    spread_micropore_m: float = 25.0    # ASSUMPTION: half length of a diffuser grid
    spread_fountain_m: float = 12.0     # ASSUMPTION: spray radius plus near-field mixing
    resuspension_micropore: float = 0.15  # ASSUMPTION: +15 % turbidity over a running grid
    resuspension_fountain: float = 0.05   # ASSUMPTION
    resuspension_flow: float = 0.3      # ASSUMPTION: storm flow stirs the bed; the base level grows
    #                                      by this x (f² - 1) at f times the normal flow (bed shear ~ u²)
    # --- turbidity --------------------------------------------------------------------
    turbidity_base_ntu: float = 9.0     # ASSUMPTION: clear restored creek (Secchi ~60 cm)
    settling_per_h: float = 0.25        # fine solids, settling velocity ~0.3 m/h over 1.2 m
    #                                      (Stokes, 10-20 µm silt); ASSUMPTION
    # --- temperature ------------------------------------------------------------------
    temp_daily_amplitude_c: float = 1.2  # ASSUMPTION: shallow urban water, half peak-to-trough
    temp_peak_hour: float = 15.0         # ASSUMPTION: afternoon maximum
    temp_weather_sd_c: float = 0.8       # ASSUMPTION: day-to-day variation of the daily mean

    def replace(self, **changes: float) -> "Coefficients":
        """A copy with some coefficients changed; unknown names are refused."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown coefficient(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return Coefficients(**{**{f.name: getattr(self, f.name) for f in fields(self)},
                               **{k: float(v) for k, v in changes.items()}})


def do_saturation(temp_c: float | np.ndarray) -> float | np.ndarray:
    """DO saturation of fresh water at 1 atm, mg/L (Benson & Krause 1984; APHA 4500-O)."""
    t = np.asarray(temp_c, dtype=float) + 273.15
    ln_c = (-139.34411 + 1.575701e5 / t - 6.642308e7 / t ** 2 + 1.243800e10 / t ** 3
            - 8.621949e11 / t ** 4)
    return np.exp(ln_c)


def reaeration_per_s(velocity_m_s: np.ndarray, depth_m: np.ndarray, temp_c: float,
                     k: Coefficients) -> np.ndarray:
    """Surface re-aeration rate, 1/s: O'Connor-Dobbins for flow plus Banks-Herrera for wind."""
    u = np.abs(velocity_m_s)
    ka_flow = k.oconnor_dobbins * np.sqrt(u) * depth_m ** -1.5
    w = k.wind_m_s
    kl_wind = 0.728 * w ** 0.5 - 0.317 * w + 0.0372 * w ** 2  # m/d (Banks & Herrera 1977)
    ka = (ka_flow + kl_wind / depth_m) * k.theta_reaeration ** (temp_c - 20.0)
    return ka / 86400.0


def aerator_transfer_g_s(power_kw: float, kind: str, do_mg_l: float, temp_c: float,
                         k: Coefficients) -> float:
    """Field oxygen transfer of one running aerator, g O2/s (ASCE 2-91 AE = SAE·α·θ^(T-20)·deficit)."""
    sae = k.sae_micropore_kg_kwh if kind == "micropore" else k.sae_fountain_kg_kwh
    alpha = k.alpha_micropore if kind == "micropore" else k.alpha_fountain
    deficit = max(0.0, float(do_saturation(temp_c)) - do_mg_l) / DO_SAT_20C
    kg_h = sae * power_kw * alpha * k.theta_aeration ** (temp_c - 20.0) * deficit
    return kg_h * 1000.0 / 3600.0

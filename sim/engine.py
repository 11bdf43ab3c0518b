"""One simulated creek run: water, weather, events, probes, aerators and delivery, step by step.

:class:`Simulation` advances in sampling intervals. Each :meth:`Simulation.step` starts and ends
the events due, moves the water on (in physics sub-steps of at most 60 s), lets every node take
its reading and returns the messages the nodes (or the broker, for a last will) put on the wire
at that step, in order. Every event and fault is written to the truth file when it starts.
The same seed, start and scenario give the same messages, whatever consumes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from rivermon.core.topology import Creek, Node

from .aerators import AeratorBank
from .network import Message, NodeLink
from .probes import BATTERY_DEAD_V, BATTERY_LOW_V, DEFAULT_DRIFT, ProbeBank
from .scenario import EventSpec, Scenario, parse_event
from .timeparse import utc_offset_hours
from .truth import TruthWriter
from .water import DO, TURB, Forcing, WaterModel
from .weather import Weather

FW = "rivermon-sim-1.0"
PHYSICS_DT_MAX = 300.0  # kinetics stay accurate (rates ~1 mg/L/h); transport sub-steps itself
SPINUP_S = 86400.0
# Discharge defaults by outlet size (ASSUMPTION: raw market/domestic sewage from a DN300-DN600
# pipe; BOD5 100-300 mg/L and TSS 100-350 mg/L are typical of Chinese municipal sewage).
DISCHARGE = {
    "large": {"flow_m3_s": 0.03, "bod_mg_l": 200.0, "fast_fraction": 0.4, "turbidity_ntu": 300.0,
              "do_mg_l": 0.5},
    "small": {"flow_m3_s": 0.01, "bod_mg_l": 150.0, "fast_fraction": 0.4, "turbidity_ntu": 200.0,
              "do_mg_l": 1.0},
}
# Rain (ASSUMPTION): 12 ha of paved catchment at runoff coefficient 0.7; first-flush runoff is
# turbid and carries some organic matter; every outlet overflows diluted sewage.
RAIN_CATCHMENT_M2 = 120_000.0
RAIN_RUNOFF_COEFF = 0.7
RAIN_RUNOFF_CONC = (7.0, 4.0, 12.0, 300.0)      # DO, fast BOD, slow BOD, turbidity
OVERFLOW_CONC = (2.0, 25.0, 35.0, 200.0)
OVERFLOW_M3_S_PER_MM_H = {"large": 0.0015, "small": 0.0004}
RAIN_LIGHT = 0.3
LINK_PROBS = {"duplicates": "duplicate", "reorder": "reorder", "dropout": "dropout"}
ARRIVAL_NTU = 1.0           # a discharge "arrives" at a node when its turbidity excess passes this
ARRIVAL_HORIZON_S = 8 * 3600.0
# A relapsing reach: sealed outlets and leak points seep sewage again (ASSUMPTION, as DISCHARGE).
RELAPSE_LEAK_CONC = (0.5, 60.0, 90.0, 200.0)
RAIN_COOLING_C = 1.5


@dataclass
class Active:
    """An event that has started, and what the engine needs to end it."""

    spec: EventSpec
    start: float
    end: float | None
    state: dict[str, Any] = field(default_factory=dict)


class Simulation:
    """A seeded, steppable simulation of one creek under one scenario."""

    def __init__(self, creek: Creek, scenario: Scenario, *, seed: int = 1, start: float,
                 interval_s: float = 60.0, duration: float | None = None,
                 truth: TruthWriter | None = None, aerator_policy: str = "schedule",
                 spinup_s: float = SPINUP_S, creek_id: str | None = None):
        if interval_s <= 0:
            raise ValueError(f"interval {interval_s} s must be positive")
        self.creek, self.scenario, self.seed = creek, scenario, seed
        self.creek_id = creek_id or creek.id
        self.start, self.interval, self.duration = float(start), float(interval_s), duration
        self.end = None if duration is None else self.start + duration
        self.t = self.start
        self.truth = truth or TruthWriter(None, creek.timezone, self.creek_id)
        self.offset_h = utc_offset_hours(creek.timezone, start)
        k = scenario.coefficients
        self.k = k
        self.sensors = [n for n in creek.nodes if not n.is_aerator]
        self.aer_nodes = [n for n in creek.nodes if n.is_aerator]
        self.sensor_index = {n.id: i for i, n in enumerate(self.sensors)}
        self.water = WaterModel(creek, k, scenario.segments, self.aer_nodes)
        self.obs_w = self.water.grid.observation_weights(self.sensors)
        self.weather = Weather(seed, scenario.season, self.offset_h, k)
        policy = "always" if scenario.aerators_always_on else aerator_policy
        self.aerators = AeratorBank(self.aer_nodes, policy)
        self.probes = ProbeBank(self.sensors, np.random.default_rng([seed, 4]))
        self.aer_rssi = np.random.default_rng([seed, 5]).uniform(-85.0, -60.0, len(self.aer_nodes))
        phase_rng = np.random.default_rng([seed, 6])
        self.links = {n.id: NodeLink(n.id, float(phase_rng.integers(0, max(1, int(self.interval)))), FW)
                      for n in creek.nodes}
        for link in self.links.values():
            link.dropout = scenario.network.get("dropout_prob", 0.0)
            link.duplicate = scenario.network.get("duplicate_prob", 0.0)
            link.reorder = scenario.network.get("reorder_prob", 0.0)
        self.rng_noise = np.random.default_rng([seed, 2])
        self.rng_net = np.random.default_rng([seed, 3])
        self.rng_events = np.random.default_rng([seed, 8])
        self.pending: list[EventSpec] = sorted(scenario.events, key=lambda e: e.start)
        self.days_drawn = -1
        self.active: list[Active] = []
        self.rain_cool = 0.0
        self.steps_done = 0
        self.last_true: dict[str, np.ndarray] = {}
        self._outlet_w = {o.id: self.water.grid.spread_weights(o.channel, o.chainage_m,
                                                               k.discharge_mixing_m)
                          for o in creek.outlets}
        self._seg_mask = {s.id: np.array([g == s.id for g in self.water.grid.segment])
                          for s in creek.segments}
        self._record_network_truth()
        self._spinup(spinup_s)

    # ---- public ------------------------------------------------------------------------------
    def command(self, node_id: str, on: bool | None, reason: str = "") -> bool:
        """An aerator ``cmd``; it takes effect from the next step. False for an unknown aerator."""
        return self.aerators.command(node_id, on, reason)

    def command_now(self, node_id: str, on: bool | None, reason: str, at: float) -> list[Message] | None:
        """A ``cmd`` arriving at simulated time ``at``: the aerator switches and reports at once.

        None when ``node_id`` is not an aerator of this creek. The water feels the new state from
        the next step on. A node whose link is down (radio outage, dead) never hears it.
        """
        link = self.links.get(node_id)
        if link is not None and (link.outage or not link.alive) and node_id in self.aerators.index:
            return []
        if not self.aerators.command(node_id, on, reason):
            return None
        j = self.aerators.index[node_id]
        hour = ((at / 3600.0) + self.offset_h) % 24.0
        _, _, power = self.aerators.update(j, hour, 0.0)
        fields = {"aerator_on": bool(self.aerators.relay[j]), "power_w": round(power, 1),
                  "rssi_dbm": float(round(self.aer_rssi[j]))}
        return self.links[node_id].send_now(at, fields)

    def inject(self, raw: dict[str, Any]) -> EventSpec:
        """Add an event while running (``at`` defaults to the next step); ScenarioError says why not."""
        raw = dict(raw)
        raw.setdefault("at", self.t - self.start + self.interval)
        spec = parse_event(raw, self.creek, "inject")
        spec.origin = "inject"
        self.pending = sorted(self.pending + [spec], key=lambda e: e.start)
        return spec

    def finished(self) -> bool:
        """True once the next step would pass the run's end."""
        return self.end is not None and self.t + self.interval > self.end + 1e-6

    def run(self) -> Iterator[list[Message]]:
        """Step until the run's end (forever when it has no duration)."""
        while not self.finished():
            yield self.step()

    def step(self) -> list[Message]:
        """Advance one sampling interval and return what goes on the wire."""
        t0, t = self.t, self.t + self.interval
        out: list[Message] = []
        self._draw_random_days(t)
        out += self._transitions(t)
        n_sub = max(1, math.ceil(self.interval / PHYSICS_DT_MAX - 1e-9))
        dt = self.interval / n_sub
        hour = ((t / 3600.0) + self.offset_h) % 24.0
        transfer, running, power = self.aerators.step(hour, self.rng_noise.standard_normal(len(self.aer_nodes)))
        for j in range(n_sub):
            self.water.advance(dt, self._forcing(t0 + (j + 1) * dt, dt, transfer, running))
        self.t = t
        out += self._readings(t, power)
        self.steps_done += 1
        return out

    # ---- events ------------------------------------------------------------------------------
    def _draw_random_days(self, t: float) -> None:
        day = int((t - self.start) // 86400)
        while self.days_drawn < day:
            self.days_drawn += 1
            new = self.scenario.events_for_day(self.days_drawn, self.seed)
            self.pending = sorted(self.pending + new, key=lambda e: e.start)

    def _transitions(self, t: float) -> list[Message]:
        out: list[Message] = []
        for a in [a for a in self.active if a.end is not None and a.end <= t]:
            self.active.remove(a)
            out += self._stop(a, t)
        while self.pending and self.start + self.pending[0].start <= t:
            spec = self.pending.pop(0)
            s = self.start + spec.start
            end = None if spec.duration is None else s + spec.duration
            if end is not None and end <= t - self.interval:
                continue  # wholly inside a step that has passed (cannot happen in order)
            a = Active(spec, s, end)
            out += self._begin(a, t)
            if a.state.get("instant"):
                continue
            self.active.append(a)
        return out

    def _node(self, node_id: str) -> Node:
        node = self.creek.node(node_id)
        assert node is not None
        return node

    def _begin(self, a: Active, t: float) -> list[Message]:
        spec, kind = a.spec, a.spec.kind
        node = self._node(spec.target) if spec.target and self.creek.node(spec.target) else None
        seg = node.segment if node else None
        params = dict(spec.params)
        if kind == "discharge":
            outlet = next(o for o in self.creek.outlets if o.id == spec.target)
            params = {**DISCHARGE[outlet.size], **params, "outlet_size": outlet.size,
                      **self._reaction(outlet, {**DISCHARGE[outlet.size], **params}, spec.duration)}
            a.state.update(params)
            self.truth.record("discharge", a.start, a.end, segment=outlet.segment,
                              outlet=outlet.id, params=params, creek=self.creek_id)
            return []
        if kind == "rain":
            params.setdefault("intensity_mm_h", 20.0)
            params["overflowing_outlets"] = [o.id for o in self.creek.outlets]
            a.state.update(params)
            self.truth.record("rain", a.start, a.end, params=params, creek=self.creek_id)
            return []
        if kind == "relapse":
            params.setdefault("sod_factor", 15.0)
            params.setdefault("leak_m3_s", 0.003)
            params.setdefault("ramp", (spec.duration or 4 * 86400.0) / 2)
            a.state.update(params)
            self.truth.record("black_odorous", a.start, a.end, segment=spec.target, params=params,
                              creek=self.creek_id)
            return []
        if kind == "flow":
            params.setdefault("factor", 0.0)
            a.state.update(params)
            self.truth.record("flow_change", a.start, a.end, params=params, creek=self.creek_id)
            return []
        assert node is not None
        return self._begin_node(a, node, seg, params, t)

    def _begin_node(self, a: Active, node: Node, seg: str | None, params: dict[str, Any],
                    t: float) -> list[Message]:
        """Start a fault of one node and record it in the truth."""
        kind = a.spec.kind
        if kind == "aerator_failure":
            params.setdefault("mode", "stopped")
            self.aerators.set_failure(node.id, params["mode"])
        elif kind in ("fouling", "stuck", "battery"):
            self._begin_probe_fault(a, self.sensor_index[node.id], params)
        elif kind == "spike":
            self._plan_spikes(a, self.sensor_index.get(node.id), params)
            return []  # each spike is recorded when it fires
        out = self._begin_link_fault(a, self.links[node.id], params, t)
        end = None if kind in ("battery", "node_dies") else a.end
        self.truth.record(a.spec.truth_kind, a.start, end, segment=seg, node=node.id,
                          params=params, creek=self.creek_id)
        return out

    def _begin_probe_fault(self, a: Active, i: int, params: dict[str, Any]) -> None:
        kind, faults = a.spec.kind, self.probes.faults[i]
        if kind == "fouling":
            name = params.setdefault("field", "do_mg_l")
            params.setdefault("rate_per_d", DEFAULT_DRIFT[name])
            params.setdefault("noise_growth_per_d", 1.0)
            faults.drift[name] = (a.start, params["rate_per_d"], params["noise_growth_per_d"])
        elif kind == "stuck":
            name = params.setdefault("field", "turbidity_ntu")
            params["value"] = faults.stuck[name] = self.probes.last[i].get(name, 0.0)
        elif kind == "battery":
            params.setdefault("rate_v_per_d", 0.25)
            faults.battery = (a.start, params["rate_v_per_d"])
            now_v = self.probes.last[i].get("battery_v", 3.95)
            params["low_below_v"] = BATTERY_LOW_V
            params["dies_below_v"] = BATTERY_DEAD_V
            params["expected_death_ts"] = round(a.start + max(0.0, now_v - BATTERY_DEAD_V)
                                                / params["rate_v_per_d"] * 86400.0, 1)
            a.end = None  # a failing battery ends in death, not by the clock

    def _begin_link_fault(self, a: Active, link: NodeLink, params: dict[str, Any],
                          t: float) -> list[Message]:
        kind = a.spec.kind
        if kind == "node_dies":
            a.state["instant"] = True
            params.setdefault("cause", "power")
            return link.die(t)
        if kind == "radio_outage":
            params["will"] = True
            params["expected_readings"] = int((a.end - a.start) // self.interval) if a.end else None
            return link.start_outage(t)
        if kind in LINK_PROBS:
            params.setdefault("prob", 0.2)
            a.state["previous"] = getattr(link, LINK_PROBS[kind])
            setattr(link, LINK_PROBS[kind], params["prob"])
        elif kind == "clock_skew":
            params.setdefault("offset_s", -900.0)
            a.state["previous"] = link.skew_s
            link.skew_s = params["offset_s"]
        return []

    def _plan_spikes(self, a: Active, i: int | None, params: dict[str, Any]) -> None:
        assert i is not None
        name = params.setdefault("field", "do_mg_l")
        count = max(1, int(params.get("count", 1)))
        span = (a.end - a.start) if a.end else 0.0
        steps = max(1, int(span // self.interval))
        first = self.start + math.ceil((a.start - self.start) / self.interval - 1e-9) * self.interval
        picks = sorted(set(int(x) for x in self.rng_events.integers(0, steps, count)))
        for p in picks:
            up = bool(self.rng_events.random() < 0.6)
            self.probes.faults[i].spikes[first + p * self.interval] = (name, params.get("magnitude"), up)
        a.state["spike_node"] = i

    def _stop(self, a: Active, t: float) -> list[Message]:
        kind, spec = a.spec.kind, a.spec
        node = self.creek.node(spec.target) if spec.target else None
        if node is None:
            return []
        link = self.links[node.id]
        i = self.sensor_index.get(node.id)
        if kind == "aerator_failure":
            self.aerators.set_failure(node.id, None)
        elif kind == "fouling":
            self.probes.faults[i].drift.pop(spec.params.get("field", "do_mg_l"), None)
        elif kind == "stuck":
            self.probes.faults[i].stuck.pop(spec.params.get("field", "turbidity_ntu"), None)
        elif kind == "radio_outage" and link.alive:
            return link.end_outage(t)
        elif kind in LINK_PROBS:
            setattr(link, LINK_PROBS[kind], a.state.get("previous", 0.0))
        elif kind == "clock_skew":
            link.skew_s = a.state.get("previous", 0.0)
        return []

    def _reaction(self, outlet, params: dict[str, Any], duration: float | None) -> dict[str, Any]:
        """Which sensor nodes a discharge will reach, and when it first shows there.

        ``downstream_nodes`` is the topology's answer under normal flow. ``nodes`` and
        ``arrival_s`` come from a tracer run of the same transport under the flow of the moment
        (so a reversed creek carries the plume upstream): a node is reached when the plume's
        turbidity excess there first exceeds ``ARRIVAL_NTU`` (probe noise is ~0.2 NTU), at most
        ``ARRIVAL_HORIZON_S`` after the outlet opens; ``advective_s`` is distance / velocity.
        """
        here = (outlet.channel, outlet.chainage_m)
        pos0 = self.creek.flow_position(*here)
        downstream = sorted((self.creek.flow_position(n.channel, n.chainage_m) - pos0, n.id)
                            for n in self.sensors if self.creek.is_downstream(here, (n.channel, n.chainage_m)))
        arrival = self._plume_arrival(self._outlet_w[outlet.id], params["flow_m3_s"],
                                      params["turbidity_ntu"], duration)
        order = sorted(arrival, key=lambda n: arrival[n])
        u = self.k.velocity_main_m_s
        return {"nodes": order, "arrival_s": {n: arrival[n] for n in order},
                "downstream_nodes": [n for _, n in downstream],
                "advective_s": {n: round(d / u) for d, n in downstream},
                "upstream_nodes": [n.id for n in self.sensors if n.id not in dict(
                    (x, 0) for _, x in downstream)]}

    def _plume_arrival(self, weights: np.ndarray, q: float, turbidity: float,
                       duration: float | None) -> dict[str, int]:
        """Seconds from the outlet opening until each sensor sees the plume (tracer run)."""
        g, dt = self.water.grid, 60.0
        factor = 1.0
        for a in self.active:
            if a.spec.kind == "flow":
                factor *= a.state["factor"]
        x = np.zeros((g.n_all, 1))
        base = float(np.dot(weights, self.water.turb_base))
        excess = max(0.0, turbidity - base)
        open_s = duration if duration is not None else ARRIVAL_HORIZON_S
        settle = self.k.settling_per_h / 3600.0 * dt
        found: dict[str, int] = {}
        saved = self.water.state
        try:
            self.water.state = x
            for k in range(int(ARRIVAL_HORIZON_S // dt)):
                self.water._transport(dt, factor)
                if k * dt < open_s:
                    frac = np.minimum(1.0, q * dt * weights / g.volume_m3)
                    x[:, 0] += frac * (excess - x[:, 0])
                x *= 1.0 - settle
                seen = self.obs_w @ x[:, 0]
                for i in np.nonzero(seen > ARRIVAL_NTU)[0]:
                    found.setdefault(self.sensors[i].id, int((k + 1) * dt))
                if len(found) == len(self.sensors):
                    break
        finally:
            self.water.state = saved
        return found

    def _record_network_truth(self) -> None:
        for key, kind in (("duplicate_prob", "net_duplicate"), ("reorder_prob", "net_reorder"),
                          ("dropout_prob", "dropout")):
            p = self.scenario.network.get(key, 0.0)
            if p > 0:
                self.truth.record(kind, self.start, self.end, params={"prob": p, "scope": "all nodes"},
                                  creek=self.creek_id)

    # ---- forcing -----------------------------------------------------------------------------
    def _forcing(self, tau: float, dt: float, transfer: np.ndarray, running: np.ndarray) -> Forcing:
        raining = [a for a in self.active if a.spec.kind == "rain"]
        target = -RAIN_COOLING_C if raining else 0.0
        tc = 3600.0 if raining else 6 * 3600.0
        self.rain_cool += (target - self.rain_cool) * min(1.0, dt / tc)
        light = self.weather.light(tau) * (RAIN_LIGHT if raining else 1.0)
        fc = Forcing(temp_c=self.weather.temperature(tau) + self.rain_cool, light=light,
                     aerator_transfer=transfer, aerator_running=running)
        factor = 1.0
        for a in self.active:
            kind = a.spec.kind
            if kind == "flow":
                factor *= a.state["factor"]
            elif kind == "discharge":
                conc = self._conc(a.state)
                fc.sources.append((self._outlet_w[a.spec.target or ""], a.state["flow_m3_s"], conc))
            elif kind == "relapse":
                if fc.sod_mult is None:
                    fc.sod_mult = np.ones(self.water.grid.n_all)
                ramp = max(1.0, a.state["ramp"])
                frac = min(1.0, (tau - a.start) / ramp)
                seg = a.spec.target or ""
                fc.sod_mult[self._seg_mask[seg]] *= 1 + (a.state["sod_factor"] - 1) * frac
                fc.sources.append((self._relapse_w(seg), a.state["leak_m3_s"] * frac, RELAPSE_LEAK_CONC))
        for a in raining:
            mm_h = a.state["intensity_mm_h"]
            runoff = RAIN_RUNOFF_COEFF * mm_h / 3.6e6 * RAIN_CATCHMENT_M2
            base = float(self.water.grid.flow_m3_s.max())
            factor = factor + runoff / base if factor >= 0 else factor
            fc.lateral_per_s += runoff / float(self.water.grid.volume_m3[:self.water.grid.n_cells].sum())
            fc.lateral_conc = RAIN_RUNOFF_CONC
            for o in self.creek.outlets:
                fc.sources.append((self._outlet_w[o.id], OVERFLOW_M3_S_PER_MM_H[o.size] * mm_h,
                                   OVERFLOW_CONC))
        fc.flow_factor = factor
        return fc

    def _relapse_w(self, seg: str) -> np.ndarray:
        """Where a relapsing reach's leaks enter: its outlets, or the whole reach if it has none."""
        outlets = self.creek.outlets_in(seg)
        if not outlets:
            w = self._seg_mask[seg] * self.water.grid.volume_m3
            return w / w.sum()
        return sum(self._outlet_w[o.id] for o in outlets) / len(outlets)

    @staticmethod
    def _conc(p: dict[str, Any]) -> tuple[float, float, float, float]:
        bod = p["bod_mg_l"]
        fast = p["fast_fraction"]
        return (p["do_mg_l"], bod * fast, bod * (1 - fast), p["turbidity_ntu"])

    def _spinup(self, seconds: float) -> None:
        """Run the water (no events, no readings) so the first reading is on a settled cycle."""
        if seconds <= 0:
            return
        n = int(seconds // PHYSICS_DT_MAX)
        t = self.start - n * PHYSICS_DT_MAX
        for _ in range(n):
            hour = ((t / 3600.0) + self.offset_h) % 24.0
            transfer, running, _ = self.aerators.step(hour, np.zeros(len(self.aer_nodes)))
            t += PHYSICS_DT_MAX
            self.water.advance(PHYSICS_DT_MAX, Forcing(self.weather.temperature(t), self.weather.light(t),
                                                       aerator_transfer=transfer,
                                                       aerator_running=running))

    # ---- readings ----------------------------------------------------------------------------
    def _readings(self, t: float, power: np.ndarray) -> list[Message]:
        x = self.water.state
        do_true = self.obs_w @ x[:, DO]
        turb_true = self.obs_w @ x[:, TURB]
        self.last_true = {"do_mg_l": do_true, "turbidity_ntu": turb_true}
        temp = self.weather.temperature(t) + self.rain_cool
        raining = any(a.spec.kind == "rain" for a in self.active)
        z = self.rng_noise.standard_normal((len(self.sensors), 5))
        u = self.rng_net.random((len(self.links), 3))
        fired: list[tuple[int, str, float]] = []
        readings = self.probes.observe(t, do_true, turb_true, temp, self.water.activity, raining, z, fired)
        out: list[Message] = []
        for i, node in enumerate(self.sensors):
            link = self.links[node.id]
            if not link.alive:
                continue
            if readings[i]["battery_v"] < BATTERY_DEAD_V and self.probes.faults[i].battery:
                self.truth.record("node_offline", t + link.phase_s, None, segment=node.segment,
                                  node=node.id, params={"cause": "battery",
                                                        "battery_v": readings[i]["battery_v"]},
                                  creek=self.creek_id)
                out += link.die(t + link.phase_s)
                continue
            for name, value in [(f, v) for j, f, v in fired if j == i]:
                self.truth.record("sensor_spike", t + link.phase_s + link.skew_s,
                                  t + link.phase_s + link.skew_s, segment=node.segment,
                                  node=node.id, params={"field": name, "value": value},
                                  creek=self.creek_id)
            out += link.send(t, readings[i], tuple(u[i].tolist()))
        base = len(self.sensors)
        rssi = np.clip(np.round(self.aer_rssi + 2.0 * self.rng_noise.standard_normal(len(self.aer_nodes))),
                       -150, 0).tolist()
        watts = np.round(power, 1).tolist()
        for j, node in enumerate(self.aer_nodes):
            fields = {"aerator_on": bool(self.aerators.relay[j]), "power_w": watts[j],
                      "rssi_dbm": rssi[j]}
            out += self.links[node.id].send(t, fields, tuple(u[base + j].tolist()))
        out.sort(key=lambda m: m.at)
        return out

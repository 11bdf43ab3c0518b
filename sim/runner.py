"""From command-line choices to ready simulations: scenario, start, duration, copies, truth."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from rivermon.core.topology import Creek, Topology

from .engine import Simulation
from .scenario import Scenario, load_scenario
from .timeparse import parse_duration, parse_instant
from .truth import TruthWriter

DEFAULT_SCENARIO = "demo"
ACCELERATED_DEFAULT_S = 7 * 86400.0


@dataclass
class RunPlan:
    """What to simulate, from when, how fast."""
    creek: Creek
    scenario: Scenario
    seed: int
    start: float
    duration: float | None
    interval_s: float
    speed: float
    copies: int


def copy_id(creek_id: str, copy: int) -> str:
    """Creek id of copy ``copy`` (1 is the creek itself): ``huanglong``, ``huanglong-2``, ..."""
    return creek_id if copy == 1 else f"{creek_id}-{copy}"[:32]


def pick_creek(topology: Topology, creek_id: str | None) -> Creek:
    """The creek named by ``--creek`` (the topology's first by default)."""
    if creek_id:
        creek = topology.creek(creek_id)
        if creek is None:
            raise ValueError(f"--creek {creek_id!r} is not in the topology "
                             f"(creeks: {', '.join(c.id for c in topology.creeks)})")
        return creek
    return topology.creeks[0]


def local_midnight_before(ts: float, tz: str) -> float:
    """The local midnight at or before ``ts`` in zone ``tz``."""
    dt = datetime.fromtimestamp(ts, ZoneInfo(tz))
    return dt.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def plan_run(topology: Topology, scenario_name: str | None, *, seed: int, speed: float,
             interval_s: float, start: str | None, duration: str | None, copies: int,
             offline: bool, creek_id: str | None = None, now: float | None = None) -> RunPlan:
    """Resolve the scenario, the start and the duration under the time rules of the brief.

    Real time (speed 1) starts now and runs for ``--duration`` or forever. Accelerated runs
    (speed 0 or above 1) and offline CSV runs default to the scenario's duration (7 days when
    it has none) and start that long before now, so no reading is ever stamped in the future;
    offline runs start at the local midnight before that, so events fall at the same time of day
    on every run.
    """
    if copies < 1:
        raise ValueError(f"--copies {copies} must be at least 1")
    if speed < 0 or not math.isfinite(speed):
        raise ValueError(f"--speed {speed} must be 0 (as fast as possible) or a positive number")
    if interval_s < 1 or interval_s > 3600:
        raise ValueError(f"--interval {interval_s} s must be between 1 and 3600")
    creek = pick_creek(topology, creek_id)
    scenario = load_scenario(scenario_name or DEFAULT_SCENARIO, creek)
    now = time.time() if now is None else now
    realtime = speed == 1 and not offline
    dur = parse_duration(duration, "--duration") if duration else None
    if dur is None and not realtime:
        dur = scenario.duration or ACCELERATED_DEFAULT_S
    if dur is not None and dur < interval_s:
        raise ValueError(f"--duration {duration} is shorter than one sampling interval ({interval_s:g} s)")
    if start:
        t0 = parse_instant(start, "--start")
    elif realtime:
        t0 = math.floor(now) - interval_s  # the first readings are due now, not an interval later
    elif offline:
        t0 = local_midnight_before(now - (dur or 0.0), creek.timezone)
    else:
        # One interval earlier still: nodes read up to one interval after a step (their phase).
        t0 = (math.floor((now - (dur or 0.0)) / interval_s) - 1) * interval_s
    if not offline and t0 > now + 300:
        raise ValueError(f"--start {start} is more than 5 minutes in the future; the ingestor "
                         f"refuses such readings")
    return RunPlan(creek, scenario, seed, float(t0), dur, float(interval_s), speed, copies)


def build_simulations(plan: RunPlan, truth_path: str | None,
                      aerator_policy: str = "schedule") -> tuple[list[Simulation], TruthWriter]:
    """One simulation per creek copy (copy k uses seed + k - 1), sharing one truth file."""
    truth = TruthWriter(truth_path, plan.creek.timezone, plan.creek.id)
    sims = []
    for c in range(1, plan.copies + 1):
        sims.append(Simulation(plan.creek, plan.scenario, seed=plan.seed + c - 1, start=plan.start,
                               interval_s=plan.interval_s, duration=plan.duration, truth=truth,
                               aerator_policy=aerator_policy,
                               creek_id=copy_id(plan.creek.id, c)))
    return sims, truth


def describe(plan: RunPlan) -> dict[str, object]:
    """A summary line for the log."""
    from .timeparse import rfc3339
    return {"scenario": plan.scenario.name, "seed": plan.seed, "creek": plan.creek.id,
            "start": rfc3339(plan.start, plan.creek.timezone),
            "duration_s": plan.duration, "interval_s": plan.interval_s, "speed": plan.speed,
            "copies": plan.copies,
            "end": rfc3339(plan.start + plan.duration, plan.creek.timezone)
            if plan.duration else None}


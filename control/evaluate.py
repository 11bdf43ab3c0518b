"""``rivermon eval aeration``: the simulated creek for a month under three aeration policies.

Runs :class:`rivermon.sim.Simulation` in-process, in closed loop, once per policy:

- ``always``: every aerator runs around the clock (the reference);
- ``timer``: the aerators' own fixed local timer (micro-pore grids at night, fountains mornings
  and evenings; see docs/simulator.md);
- ``controller``: rivermon's controller (:mod:`rivermon.control.policy`) sees what the sensor
  nodes report at each step (through the same :class:`~rivermon.control.board.DoBoard` the live
  service uses: median of three, lowest usable sensor) and commands the aerators.

Same seed, start and scenario for all three, so the weather and the events are identical. It
prints the energy (kWh, from the aerators' own ``power_w`` reports), the switchings (changes of
their reported ``aerator_on``), and per segment the hours with true DO (no probe error; a
segment's value is its lowest sensor) below 3 and below 2 mg/L and the share of time at or above
3 mg/L. Target: the controller uses at least 30 % less energy than ``always`` and keeps DO >= 3
mg/L at least 99 % of the time in every segment that ``always`` keeps there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rivermon.core.config import Config

POLICIES = ("always", "timer", "controller")
SIM_POLICY = {"always": "always", "timer": "schedule", "controller": "off"}
TARGET_SAVING = 0.30
TARGET_SHARE = 0.99
DEFAULT_START = "2026-07-01T00:00:00+08:00"  # midsummer: warm water holds least oxygen


@dataclass
class SegmentResult:
    hours_below_3: float = 0.0
    hours_below_2: float = 0.0
    share_ge_3: float = 1.0
    min_do: float = float("inf")


@dataclass
class PolicyResult:
    policy: str
    energy_kwh: float = 0.0
    switchings: int = 0
    hours: float = 0.0
    segments: dict[str, SegmentResult] = field(default_factory=dict)
    seconds: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rivermon eval aeration`` (and ``rivermon control-eval``)."""
    parser.add_argument("--scenario", default="month",
                        help="simulator scenario (name or TOML file) [default: month]")
    parser.add_argument("--days", type=float, default=30.0, help="simulated days [default: 30]")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed [default: 1]")
    parser.add_argument("--start", default=DEFAULT_START,
                        help=f"simulated start, RFC 3339 or Unix seconds [default: {DEFAULT_START}]")
    parser.add_argument("--interval", type=float, default=300.0,
                        help="simulation step and sampling interval, seconds [default: 300]")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help=f"comma-separated subset of {', '.join(POLICIES)} [default: all]")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")


def _parse_start(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"--start {text!r} is neither Unix seconds nor RFC 3339 with an offset") from None


def _readings(msg: Any) -> list[dict[str, Any]]:
    if msg.channel != "telemetry":
        return []
    return msg.payload if isinstance(msg.payload, list) else [msg.payload]


def simulate(policy: str, cfg: Config, *, scenario: str = "month", days: float = 30.0, seed: int = 1,
             start: float, interval: float = 300.0) -> PolicyResult:
    """One closed-loop run of the simulated creek under ``policy``."""
    import numpy as np

    from rivermon.core.topology import load_topology
    from rivermon.sim import Simulation, load_scenario

    from .board import DoBoard
    from .policy import Aerator, ControlParams, SegmentController

    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    t0 = time.monotonic()
    creek = load_topology(cfg.topology or None).creeks[0]
    sim = Simulation(creek, load_scenario(scenario, creek), seed=seed, start=start,
                     interval_s=interval, duration=days * 86400.0, aerator_policy=SIM_POLICY[policy])
    params = ControlParams.from_config(cfg, creek.timezone)
    board = DoBoard(creek, float(cfg.control_stale_s))
    ctls = [SegmentController(s.id, [Aerator(n.id, n.aerator or "micropore", n.rated_w or 0.0)
                                     for n in creek.nodes_in(s.id, "aerator")], params)
            for s in creek.segments]
    ctls = [c for c in ctls if c.aerators]
    seg_of = [n.segment for n in sim.sensors]
    seg_ids = [s.id for s in creek.segments if s.id in set(seg_of)]
    cols = {s: np.array([g == s for g in seg_of]) for s in seg_ids}
    below3 = dict.fromkeys(seg_ids, 0)
    below2 = dict.fromkeys(seg_ids, 0)
    min_do = dict.fromkeys(seg_ids, float("inf"))
    seen: set[tuple[str, float]] = set()
    last_on: dict[str, bool] = {}
    res = PolicyResult(policy)
    steps = 0
    while not sim.finished():
        for m in sim.step():
            if m.channel == "status":
                board.set_online(m.node, m.payload.get("state") == "online")
            for r in _readings(m):
                if (m.node, r["ts"]) in seen:
                    continue  # a duplicate delivery is one reading
                seen.add((m.node, r["ts"]))
                if "do_mg_l" in r:
                    board.reading(m.node, float(r["ts"]), float(r["do_mg_l"]))
                if "power_w" in r:
                    res.energy_kwh += float(r["power_w"]) * interval / 3.6e6
                if "aerator_on" in r:
                    if m.node in last_on and last_on[m.node] != r["aerator_on"]:
                        res.switchings += 1
                    last_on[m.node] = bool(r["aerator_on"])
        if len(seen) > 200_000:
            seen.clear()  # duplicates arrive within a step or two; bound the memory
        true_do = sim.last_true["do_mg_l"]
        for s in seg_ids:
            v = float(true_do[cols[s]].min())
            below3[s] += v < 3.0
            below2[s] += v < 2.0
            min_do[s] = min(min_do[s], v)
        steps += 1
        if policy == "controller":
            for c in ctls:
                do, why = board.segment_do(c.segment, sim.t)
                trend = board.segment_trend(c.segment, sim.t) if do is not None else None
                for d in c.decide(sim.t, do, why, None, trend, board.downstream_do(c.segment, sim.t)):
                    if d.changed:
                        sim.command(d.node, d.on, d.reason_text())
    h = interval / 3600.0
    res.hours = steps * h
    res.segments = {s: SegmentResult(below3[s] * h, below2[s] * h,
                                     1.0 - below3[s] / max(1, steps), round(min_do[s], 2))
                    for s in seg_ids}
    res.seconds = time.monotonic() - t0
    return res


def verdict(results: dict[str, PolicyResult]) -> tuple[bool, list[str]]:
    """PASS when the controller meets both targets against ``always``; the reasons either way."""
    if "always" not in results or "controller" not in results:
        return False, ["the target compares 'controller' with 'always': run both"]
    a, c = results["always"], results["controller"]
    saving = 1.0 - c.energy_kwh / a.energy_kwh if a.energy_kwh > 0 else 0.0
    notes = [f"energy saving {saving:.1%} (target >= {TARGET_SAVING:.0%})"]
    ok = saving >= TARGET_SAVING
    for s, ra in a.segments.items():
        if ra.share_ge_3 < TARGET_SHARE:
            notes.append(f"{s}: always-on keeps DO >= 3 only {ra.share_ge_3:.2%}: not judged")
            continue
        rc = c.segments[s]
        if rc.share_ge_3 < TARGET_SHARE:
            ok = False
            notes.append(f"{s}: controller keeps DO >= 3 mg/L {rc.share_ge_3:.2%} of the time "
                         f"(target >= {TARGET_SHARE:.0%})")
    return ok, notes


def render(results: dict[str, PolicyResult]) -> str:
    """The table: totals per policy, then per segment hours below 3 / below 2 and share >= 3."""
    pols = list(results)
    ref = results.get("always")
    lines = [f"{'policy':<11} {'energy kWh':>11} {'vs always':>10} {'switchings':>11} {'hours':>7} {'run s':>6}"]
    for p in pols:
        r = results[p]
        vs = f"{r.energy_kwh / ref.energy_kwh - 1:+.1%}" if ref and ref.energy_kwh > 0 else "-"
        lines.append(f"{p:<11} {r.energy_kwh:>11.1f} {vs:>10} {r.switchings:>11d} {r.hours:>7.0f} {r.seconds:>6.1f}")
    lines += ["", "DO per segment (true DO, lowest sensor): hours < 3 mg/L / hours < 2 mg/L / "
                  "share of time >= 3 mg/L / minimum"]
    lines.append(f"{'segment':<8} " + " ".join(f"{p:>30}" for p in pols))
    for s in next(iter(results.values())).segments:
        cells = []
        for p in pols:
            x = results[p].segments[s]
            cells.append(f"{x.hours_below_3:6.1f} / {x.hours_below_2:5.1f} / {x.share_ge_3:7.2%} / {x.min_do:4.2f}")
        lines.append(f"{s:<8} " + " ".join(f"{c:>30}" for c in cells))
    return "\n".join(lines)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Run the evaluation, print the table and PASS/FAIL; exit status 0 on PASS, 1 on FAIL."""
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        if p not in POLICIES:
            raise ValueError(f"--policies: {p!r} is not one of {', '.join(POLICIES)}")
    if not 0 < args.days <= 400:
        raise ValueError(f"--days {args.days} must be in (0, 400]")
    if not 10 <= args.interval <= 3600:
        raise ValueError(f"--interval {args.interval} must be between 10 and 3600 seconds")
    start = _parse_start(args.start)
    results = {}
    for p in policies:
        results[p] = simulate(p, cfg, scenario=args.scenario, days=args.days, seed=args.seed,
                              start=start, interval=args.interval)
        print(f"  {p}: {results[p].seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"rivermon eval aeration: scenario {args.scenario}, {args.days:g} days from {args.start}, "
          f"seed {args.seed}, step {args.interval:g} s")
    print(render(results))
    ok, notes = verdict(results)
    print()
    for n in notes:
        print("  " + n)
    print(("PASS" if ok else "FAIL") + ": controller uses >= 30 % less energy than always-on and keeps "
          "DO >= 3 mg/L >= 99 % of the time where always-on does")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "func"},
                       "results": {p: asdict(r) for p, r in results.items()},
                       "pass": ok, "notes": notes}, f, indent=2, default=str)
    return 0 if ok else 1

"""Scenario files: what the simulated creek does, as TOML (see docs/simulator.md).

A scenario names a duration, a season, coefficient and segment overrides, network behaviour,
scheduled ``[[events]]`` and seeded ``[[random]]`` event generators. Loading validates all of it
and every refusal names the key (``events[2].outlet: 'ol-x9' is not an outlet of huanglong``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rivermon.core.topology import Creek

from .physics import Coefficients
from .timeparse import parse_duration

# Injection kind -> the truth (alert vocabulary) kind it is recorded as.
TRUTH_KIND = {
    "discharge": "discharge",
    "rain": "rain",
    "relapse": "black_odorous",
    "aerator_failure": "aerator_fault",
    "fouling": "sensor_drift",
    "stuck": "sensor_stuck",
    "spike": "sensor_spike",
    "battery": "low_battery",
    "node_dies": "node_offline",
    "radio_outage": "net_backlog",
    "duplicates": "net_duplicate",
    "reorder": "net_reorder",
    "clock_skew": "clock_skew",
    "dropout": "dropout",
    "flow": "flow_change",
}
# Truth kinds accepted as injection kinds too (``kind = "sensor_drift"`` means fouling).
ALIASES = {v: k for k, v in TRUTH_KIND.items()} | {"aerator_fault": "aerator_failure"}
WATER_KINDS = {"discharge", "rain", "relapse", "flow"}
NODE_KINDS = {"aerator_failure", "fouling", "stuck", "spike", "battery", "node_dies",
              "radio_outage", "duplicates", "reorder", "clock_skew", "dropout"}
SENSOR_FIELDS = ("do_mg_l", "turbidity_ntu", "temp_c")
SEASONS = {
    # name: (mean water temperature °C, day of year for the sun) -- Foshan climate, ASSUMPTION
    # built from Guangzhou normals (air 13-29 °C monthly means; shallow water runs ~1-2 °C warmer).
    "summer": (28.3, 200),
    "spring": (23.5, 110),
    "autumn": (25.5, 290),
    "winter": (17.0, 20),
}
MONTHLY_WATER_C = (16.0, 17.0, 20.0, 23.5, 27.0, 28.5, 29.5, 29.5, 28.5, 26.0, 22.0, 18.0)
SEGMENT_KEYS = ("sod_factor", "respiration_factor", "photosynthesis_factor",
                "turbidity_base_ntu")
NETWORK_KEYS = ("duplicate_prob", "reorder_prob", "dropout_prob")


class ScenarioError(ValueError):
    """The scenario file is wrong; the message names the key and the problem."""


@dataclass
class EventSpec:
    """One event or fault, scheduled or drawn: when, where, and its parameters."""

    kind: str
    start: float                  # offset from the run's start, seconds
    duration: float | None        # None: lasts until the run ends
    target: str | None = None     # outlet, node or segment id
    params: dict[str, Any] = field(default_factory=dict)
    origin: str = ""              # "events[3]" or "random[1]#4" (for messages)

    @property
    def truth_kind(self) -> str:
        """The kind the truth file records this event as."""
        return TRUTH_KIND[self.kind]

    def end(self) -> float | None:
        """Offset of the end from the run's start (None: to the end of the run)."""
        return None if self.duration is None else self.start + self.duration


@dataclass
class RandomSpec:
    """A ``[[random]]`` generator of seeded events."""
    kind: str
    per_day: float
    targets: list[str]
    params: dict[str, Any]
    duration: tuple[float, float] | None
    origin: str


@dataclass
class Scenario:
    """A validated scenario file."""
    name: str
    description: str
    duration: float | None
    season: str
    coefficients: Coefficients
    segments: dict[str, dict[str, float]]
    network: dict[str, float]
    events: list[EventSpec]
    randoms: list[RandomSpec]
    aerators_always_on: bool = False
    source: str = ""

    def events_for_day(self, day: int, seed: int) -> list[EventSpec]:
        """The seeded random events of run day ``day`` (same seed, same day -> same events)."""
        out: list[EventSpec] = []
        for r_i, r in enumerate(self.randoms):
            rng = np.random.default_rng([seed, 7, r_i, day])
            for j in range(int(rng.poisson(r.per_day))):
                start = day * 86400.0 + float(rng.uniform(0, 86400))
                dur = None if r.duration is None else float(rng.uniform(*r.duration))
                target = r.targets[int(rng.integers(len(r.targets)))] if r.targets else None
                params = {k: _draw(v, rng) for k, v in r.params.items()}
                out.append(EventSpec(r.kind, start, dur, target, params, f"{r.origin}#{day}.{j}"))
        return out


def _draw(value: Any, rng: np.random.Generator) -> Any:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return float(rng.uniform(value[0], value[1]))
    return value


def scenario_names() -> list[str]:
    """Names of the scenarios shipped with rivermon."""
    folder = resources.files("rivermon.sim") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def scenario_path(name_or_file: str) -> Path:
    """A path as given, or a shipped scenario by name."""
    p = Path(name_or_file)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ScenarioError(f"scenario file {p} does not exist")
        return p
    shipped = resources.files("rivermon.sim") / "scenarios" / f"{name_or_file}.toml"
    if not shipped.is_file():
        raise ScenarioError(f"scenario {name_or_file!r} is neither a file nor a shipped scenario "
                            f"(shipped: {', '.join(scenario_names())})")
    return Path(str(shipped))


def load_scenario(name_or_file: str, creek: Creek) -> Scenario:
    """Load and validate a scenario against the creek it will run on."""
    path = scenario_path(name_or_file)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        sc = parse_scenario(data, creek, default_name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    sc.source = str(path)
    return sc


def parse_scenario(data: dict[str, Any], creek: Creek, default_name: str = "scenario") -> Scenario:
    """Validate a decoded scenario table."""
    known = {"name", "description", "duration", "season", "coefficients", "segments", "network",
             "events", "random", "aerators_always_on"}
    _no_unknown(data, known, "")
    duration = _dur(data.get("duration"), "duration") if data.get("duration") is not None else None
    season = data.get("season", "summer")
    if season not in SEASONS and season != "date":
        raise ScenarioError(f"season: {season!r} is not one of {', '.join(SEASONS)}, date")
    try:
        coeffs = Coefficients().replace(**_table(data, "coefficients"))
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"coefficients: {exc}") from None
    segments = {}
    for seg_id, values in _table(data, "segments").items():
        if seg_id not in {s.id for s in creek.segments}:
            raise ScenarioError(f"segments.{seg_id}: not a segment of {creek.id}")
        _no_unknown(values, set(SEGMENT_KEYS), f"segments.{seg_id}.")
        segments[seg_id] = {k: _num(v, f"segments.{seg_id}.{k}") for k, v in values.items()}
    network = _table(data, "network")
    _no_unknown(network, set(NETWORK_KEYS), "network.")
    network = {k: _prob(v, f"network.{k}") for k, v in network.items()}
    events = [_event(raw, creek, f"events[{i}]") for i, raw in enumerate(data.get("events", []))]
    randoms = [_random(raw, creek, f"random[{i}]") for i, raw in enumerate(data.get("random", []))]
    always = data.get("aerators_always_on", False)
    if not isinstance(always, bool):
        raise ScenarioError(f"aerators_always_on: must be true or false, got {always!r}")
    return Scenario(str(data.get("name", default_name)), str(data.get("description", "")),
                    duration, season, coeffs, segments, network, events, randoms, always)


def _no_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where.rstrip('.') or 'scenario'}: must be a table")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ScenarioError(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{key}: must be a table")
    return value


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{where}: must be a number, got {value!r}")
    return float(value)


def _prob(value: Any, where: str) -> float:
    p = _num(value, where)
    if not 0 <= p <= 1:
        raise ScenarioError(f"{where}: {p} is not a probability between 0 and 1")
    return p


def _dur(value: Any, where: str) -> float:
    try:
        return parse_duration(value, where)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None


# Per kind: the target key ("outlet", "node", "segment" or None) and the allowed parameters.
KIND_TARGET = {
    "discharge": "outlet", "rain": None, "relapse": "segment", "flow": None,
    **{k: "node" for k in NODE_KINDS},
}
KIND_PARAMS = {
    "discharge": {"flow_m3_s", "bod_mg_l", "fast_fraction", "turbidity_ntu", "do_mg_l"},
    "rain": {"intensity_mm_h"},
    "relapse": {"sod_factor", "ramp", "leak_m3_s"},
    "flow": {"factor"},
    "aerator_failure": {"mode"},
    "fouling": {"field", "rate_per_d", "noise_growth_per_d"},
    "stuck": {"field"},
    "spike": {"field", "count", "magnitude"},
    "battery": {"rate_v_per_d"},
    "node_dies": set(),
    "radio_outage": set(),
    "duplicates": {"prob"},
    "reorder": {"prob"},
    "clock_skew": {"offset_s"},
    "dropout": {"prob"},
}
AERATOR_MODES = ("stopped", "no_transfer", "ignores_cmd")


def _kind(raw: dict[str, Any], where: str) -> str:
    kind = raw.get("kind")
    kind = ALIASES.get(kind, kind)
    if kind not in TRUTH_KIND:
        raise ScenarioError(f"{where}.kind: {raw.get('kind')!r} is not one of "
                            f"{', '.join(sorted(TRUTH_KIND))}")
    return kind


def _check_target(kind: str, target: Any, creek: Creek, where: str) -> str | None:
    what = KIND_TARGET[kind]
    if what is None:
        return None
    if not isinstance(target, str):
        raise ScenarioError(f"{where}.{what}: missing (a {kind} needs an {what} id)")
    if what == "outlet" and target not in {o.id for o in creek.outlets}:
        raise ScenarioError(f"{where}.outlet: {target!r} is not an outlet of {creek.id}")
    if what == "segment" and target not in {s.id for s in creek.segments}:
        raise ScenarioError(f"{where}.segment: {target!r} is not a segment of {creek.id}")
    if what == "node":
        node = creek.node(target)
        if node is None:
            raise ScenarioError(f"{where}.node: {target!r} is not a node of {creek.id}")
        if kind == "aerator_failure" and not node.is_aerator:
            raise ScenarioError(f"{where}.node: {target!r} is a sensor node, not an aerator")
        if kind in ("fouling", "stuck", "spike") and node.is_aerator:
            raise ScenarioError(f"{where}.node: {target!r} is an aerator; probe faults need a sensor node")
    return target


def _check_params(kind: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    allowed = KIND_PARAMS[kind]
    for key, value in params.items():
        if key not in allowed:
            raise ScenarioError(f"{where}.{key}: not a parameter of {kind} "
                                f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
        if key == "field" and value not in SENSOR_FIELDS:
            raise ScenarioError(f"{where}.field: {value!r} is not one of {', '.join(SENSOR_FIELDS)}")
        elif key == "mode" and value not in AERATOR_MODES:
            raise ScenarioError(f"{where}.mode: {value!r} is not one of {', '.join(AERATOR_MODES)}")
        elif key == "ramp":
            params[key] = _dur(value, f"{where}.ramp")
        elif key not in ("field", "mode"):
            if isinstance(value, list):
                if len(value) != 2:
                    raise ScenarioError(f"{where}.{key}: a range is [low, high], got {value!r}")
                for v in value:
                    _num(v, f"{where}.{key}")
            else:
                _num(value, f"{where}.{key}")
    return params


def parse_event(raw: Any, creek: Creek, where: str = "event") -> EventSpec:
    """One ``[[events]]`` table (also what ``rivermon sim --inject`` sends), validated."""
    return _event(raw, creek, where)


def _event(raw: dict[str, Any], creek: Creek, where: str) -> EventSpec:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    kind = _kind(raw, where)
    tkey = KIND_TARGET[kind]
    if "at" not in raw:
        raise ScenarioError(f"{where}.at: missing (an offset like 1d2h from the run's start)")
    start = _dur(raw["at"], f"{where}.at")
    duration = _dur(raw["duration"], f"{where}.duration") if "duration" in raw else None
    if duration is None and kind not in ("node_dies", "battery", "aerator_failure", "relapse",
                                         "fouling", "spike", "clock_skew"):
        raise ScenarioError(f"{where}.duration: missing (a {kind} needs a duration)")
    target = _check_target(kind, raw.get(tkey) if tkey else None, creek, where)
    params = {k: v for k, v in raw.items() if k not in ("kind", "at", "duration", tkey)}
    params = _check_params(kind, params, where)
    rng = np.random.default_rng(0)
    params = {k: _draw(v, rng) if isinstance(v, list) else v for k, v in params.items()}
    return EventSpec(kind, start, duration, target, params, where)


def _random(raw: dict[str, Any], creek: Creek, where: str) -> RandomSpec:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    kind = _kind(raw, where)
    per_day = _num(raw.get("per_day", None), f"{where}.per_day") if "per_day" in raw else None
    if per_day is None or per_day < 0:
        raise ScenarioError(f"{where}.per_day: need a non-negative rate of events per day")
    tkey = KIND_TARGET[kind]
    targets: list[str] = []
    if tkey:
        pool = raw.get(tkey + "s", "all")
        targets = _pool(kind, tkey, pool, creek, f"{where}.{tkey}s")
    duration = None
    if "duration" in raw:
        d = raw["duration"]
        lo, hi = (d if isinstance(d, list) and len(d) == 2 else (d, d))
        duration = (_dur(lo, f"{where}.duration"), _dur(hi, f"{where}.duration"))
    elif kind not in ("node_dies", "spike"):
        raise ScenarioError(f"{where}.duration: missing (a duration or [shortest, longest])")
    params = {k: v for k, v in raw.items() if k not in ("kind", "per_day", "duration", (tkey or "") + "s")}
    params = _check_params(kind, params, where)
    return RandomSpec(kind, per_day, targets, params, duration, where)


def _pool(kind: str, what: str, pool: Any, creek: Creek, where: str) -> list[str]:
    if what == "outlet":
        if pool in ("all", "large", "small"):
            return [o.id for o in creek.outlets if pool == "all" or o.size == pool]
    elif what == "segment":
        if pool == "all":
            return [s.id for s in creek.segments]
    elif pool in ("all", "sensors", "aerators"):
        want_aerator = kind == "aerator_failure" or pool == "aerators"
        if kind in ("fouling", "stuck", "spike"):
            want_aerator = False
        return [n.id for n in creek.nodes if n.is_aerator == want_aerator]
    if not isinstance(pool, list) or not pool:
        raise ScenarioError(f"{where}: must be a list of ids or one of all/large/small/sensors/aerators")
    return [_check_target(kind, t, creek, f"{where}[{i}]") or "" for i, t in enumerate(pool)]

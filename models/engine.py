"""The detector engine shared by the live service and replay.

It owns one :class:`NodeModel` per node, one :class:`Spatial` per creek and the episode
:class:`Tracker`, routes every node finding to where it belongs (equipment faults and the
standards straight to the tracker; DO drops and turbidity rises through the creek's spatial
reasoning when the node is on the map, or as the node's own departure when it is not), and
serialises all of it to one JSON document so a restart resumes.

>>> eng = Engine(None)
>>> import numpy as np
>>> t = 1.7e9 + 60.0 * np.arange(3)
>>> eng.feed("huanglong", "x1", t, {"do_mg_l": np.array([6.0, 99.0, 6.0])})[0][0].kind
'sensor_out_of_range'
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from rivermon.core.alerts import EQUIPMENT_KINDS
from rivermon.core.topology import UNASSIGNED, Topology
from rivermon.models import texts
from rivermon.models.node import NodeModel, Params, Span
from rivermon.models.neighbours import Neighbours
from rivermon.models.spatial import Spatial, SpatialParams
from rivermon.models.tracker import Episode, Tracker

STATE_VERSION = 1
# Faults that make a node's water signals untrustworthy while they last.
FAULTS = frozenset({"sensor_stuck", "sensor_drift", "sensor_out_of_range", "node_offline"})
INTERNAL = {"do_drop": "do", "turb_rise": "turb"}
ALONE = {"do_drop": "baseline_departure", "turb_rise": "turbidity_spike"}
# Water findings at a node that an ongoing discharge or rain covering that node explains.
EXPLAINED = frozenset({"low_do", "black_odorous", "baseline_departure", "turbidity_spike"})

Event = tuple[Episode, str]  # episode and "opened" | "updated" | "severity" | "resolved"


class Engine:
    """Every detector of every node and creek, fed in time order."""

    def __init__(self, topology: Topology | None, params: Params | None = None,
                 autoresolve_s: float = 1800.0, spatial_params: SpatialParams | None = None):
        self.topology = topology
        self.params = params or Params()
        self.spatial_params = spatial_params or SpatialParams()
        self.tracker = Tracker(autoresolve_s)
        self.nodes: dict[tuple[str, str], NodeModel] = {}
        self.spatial: dict[str, Spatial] = {}
        self.neighbours: dict[str, Neighbours] = {}
        self.will_offline: dict[str, float] = {}  # "creek/node" -> when its last will arrived
        self.alive_override: Callable[[str, str, float], bool] | None = None
        self.now = float("-inf")  # latest data time seen

    # -- models ------------------------------------------------------------------------------
    def node_model(self, creek: str, node: str) -> NodeModel:
        key = (creek, node)
        m = self.nodes.get(key)
        if m is None:
            meta = self.topology.node(creek, node) if self.topology else None
            m = NodeModel(node, meta.segment if meta else UNASSIGNED,
                          meta.kind if meta else "sensor", meta.rated_w if meta else None, self.params)
            self.nodes[key] = m
        return m

    def spatial_for(self, creek: str) -> Spatial | None:
        if creek not in self.spatial:
            c = self.topology.creek(creek) if self.topology else None
            if c is None:
                return None
            self.spatial[creek] = Spatial(c, self.spatial_params)
        return self.spatial[creek]

    def neighbours_for(self, creek: str) -> Neighbours | None:
        if creek not in self.neighbours:
            c = self.topology.creek(creek) if self.topology else None
            if c is None:
                return None
            self.neighbours[creek] = Neighbours(c)
            self.neighbours[creek].tz_offset_s = self.params.tz_offset_s
        return self.neighbours[creek]

    # -- feeding -----------------------------------------------------------------------------
    def feed(self, creek: str, node: str, t: np.ndarray, cols: Mapping[str, np.ndarray]) -> list[Event]:
        """Score and learn one node's readings (any number, any order); route the findings."""
        return self.route_spans(creek, self.process(creek, node, t, cols))

    def feed_many(self, creek: str, batches: Iterable[tuple[str, np.ndarray, Mapping[str, np.ndarray]]]
                  ) -> list[Event]:
        """Several nodes' readings at once: every finding is routed in time order across nodes."""
        spans: list[Span] = []
        for node, t, cols in batches:
            spans += self.process(creek, node, t, cols)
        return self.route_spans(creek, spans)

    def process(self, creek: str, node: str, t: np.ndarray, cols: Mapping[str, np.ndarray]) -> list[Span]:
        """One node's model over its readings; the findings, not yet routed."""
        m = self.node_model(creek, node)
        spans = m.process(t, cols)
        if m.last_t is not None:
            self.now = max(self.now, m.last_t)
            self.will_offline.pop(f"{creek}/{node}", None)
        return spans

    def route_spans(self, creek: str, spans: list[Span]) -> list[Event]:
        """Route findings in time order; long water signals in the pieces a trickle would give."""
        pieces = [p for s in spans for p in pieces_of(s)]
        pieces.sort(key=lambda s: s.first)
        out: list[Event] = []
        for s in pieces:
            out += self.route(creek, s)
        return out

    def status(self, creek: str, node: str, state: str, now: float) -> list[Event]:
        """A node's status message; ``offline`` (its last will) opens node_offline at once."""
        key = f"{creek}/{node}"
        if state != "offline":
            self.will_offline.pop(key, None)
            return []
        self.will_offline.setdefault(key, now)
        m = self.node_model(creek, node)
        onset = m.last_t if m.last_t is not None else now
        return self.route(creek, Span("node_offline", node, min(onset, now), now, now, "warning", "",
                                      {"source": "will"}))

    def tick(self, now: float) -> list[Event]:
        """Deadman for silent nodes and last wills, then close quiet episodes."""
        out: list[Event] = []
        for key, since in list(self.will_offline.items()):
            creek, node = key.split("/", 1)
            out += self.route(creek, Span("node_offline", node, since, now, now, "warning", "",
                                          {"source": "will"}), expire=False)
        for (creek, node), m in list(self.nodes.items()):
            if f"{creek}/{node}" in self.will_offline:
                continue
            s = m.silence(now)
            if s is not None:
                out += self.route(creek, s, expire=False)
        out += [(ep, "resolved") for ep in self.tracker.expire(now)]
        return out

    def finish(self) -> list[Episode]:
        """Close every episode (end of a replay)."""
        return self.tracker.close_all()

    # -- routing -----------------------------------------------------------------------------
    def route(self, creek: str, s: Span, expire: bool = True) -> list[Event]:
        out: list[Event] = ([(ep, "resolved") for ep in self.tracker.expire(s.first, self._still_offline)]
                            if expire else [])
        if s.kind == "level":
            nb = self.neighbours_for(creek)
            if nb is not None and (s.node in nb.sensors or s.node in nb.aerators):
                for f in nb.observe(s.node, int(s.evidence["hour"]), s.evidence, s.first):
                    sp = self.spatial_for(creek)
                    sensor = f.evidence.get("sensor", f.node)
                    if f.kind == "sensor_drift" or sp is None or not (
                            sp.explains(sensor, f.first) or sp.explains(sensor, f.first - 86400.0)):
                        out.append(self._add(creek, f.segment, f.node, f.kind, f.onset, f.first,
                                             f.last, f.severity, f.evidence))
            return out
        if s.kind in INTERNAL:
            sp = self.spatial_for(creek)
            if sp is not None and sp.knows(s.node):
                for f in sp.observe(s.node, INTERNAL[s.kind], s.onset, s.first, s.last, s.evidence,
                                    lambda n, t: self._alive(creek, n, t),
                                    lambda n, t: self._faulty(creek, n, t)):
                    out.append(self._add(creek, f.segment, f.node, f.kind, f.onset, f.first, f.last,
                                         f.severity, f.evidence))
                return out
            kind = ALONE[s.kind]
        else:
            kind = s.kind
            if kind == "sensor_drift" and s.evidence.get("source") == "own_pattern":
                sp = self.spatial_for(creek)
                if sp is not None and sp.knows(s.node) and sp.explains(s.node, s.onset):
                    return out  # the shift began with a rain or discharge: the water's, not the probe's
            if kind in EXPLAINED:
                sp = self.spatial_for(creek)
                if sp is not None and sp.knows(s.node) and sp.explains(s.node, s.first):
                    return out  # the discharge or rain alert already says it: no alert storm
                if self._faulty(creek, s.node, s.first):
                    return out  # the probe is known to be wrong: its readings say nothing of the water
        seg = self.node_model(creek, s.node).segment
        if kind == "low_do" and self.tracker.active.get((creek, seg, s.node, "black_odorous")):
            # black-odorous already says it, louder: keep an open low_do alive, open none
            ep = self.tracker.active.get((creek, seg, s.node, "low_do"))
            if ep is not None:
                ep.last = max(ep.last, s.last)
            return out
        ev = dict(s.evidence)
        out.append(self._add(creek, seg, s.node, kind, s.onset, s.first, s.last, s.severity, ev))
        return out

    def _add(self, creek: str, segment: str, node: str, kind: str, onset: float, first: float,
             last: float, severity: str, evidence: dict[str, Any]) -> Event:
        ev = dict(evidence)
        ev["sentence"] = texts.sentence(kind, node, ev)
        return self.tracker.add(creek, segment, node, kind, onset, first, last, severity, ev)

    def _alive(self, creek: str, node: str, t: float) -> bool:
        if self.alive_override is not None:
            return self.alive_override(creek, node, t)
        m = self.nodes.get((creek, node))
        return m is not None and m.last_t is not None and t - m.last_t <= self.spatial_params.hold_s

    def _still_offline(self, ep: Episode, t: float) -> bool:
        """A node_offline episode whose node is still silent (or its last will stands) at ``t``.

        Other nodes' readings arriving in a burst (a queue drained after an outage) move data
        time on by hours between two deadman ticks; the silent node's alert must stay open, not
        be resolved by them only for the next tick to open a second one.
        """
        if ep.kind != "node_offline":
            return False
        if f"{ep.creek}/{ep.node}" in self.will_offline:
            return True
        m = self.nodes.get((ep.creek, ep.node))
        return m is not None and m.silence(t) is not None

    def _faulty(self, creek: str, node: str, t: float) -> bool:
        return self.tracker.is_active(creek, node, FAULTS, t)

    # -- state -------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "params": self.params.to_dict(),
            "nodes": [{"creek": c, "node": n, "state": m.state} for (c, n), m in self.nodes.items()],
            "spatial": {c: s.to_state() for c, s in self.spatial.items()},
            "neighbours": {c: n.to_state() for c, n in self.neighbours.items()},
            "tracker": self.tracker.to_state(),
            "will_offline": self.will_offline,
            "now": self.now if self.now != float("-inf") else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`to_state` output (topology and params come from the caller)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"model state version {state.get('version')!r} is not {STATE_VERSION}")
        for item in state.get("nodes", []):
            m = self.node_model(item["creek"], item["node"])
            m.state = item["state"]
        for creek, s in state.get("spatial", {}).items():
            c = self.topology.creek(creek) if self.topology else None
            if c is not None:
                self.spatial[creek] = Spatial(c, self.spatial_params, s)
        for creek, s in state.get("neighbours", {}).items():
            c = self.topology.creek(creek) if self.topology else None
            if c is not None:
                self.neighbours[creek] = Neighbours(c, state=s)
                self.neighbours[creek].tz_offset_s = self.params.tz_offset_s
        self.tracker = Tracker.from_state(state.get("tracker", {}))
        self.will_offline = dict(state.get("will_offline", {}))
        self.now = state.get("now") if state.get("now") is not None else float("-inf")


CHOP_S = 300.0
FINE_S = 30.0


def pieces_of(sp: Span) -> list[Span]:
    """Cut a long water-signal span into 5-minute pieces, so the creek is judged as it evolves
    however the readings were batched (a replay hands over each node's whole series at once)."""
    if sp.kind not in INTERNAL or sp.last - sp.first <= FINE_S:
        return [sp]
    # the first minutes finely: a new signal is confirmed (SpatialParams.confirm_s) as soon as a
    # trickle of 1-minute readings would confirm it, not at the end of a 5-minute piece
    fine = np.arange(sp.first, min(sp.last, sp.first + CHOP_S), FINE_S)
    edges = fine.tolist() + np.arange(sp.first + CHOP_S, sp.last, CHOP_S).tolist() + [sp.last]
    return [Span(sp.kind, sp.node, sp.onset, a, b, sp.severity, sp.field, sp.evidence)
            for a, b in zip(edges[:-1], edges[1:])]


def episodes_sorted(eps: Iterable[Episode]) -> list[Episode]:
    return sorted(eps, key=lambda e: (e.start, e.node, e.kind))


def is_equipment(kind: str) -> bool:
    return kind in EQUIPMENT_KINDS

"""Scoring alerts against labelled truth: event-wise P/R/F1, point-wise F1, delay, false alerts.

Conventions (printed with every table):

- an event is *caught* when an alert of a matching kind, at a matching place, overlaps it
  widened by the tolerance on both sides; an alert is *true* when it overlaps some event of its
  kind group so widened, else it is a false alert;
- point-wise F1 is unadjusted: every reading inside a truth interval is a positive, every reading
  inside an alert interval a prediction (no point-adjust);
- delay is from the event's start to the first flag of the first matching alert (``detected``);
- false alerts per node-day count alerts overlapping no truth record at all (of any kind, e.g.
  a simulated network fault), over the number of nodes times the days of data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

# Alert kinds that answer a truth kind (the standards speak in two strengths of one thing).
GROUPS: dict[str, frozenset[str]] = {
    "black_odorous": frozenset({"black_odorous", "low_do"}),
    "low_do": frozenset({"black_odorous", "low_do"}),
    "sensor_drift": frozenset({"sensor_drift"}),
    "anomaly": frozenset(),  # any alert kind answers a generic anomaly label
}


@dataclass
class Event:
    """A labelled truth interval."""

    kind: str
    start: float
    end: float
    node: str | None = None
    segment: str | None = None
    nodes: tuple[str, ...] = ()      # nodes it shows at (empty: the node, or everywhere)
    outlet: str | None = None
    first_arrival: float | None = None
    scored: bool = True              # False: used only to excuse alerts (e.g. network faults)


@dataclass
class Alert:
    """An alert interval from the model or a baseline."""

    kind: str
    start: float
    end: float
    detected: float
    node: str | None = None
    segment: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def kinds_for(truth_kind: str) -> frozenset[str]:
    return GROUPS.get(truth_kind, frozenset({truth_kind}))


def place_ok(ev: Event, al: Alert, seg_of: dict[str, str]) -> bool:
    if ev.nodes:
        return al.node in ev.nodes or not al.node
    if ev.node:
        return al.node == ev.node or not al.node
    if ev.segment:
        return (al.segment == ev.segment or seg_of.get(al.node or "") == ev.segment or not al.node
                or ev.kind in ("black_odorous", "low_do", "discharge"))
    return True


def _kind_ok(ev: Event, al: Alert, generic: bool) -> bool:
    if generic or ev.kind == "anomaly":
        return True
    return al.kind in kinds_for(ev.kind)


def _overlap(ev: Event, al: Alert, tol: float) -> bool:
    return al.start <= ev.end + tol and al.end >= ev.start - tol


@dataclass
class Row:
    kind: str
    method: str
    events: int
    caught: int
    alerts: int
    true_alerts: int
    point_f1: float | None
    delays: list[float]
    false_alerts: int
    node_days: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def recall(self) -> float | None:
        return self.caught / self.events if self.events else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else (None if not self.events else 0.0)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def delay_median(self) -> float | None:
        return float(np.median(self.delays)) if self.delays else None

    @property
    def delay_p90(self) -> float | None:
        return float(np.percentile(self.delays, 90)) if self.delays else None

    @property
    def false_per_node_day(self) -> float | None:
        return self.false_alerts / self.node_days if self.node_days else None


def score(kind: str, method: str, events: list[Event], alerts: list[Alert], tol: float,
          node_days: float, seg_of: dict[str, str], generic: bool,
          points: "PointSet | None" = None) -> Row:
    """One row: the events of ``kind`` against the alerts that may answer them."""
    evs = [e for e in events if e.scored and (kind == "any" or e.kind == kind)]
    if generic or kind in ("any", "anomaly"):
        cand = list(alerts)
    else:
        cand = [a for a in alerts if a.kind in kinds_for(kind)]
    caught, delays = 0, []
    for ev in evs:
        hits = [a for a in cand if _overlap(ev, a, tol) and place_ok(ev, a, seg_of)
                and _kind_ok(ev, a, generic or kind == "any")]
        if hits:
            caught += 1
            first = min(a.detected for a in began_with(ev, hits, tol))
            delays.append(max(0.0, first - ev.start))
    true_alerts = sum(1 for a in cand if any(_overlap(ev, a, tol) and place_ok(ev, a, seg_of)
                                              for ev in evs))
    false = sum(1 for a in cand if not any(_overlap(ev, a, tol) and place_ok(ev, a, seg_of)
                                           for ev in events))
    pf1 = points.f1(evs, cand) if points is not None and evs else None
    return Row(kind, method, len(evs), caught, len(cand), true_alerts, pf1, delays, false, node_days)


def began_with(ev: Event, hits: list[Alert], tol: float) -> list[Alert]:
    """The hits that began with the event (not an earlier alert still running when it started),
    or all of them when none did: its delay and its outlet are judged on those."""
    own = [a for a in hits if a.start >= ev.start - tol]
    return own or hits


@dataclass
class PointSet:
    """Reading times per node, and (for real data) per-reading labels."""

    times: dict[str, np.ndarray]
    labels: dict[str, np.ndarray] | None = None
    eval_from: float | None = None

    def _mask(self, node: str, intervals: Iterable[tuple[float, float]]) -> np.ndarray:
        t = self.times[node]
        m = np.zeros(t.size, bool)
        for a, b in intervals:
            m[np.searchsorted(t, a, "left"):np.searchsorted(t, b, "right")] = True
        return m

    def f1(self, events: list[Event], alerts: list[Alert]) -> float | None:
        tp = fp = fn = 0
        for node, t in self.times.items():
            keep = t >= self.eval_from if self.eval_from is not None else np.ones(t.size, bool)
            if self.labels is not None:
                truth = self.labels[node]
            else:
                truth = self._mask(node, [(e.start, e.end) for e in events
                                          if (not e.nodes and not e.node) or e.node == node or node in e.nodes])
            pred = self._mask(node, [(a.start, a.end) for a in alerts if not a.node or a.node == node])
            truth, pred = truth[keep], pred[keep]
            tp += int(np.count_nonzero(truth & pred))
            fp += int(np.count_nonzero(~truth & pred))
            fn += int(np.count_nonzero(truth & ~pred))
        if tp + fp + fn == 0:
            return None
        return 2 * tp / (2 * tp + fp + fn)


def events_from_labels(t: np.ndarray, labels: np.ndarray, node: str, max_gap_s: float) -> list[Event]:
    """Runs of labelled readings as events (runs closer than ``max_gap_s`` are one event)."""
    idx = np.flatnonzero(labels)
    if idx.size == 0:
        return []
    out: list[Event] = []
    start = prev = idx[0]
    for i in idx[1:]:
        if t[i] - t[prev] > max_gap_s:
            out.append(Event("anomaly", float(t[start]), float(t[prev]), node=node))
            start = i
        prev = i
    out.append(Event("anomaly", float(t[start]), float(t[prev]), node=node))
    return out

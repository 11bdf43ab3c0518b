"""From findings to events: one episode per ongoing condition, closed after it stays clear.

The live service turns episodes into alerts (``rivermon.core.alerts``); replay writes them as
CSV rows. An episode of a (creek, segment, node, kind) is extended by every finding of the same
key until its condition has been clear for ``autoresolve_s`` of data time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from rivermon.core.alerts import SEVERITIES

Key = tuple[str, str, str, str]  # creek, segment, node ("" for none), kind
Change = Literal["opened", "updated", "severity"]


@dataclass
class Episode:
    creek: str
    segment: str
    node: str
    kind: str
    start: float           # when the condition began (onset)
    detected: float        # when it was first flagged
    last: float            # last time it was seen
    severity: str
    evidence: dict[str, Any] = field(default_factory=dict)
    end: float | None = None

    @property
    def key(self) -> Key:
        return (self.creek, self.segment, self.node, self.kind)

    def to_state(self) -> dict[str, Any]:
        return dict(vars(self))


class Tracker:
    """Active episodes per key; ``add`` merges, ``expire`` closes the quiet ones."""

    def __init__(self, autoresolve_s: float = 1800.0):
        self.autoresolve_s = autoresolve_s
        self.active: dict[Key, Episode] = {}

    def add(self, creek: str, segment: str, node: str, kind: str, onset: float, first: float,
            last: float, severity: str, evidence: dict[str, Any]) -> tuple[Episode, Change]:
        key = (creek, segment, node, kind)
        ep = self.active.get(key)
        if (ep is not None and first - ep.last > self.autoresolve_s
                and not (kind == "node_offline" and onset <= ep.last)):
            # caller did not expire in time; treat as a new condition (but a silence that
            # began before the episode was last seen is the same silence going on)
            ep = None
        if ep is None:
            ep = Episode(creek, segment, node, kind, min(onset, first), first, last, severity, evidence)
            self.active[key] = ep
            return ep, "opened"
        change: Change = "updated"
        if SEVERITIES.index(severity) > SEVERITIES.index(ep.severity):
            ep.severity, change = severity, "severity"
        ep.last = max(ep.last, last)
        ep.evidence = evidence
        return ep, change

    def expire(self, now: float, keep: Callable[[Episode, float], bool] | None = None) -> list[Episode]:
        """Close every episode whose condition has been clear for ``autoresolve_s``
        (except those ``keep(episode, now)`` says still hold)."""
        done = [ep for ep in self.active.values() if now - ep.last > self.autoresolve_s
                and not (keep is not None and keep(ep, now))]
        for ep in done:
            ep.end = ep.last
            del self.active[ep.key]
        return done

    def close_all(self) -> list[Episode]:
        done = list(self.active.values())
        for ep in done:
            ep.end = ep.last
        self.active.clear()
        return done

    def is_active(self, creek: str, node: str, kinds: frozenset[str] | set[str], at: float) -> bool:
        return any(ep.creek == creek and ep.node == node and ep.kind in kinds and ep.start <= at
                   for ep in self.active.values())

    def to_state(self) -> dict[str, Any]:
        return {"autoresolve_s": self.autoresolve_s,
                "active": [ep.to_state() for ep in self.active.values()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Tracker":
        t = cls(state.get("autoresolve_s", 1800.0))
        for d in state.get("active", []):
            ep = Episode(**d)
            t.active[ep.key] = ep
        return t

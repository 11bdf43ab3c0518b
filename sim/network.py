"""How a node's readings reach the broker: sequence numbers, clocks, radio and delivery faults.

Each node stamps its readings with its own clock (``clock_skew`` shifts it), numbers them with
``seq`` and sends them one per message. Faults: a dropped reading is never sent (its ``seq`` is
skipped); a duplicate is sent twice (a lost PUBACK, then the retry); a reordered reading is held
back and sent after the next one; during a radio outage the node keeps its readings and sends
them as backlog arrays (at most 1000 each) when the link returns, after the broker has published
its last will; a dead node sends nothing ever again and its will says offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_BACKLOG = 1000


@dataclass
class Message:
    """Something a node sends (or the broker sends for it), at sim time ``at``."""

    node: str
    at: float
    channel: str                      # "telemetry" or "status"
    payload: Any                      # a reading dict, a list of them, or a status dict
    will: bool = False                # a status the broker publishes as the node's last will

    @property
    def is_backlog(self) -> bool:
        """True for a backlog array."""
        return isinstance(self.payload, list)


@dataclass
class NodeLink:
    """Delivery state of one node."""

    node: str
    phase_s: float
    fw: str = "sim-1.0"
    seq: int = 0
    alive: bool = True
    outage: bool = False
    skew_s: float = 0.0
    dropout: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, Any] | None = None

    def status(self, state: str, at: float, will: bool = False) -> Message:
        """A status message of this node."""
        return Message(self.node, at, "status", {"state": state, "fw": self.fw}, will)

    def send(self, t: float, fields: dict[str, Any], u: tuple[float, float, float]) -> list[Message]:
        """Stamp one reading taken at step time ``t``; return what goes on the wire now."""
        if not self.alive:
            return []
        self.seq += 1
        reading = {"ts": _ts(t + self.phase_s + self.skew_s), "seq": self.seq, **fields}
        if u[0] < self.dropout:
            return []
        at = t + self.phase_s
        if self.outage:
            self.buffer.append(reading)
            return []
        out: list[Message] = []
        if self.held is None and u[2] < self.reorder:
            self.held = reading
            return []
        out.append(Message(self.node, at, "telemetry", reading))
        if u[1] < self.duplicate:
            out.append(Message(self.node, at, "telemetry", dict(reading)))
        if self.held is not None:
            out.append(Message(self.node, at, "telemetry", self.held))
            self.held = None
        return out

    def send_now(self, at: float, fields: dict[str, Any]) -> list[Message]:
        """An extra reading sent at once (an aerator confirming a command); no random faults."""
        if not self.alive:
            return []
        self.seq += 1
        reading = {"ts": _ts(at + self.skew_s), "seq": self.seq, **fields}
        if self.outage:
            self.buffer.append(reading)
            return []
        return [Message(self.node, at, "telemetry", reading)]

    def start_outage(self, at: float) -> list[Message]:
        """The radio drops: the broker publishes the will; readings are kept from now."""
        self.outage = True
        if self.held is not None:
            self.buffer.append(self.held)
            self.held = None
        return [self.status("offline", at, will=True)]

    def end_outage(self, at: float) -> list[Message]:
        """The link is back: online again, then the kept readings as backlog arrays."""
        self.outage = False
        out = [self.status("online", at)]
        for i in range(0, len(self.buffer), MAX_BACKLOG):
            out.append(Message(self.node, at, "telemetry", self.buffer[i:i + MAX_BACKLOG]))
        self.buffer = []
        return out

    def die(self, at: float) -> list[Message]:
        """The node dies: the will, and silence for ever."""
        if not self.alive:
            return []
        self.alive = False
        self.buffer, self.held = [], None
        return [self.status("offline", at, will=True)]


def _ts(x: float) -> float | int:
    """Whole seconds as an int (shorter JSON and CSV), else milliseconds."""
    r = round(x, 3)
    return int(r) if r == int(r) else r

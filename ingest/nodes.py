"""What the ingestor knows about each node: state, last seen, seq gaps and repeats, battery.

Fed from the hot path (one dict update per message), read by /metrics. The same facts are in
InfluxDB for the panel: ``node_status`` (state changes, fw, registered) and ``telemetry``
(``seq``, ``battery_v``, the time of the last reading). Behind a shared subscription each
ingestor sees only its share of a node's messages, so the seq counters here are exact only
with one ingestor; the panel's authority for gaps is the ``seq`` field in InfluxDB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

# Recent seqs remembered per node to tell a repeat from a late reading filling a gap.
SEQ_WINDOW = 256
# Nodes tracked at most (the shipped creek has 20; a big deployment a few thousand).
MAX_NODES = 10_000


@dataclass(slots=True)
class NodeState:
    creek: str
    node: str
    segment: str
    kind: str
    registered: bool
    state: str = "unknown"
    fw: str = ""
    last_seen: float = 0.0  # arrival time of the last reading (Unix s)
    last_ts: float = 0.0  # newest reading ts (Unix s)
    readings: int = 0
    seq_max: int = -1
    seq_gaps: int = 0
    seq_repeats: int = 0
    battery_v: float | None = None
    recent: set[int] = field(default_factory=set)


class NodeTracker:
    """Per-node counters, keyed by (creek, node)."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, str], NodeState] = {}
        self.lock = threading.Lock()
        self.untracked = 0
        self.spare = NodeState("", "", "", "", False)  # absorbs updates past MAX_NODES

    def _get(self, creek: str, node: str, tags: Any) -> NodeState:
        st = self.nodes.get((creek, node))
        if st is None:
            if len(self.nodes) >= MAX_NODES:
                # A flood of made-up node ids must not grow memory or /metrics without bound;
                # their readings are still stored, only not tracked here.
                self.untracked += 1
                return self.spare
            with self.lock:
                st = self.nodes.setdefault((creek, node), NodeState(
                    creek, node, tags.segment, tags.kind, tags.registered))
        return st

    def readings(self, creek: str, node: str, tags: Any, readings: Iterable[Any], now: float) -> None:
        """Count readings, track seq gaps and repeats, remember battery and last seen."""
        st = self._get(creek, node, tags)
        st.last_seen = now
        for r in readings:
            st.readings += 1
            ts = r.ts_ms / 1000.0
            if ts > st.last_ts:
                st.last_ts = ts
                battery = r.fields.get("battery_v")
                if battery is not None:
                    st.battery_v = battery
            if r.seq is not None:
                self._seq(st, r.seq)

    @staticmethod
    def _seq(st: NodeState, seq: int) -> None:
        if seq in st.recent:
            st.seq_repeats += 1
            return
        if st.seq_max < 0:
            st.seq_max = seq
        elif seq > st.seq_max:
            st.seq_gaps += seq - st.seq_max - 1
            st.seq_max = seq
        elif st.seq_gaps > 0 and seq > st.seq_max - SEQ_WINDOW:
            st.seq_gaps -= 1  # a late reading filled an earlier gap
        st.recent.add(seq)
        if len(st.recent) > 2 * SEQ_WINDOW:  # prune rarely: once per SEQ_WINDOW new seqs
            low = st.seq_max - SEQ_WINDOW
            st.recent = {s for s in st.recent if s > low}

    def status(self, creek: str, node: str, tags: Any, status: Any, now: float) -> bool:
        """Record a status message; True when state or firmware changed."""
        st = self._get(creek, node, tags)
        fw = status.fw or ""
        changed = (status.state, fw) != (st.state, st.fw)
        st.state, st.fw = status.state, fw
        return changed

    def snapshot(self) -> list[NodeState]:
        with self.lock:
            return list(self.nodes.values())

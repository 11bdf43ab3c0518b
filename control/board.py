"""What the controller knows of the creek: each sensor's recent DO, which sensors can be trusted.

A segment's DO is the lowest of its usable sensors (the conservative choice for life support),
each sensor's value the lower of its newest reading and the median of its last three (a wild
high spike cannot switch aerators off; a low one may switch them on a little early). A
sensor is not usable when it is offline (its status or last will), has an open sensor-fault
alert (stuck, spike, drift, out of range), or its newest reading is older than ``stale_s``.
No usable sensor: the DO is unknown and the controller falls back to its schedule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median

from rivermon.core.topology import Creek

# Alert kinds that say a sensor's readings cannot be trusted for control.
SENSOR_FAULT_KINDS = frozenset({"sensor_stuck", "sensor_spike", "sensor_drift",
                                "sensor_out_of_range"})
MEDIAN_OF = 3
TREND_WINDOW_S = 1800.0   # how far back the rate of change looks
TREND_MIN_SPAN_S = 900.0  # a shorter history says nothing about a trend


@dataclass
class _Sensor:
    recent: deque = field(default_factory=lambda: deque(maxlen=MEDIAN_OF))  # (ts, value)
    history: deque = field(default_factory=deque)  # (ts, value) over TREND_WINDOW_S
    online: bool = True
    faulty: bool = False


class DoBoard:
    """Recent DO per sensor node of one creek and each segment's usable value."""

    def __init__(self, creek: Creek, stale_s: float = 900.0):
        self.creek = creek
        self.stale_s = stale_s
        self.sensors: dict[str, _Sensor] = {n.id: _Sensor() for n in creek.nodes if not n.is_aerator}

    def reading(self, node: str, ts: float, do_mg_l: float) -> None:
        """A DO reading of a sensor node (unknown nodes and aerators are ignored)."""
        s = self.sensors.get(node)
        if s is None:
            return
        if s.recent and ts <= s.recent[-1][0]:
            # a late (backlog) or repeated reading: keep the windows in time order
            for window, keep in ((s.recent, MEDIAN_OF), (s.history, None)):
                items = sorted({*window, (ts, do_mg_l)})
                window.clear()
                window.extend(items[-keep:] if keep else items)
        else:
            s.recent.append((ts, do_mg_l))
            s.history.append((ts, do_mg_l))
        while s.history and s.history[0][0] < s.history[-1][0] - TREND_WINDOW_S:
            s.history.popleft()

    def set_online(self, node: str, online: bool) -> None:
        if node in self.sensors:
            self.sensors[node].online = online

    def set_faulty(self, node: str, faulty: bool) -> None:
        if node in self.sensors:
            self.sensors[node].faulty = faulty

    def node_do(self, node: str, now: float) -> tuple[float | None, str]:
        """(median DO, "") or (None, why not usable)."""
        s = self.sensors[node]
        if not s.online:
            return None, f"{node} offline"
        if s.faulty:
            return None, f"{node} sensor fault"
        if not s.recent:
            return None, f"{node} no reading yet"
        age = now - s.recent[-1][0]
        if age > self.stale_s:
            return None, f"{node} stale {int(age // 60)} min"
        # a wild high sample must not switch aerators off (median), a low one may switch them on
        # early (the newest): when in doubt, aerate
        return min(median(v for _, v in s.recent), s.recent[-1][1]), ""

    def segment_do(self, segment: str, now: float) -> tuple[float | None, str]:
        """The segment's DO (lowest usable sensor) or (None, why it is unknown)."""
        values, why = [], []
        for n in self.creek.nodes_in(segment, "sensor"):
            v, reason = self.node_do(n.id, now)
            if v is None:
                why.append(reason)
            else:
                values.append(v)
        if values:
            return min(values), ""
        return None, "; ".join(why) or "no DO sensor in the segment"

    def node_trend(self, node: str) -> float | None:
        """Rate of change of a sensor's DO over the last half hour (mg/L per hour), or None."""
        h = list(self.sensors[node].history)
        if len(h) < 2 * MEDIAN_OF or h[-1][0] - h[0][0] < TREND_MIN_SPAN_S:
            return None
        first, last = h[:MEDIAN_OF], h[-MEDIAN_OF:]
        dt = median(t for t, _ in last) - median(t for t, _ in first)
        return (median(v for _, v in last) - median(v for _, v in first)) / dt * 3600.0

    def segment_trend(self, segment: str, now: float) -> float | None:
        """The steepest fall (or slowest rise) among the segment's usable sensors, mg/L per hour."""
        trends = [self.node_trend(n.id) for n in self.creek.nodes_in(segment, "sensor")
                  if self.node_do(n.id, now)[0] is not None]
        trends = [x for x in trends if x is not None]
        return min(trends) if trends else None

    def downstream_do(self, segment: str, now: float) -> tuple[str, float] | None:
        """(segment, DO) of the reach below ``segment`` under normal flow, when known."""
        below = self.creek.segment(segment).downstream
        if below is None:
            return None
        do, _ = self.segment_do(below, now)
        return None if do is None else (below, do)

"""Slow comparisons between neighbouring nodes: probe drift/fouling and aerators that do nothing.

Every hour each sensor node's DO level is compared with the median of the other nodes of its
creek (the *residual*). A node's residual is steady while nothing changes: the creek's weather
and daily cycle move all nodes together.

- **sensor_drift**: the node's residual over the last day has moved away from what it was
  learned to be, while its nearest neighbours have not moved with it (a water event, such as a
  reach relapsing towards black-odorous, moves a reach, not one probe), in the hours when its
  aerator is off as much as when it runs;
- **aerator_fault (no_response)**: the aerator of the node's segment reports running with power,
  yet the node's residual sinks only in the hours the aerator runs.

Learning happens once a day, from days without a finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rivermon.core.topology import Creek
from rivermon.models.spatial import Finding


@dataclass
class NeighbourParams:
    drift_min_mg_l: float = 0.8
    drift_k: float = 4.0
    aerator_min_mg_l: float = 0.2
    aerator_k: float = 3.0
    learn_days: int = 2
    window_h: int = 24
    lag_h: int = 2          # an hour is judged once levels two hours later have arrived
    alpha: float = 0.5
    alpha_slow: float = 0.05
    persist_h: int = 6      # hours in a row before a finding is raised


class Neighbours:
    """Hourly DO levels of a creek's nodes and aerator duty, and what they say."""

    def __init__(self, creek: Creek, params: NeighbourParams | None = None,
                 state: dict[str, Any] | None = None):
        self.creek = creek
        self.p = params or NeighbourParams()
        self.sensors = {n.id: n for n in creek.nodes if n.kind == "sensor"}
        self.aerators = {n.id: n for n in creek.nodes if n.kind == "aerator"}
        st = state or {}
        self.levels: dict[str, dict[str, float]] = st.get("levels", {})    # hour -> node -> DO
        self.duty: dict[str, dict[str, list[float]]] = st.get("duty", {})   # hour -> aerator -> [on, W]
        self.nodes: dict[str, dict[str, Any]] = st.get("nodes", {})
        self.done: int | None = st.get("done")

    def to_state(self) -> dict[str, Any]:
        return {"levels": self.levels, "duty": self.duty, "nodes": self.nodes, "done": self.done}

    def observe(self, node: str, hour: int, values: dict[str, float], t: float) -> list[Finding]:
        if node in self.sensors and "do_mg_l" in values:
            self.levels.setdefault(str(hour), {})[node] = values["do_mg_l"]
        elif node in self.aerators and "on" in values:
            self.duty.setdefault(str(hour), {})[node] = [values["on"], values.get("power_w", 0.0)]
        else:
            return []
        out: list[Finding] = []
        if not self.levels:
            return out
        upto = hour - self.p.lag_h
        start = self.done + 1 if self.done is not None else min(int(h) for h in self.levels)
        for h in range(start, upto + 1):
            out += self._judge(h, t)
            self.done = h
        for key in [k for k in self.levels if int(k) < upto - self.p.window_h - 2]:
            del self.levels[key]
        for key in [k for k in self.duty if int(k) < upto - self.p.window_h - 2]:
            del self.duty[key]
        return out

    # -- one hour ---------------------------------------------------------------------------
    def _judge(self, h: int, now: float) -> list[Finding]:
        lv = self.levels.get(str(h), {})
        if len(lv) < 2:
            return []
        for n, x in lv.items():
            others = sorted(v for m, v in lv.items() if m != n)
            k = len(others) // 2
            med = others[k] if len(others) % 2 else 0.5 * (others[k - 1] + others[k])
            st = self.nodes.setdefault(n, {"hist": [], "days": 0, "base": None, "spread": None,
                                           "base_on": None, "base_off": None, "flag": None})
            st["hist"] = (st["hist"] + [[h, x - med, self._on(n, h)]])[-self.p.window_h:]
        out: list[Finding] = []
        for n in lv:
            out += self._check(n, h, now)
        if (h + 1) % 24 == 0:
            for n in lv:
                self._learn(n)
        return out

    def _on(self, node: str, h: int) -> float | None:
        seg = self.sensors[node].segment
        duty = self.duty.get(str(h), {})
        vals = [d[0] for a, d in duty.items() if self.aerators[a].segment == seg]
        return sum(vals) / len(vals) if vals else None

    def _stats(self, st: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
        hist = st["hist"]
        if len(hist) < self.p.window_h // 2:
            return None, None, None
        allm = sum(r[1] for r in hist) / len(hist)
        on = [r[1] for r in hist if r[2] is not None and r[2] >= 0.8]
        off = [r[1] for r in hist if r[2] is None or r[2] <= 0.2]
        return allm, (sum(on) / len(on) if on else None), (sum(off) / len(off) if off else None)

    def _check(self, n: str, h: int, now: float) -> list[Finding]:
        st = self.nodes[n]
        if st["days"] < self.p.learn_days or st["base"] is None:
            return []
        allm, on, off = self._stats(st)
        if allm is None:
            return []
        dev = allm - st["base"]
        spread = st["spread"] or 0.0
        t = now  # judged now, about the day up to hour h
        out: list[Finding] = []
        dthr = max(self.p.drift_min_mg_l, self.p.drift_k * spread)
        on_dev = (on - st["base_on"]) if (on is not None and st["base_on"] is not None) else None
        off_dev = (off - st["base_off"]) if (off is not None and st["base_off"] is not None) else None
        athr = max(self.p.aerator_min_mg_l, self.p.aerator_k * spread)
        aer_only = (on_dev is not None and on_dev < -athr and
                    (off_dev is None or off_dev > on_dev / 3))
        st["aer_run"] = st.get("aer_run", 0) + 1 if aer_only else 0
        if aer_only and st["aer_run"] >= self.p.persist_h:
            a = self._aerator_of(n, h)
            if a is not None:
                out.append(Finding("aerator_fault", self.aerators[a].segment, a, t - self.p.persist_h * 3600,
                                   t, t + 3600.0, "warning",
                                   {"mode": "no_response", "sensor": n, "deficit": round(-on_dev, 2),
                                    "power_w": round(self.duty.get(str(h), {}).get(a, [0, 0])[1], 1)}))
                st["flag"] = "aerator"
                return out
        drifting = abs(dev) > dthr and not self._shared(n, dev)
        st["drift_run"] = st.get("drift_run", 0) + 1 if drifting else 0
        if drifting and st["drift_run"] >= self.p.persist_h:
            onset = st.get("drift_onset") or (t - 12 * 3600)
            st["drift_onset"] = onset
            # judged hourly: the finding holds until the next judgement
            out.append(Finding("sensor_drift", self.sensors[n].segment, n, onset, t, t + 3600.0, "warning",
                               {"field": "do_mg_l", "divergence": round(dev, 2),
                                "neighbours": self._nearest(n), "hours": self.p.window_h}))
            st["flag"] = "drift"
        elif not drifting:
            st["drift_onset"] = None
        return out

    def _shared(self, n: str, dev: float) -> bool:
        """Do the nearest neighbours show the same change (then it is the water)?"""
        for m in self._nearest(n):
            sm = self.nodes.get(m)
            if not sm or sm["base"] is None:
                continue
            am = self._stats(sm)[0]
            if am is not None and (am - sm["base"]) * dev > 0 and abs(am - sm["base"]) >= 0.5 * abs(dev):
                return True
        return False

    def _nearest(self, n: str) -> list[str]:
        node = self.sensors[n]
        pos = self.creek.flow_position(node.channel, node.chainage_m)
        others = sorted((abs(self.creek.flow_position(m.channel, m.chainage_m) - pos), m.id)
                        for m in self.sensors.values() if m.id != n)
        return [m for _, m in others[:2]]

    def _aerator_of(self, n: str, h: int) -> str | None:
        seg = self.sensors[n].segment
        duty = self.duty.get(str(h), {})
        running = [a for a, d in duty.items() if self.aerators[a].segment == seg and d[1] > 0]
        cands = running or [a.id for a in self.aerators.values() if a.segment == seg]
        return cands[0] if cands else None

    def _learn(self, n: str) -> None:
        st = self.nodes[n]
        allm, on, off = self._stats(st)
        flagged = st["flag"] is not None
        st["flag"] = None
        if allm is None or flagged:
            return
        # quick while learning, then slow: a drift of a fraction of a mg/L a day must not be
        # learned away before it shows; the spread only learns from ordinary days
        a = self.p.alpha if st["days"] < self.p.learn_days else self.p.alpha_slow
        if st["base"] is None:
            st["base"], st["spread"] = allm, 0.0
        else:
            d = abs(allm - st["base"])
            if st["days"] == 1:
                st["spread"] = d
            elif d <= 3 * max(st["spread"], 0.1):
                st["spread"] += a * (d - st["spread"])
            st["base"] += a * (allm - st["base"])
        for key, v in (("base_on", on), ("base_off", off)):
            if v is not None:
                st[key] = v if st[key] is None else st[key] + a * (v - st[key])
        st["days"] += 1

    def _tz(self) -> float:
        return self.tz_offset_s

    tz_offset_s: float = 8 * 3600.0


def hour_of(t: float, tz_offset_s: float) -> int:
    return int(math.floor((t + tz_offset_s) / 3600.0))

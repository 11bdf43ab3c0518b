"""Creek-level reasoning: a discharge travels downstream from an outlet, rain hits everywhere.

Node models report water signals (a DO drop, a turbidity rise at one node). Here they are put
on the creek's map (``rivermon.core.topology``):

- **rain**: turbidity rises at a large share of the reporting nodes within a short window, on
  more than one channel when the creek has several (no single outlet could do that);
- **discharge**: otherwise. The node whose signal began first is nearest the source. The
  arrival order says which way the water moved (normally downstream; a sluice or the tide can
  stall or reverse it), and the likely outlets are those between the last normal node and the
  first abnormal one, on the side the water came from. Large outlets are named first.

The same code runs live and in replay: both call :meth:`Spatial.observe` in time order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from rivermon.core.topology import Creek, Node, Outlet


@dataclass
class SpatialParams:
    hold_s: float = 900.0          # a node's signal counts this long after it was last seen
    rain_frac: float = 0.5         # share of reporting nodes with a turbidity rise
    rain_min_nodes: int = 3
    rain_window_s: float = 1800.0  # their onsets lie within this window
    order_min_s: float = 60.0      # onsets closer than this say nothing about direction
    large_turbidity_ratio: float = 2.5  # peak/usual turbidity at the first node: a large outlet
    large_do_drop_mg_l: float = 2.0     # or a DO drop this deep
    plume_max_speed_m_s: float = 0.5   # faster than any creek current: not one plume
    plume_min_gap_m: float = 60.0
    do_only_z: float = 7.0             # a DO drop without turbidity must be this strong
    confirm_s: float = 90.0       # a new cluster waits this long: rain shows up everywhere


@dataclass
class Finding:
    """A creek-level conclusion to be tracked as an episode."""

    kind: str
    segment: str
    node: str
    onset: float
    first: float
    last: float
    severity: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Spatial:
    """Water signals of one creek's sensor nodes, and what they add up to."""

    def __init__(self, creek: Creek, params: SpatialParams | None = None,
                 state: dict[str, Any] | None = None):
        self.creek = creek
        self.p = params or SpatialParams()
        self.sensors = {n.id: n for n in creek.nodes if n.kind == "sensor"}
        st = state or {}
        # node -> signal ("do"/"turb") -> [onset, first, last, evidence]
        self.signals: dict[str, dict[str, list]] = st.get("signals", {})
        self.rain_last: float | None = st.get("rain_last")
        self.rain_onset: float | None = st.get("rain_onset")
        # the discharge being followed: its first node stays its name while it lasts
        self.cluster: dict[str, Any] | None = st.get("cluster")

    def knows(self, node: str) -> bool:
        return node in self.sensors and len(self.sensors) >= 2

    def to_state(self) -> dict[str, Any]:
        return {"signals": self.signals, "rain_last": self.rain_last, "rain_onset": self.rain_onset,
                "cluster": self.cluster}

    # -- observing --------------------------------------------------------------------------
    def observe(self, node: str, signal: str, onset: float, first: float, last: float,
                evidence: dict[str, Any], alive: Callable[[str, float], bool],
                faulty: Callable[[str, float], bool]) -> list[Finding]:
        """Record one node's signal span and return what the creek shows now."""
        sig = self.signals.setdefault(node, {})
        cur = sig.get(signal)
        if cur is not None and first - cur[2] <= self.p.hold_s:
            cur[2] = max(cur[2], last)
            cur[3] = _merge_evidence(cur[3], evidence)
        else:
            sig[signal] = [onset, first, last, evidence]
        now = first  # judge the creek as it was when this signal was seen
        active = self._active(now, faulty)
        if not active:
            return []
        until = max(v[2] for s in active.values() for v in s.values())
        rain = self._rain(active, now, until, alive)
        if rain is not None:
            return [rain]
        active = self._not_rain(active)
        if not active:
            return []
        cl = self.cluster
        ongoing = cl is not None and now - cl["until"] <= self.p.hold_s
        seen = min(v[1] for s in active.values() for v in s.values())
        if not ongoing and now - seen < self.p.confirm_s:
            return []  # wait a little: is it one node's discharge or rain everywhere?
        if not ongoing and not self._solid(active):
            return []  # a modest DO dip alone is not yet a discharge: it brings solids too
        if not ongoing and self._too_fast(active):
            return []  # far-apart nodes changed together: no plume travels that fast (rain?)
        return [self._discharge(active, now, until, alive, faulty)]

    def explains(self, node: str, at: float) -> str | None:
        """``discharge`` or ``rain`` when an ongoing creek event already covers this node."""
        if self.rain_last is not None and at - self.rain_last <= self.p.hold_s:
            return "rain"
        cl = self.cluster
        if cl is not None and at - cl["until"] <= self.p.hold_s and node in cl.get("onsets", {}):
            return "discharge"
        return None

    def _not_rain(self, active: dict[str, dict[str, list]]) -> dict[str, dict[str, list]]:
        """Drop signals that began with the last rain: they are the rain's, even as they linger."""
        if self.rain_last is None or self.rain_onset is None:
            return active
        lo, hi = self.rain_onset - self.p.rain_window_s, self.rain_last + self.p.hold_s
        out = {}
        for n, sigs in active.items():
            keep = {k: v for k, v in sigs.items() if not lo <= v[0] <= hi}
            if keep:
                out[n] = keep
        return out

    def _active(self, now: float, faulty: Callable[[str, float], bool]) -> dict[str, dict[str, list]]:
        out: dict[str, dict[str, list]] = {}
        for n, sigs in self.signals.items():
            live = {k: v for k, v in sigs.items() if now - v[2] <= self.p.hold_s and v[1] <= now}
            if live and not faulty(n, now):
                out[n] = live
        return out

    def _rain(self, active: dict[str, dict[str, list]], now: float, until: float,
              alive: Callable[[str, float], bool]) -> Finding | None:
        reporting = [n for n in self.sensors if alive(n, now)]
        turb = {n: s["turb"] for n, s in active.items() if "turb" in s}
        need = max(min(self.p.rain_min_nodes, len(reporting)),
                   math.ceil(self.p.rain_frac * max(len(reporting), 1)), 2)
        ongoing = self.rain_last is not None and now - self.rain_last <= self.p.hold_s
        if len(turb) < need:
            return None
        onsets = sorted(v[0] for v in turb.values())
        channels = {self.sensors[n].channel for n in turb}
        sensor_channels = {n.channel for n in self.sensors.values()}
        spread_ok = onsets[-1] - onsets[0] <= self.p.rain_window_s or ongoing
        channels_ok = len(channels) >= 2 or len(sensor_channels) < 2
        if not (spread_ok and channels_ok):
            return None
        if not ongoing:
            self.rain_onset = onsets[0]
        self.rain_last = until
        return Finding("rain", "", "", self.rain_onset or onsets[0], now, until, "warning",
                       {"nodes": sorted(turb), "reporting": len(reporting),
                        "channels": sorted(channels),
                        "onset_spread_s": round(onsets[-1] - onsets[0])})

    def _discharge(self, active: dict[str, dict[str, list]], now: float, until: float,
                   alive: Callable[[str, float], bool],
                   faulty: Callable[[str, float], bool]) -> Finding:
        onset = {n: min(v[0] for v in s.values()) for n, s in active.items()}
        order = sorted(onset, key=lambda n: (onset[n], n))
        known = [n for n in order if n in self.sensors]
        first = known[0] if known else order[0]
        cl = self.cluster
        sticky = cl is not None and now - cl["until"] <= self.p.hold_s
        if sticky and cl.get("exclude"):
            # nodes still showing the earlier discharge are not part of this one, nor are nodes
            # its water reaches next (no quiet node between them and it)
            quiet = self._quiet(cl, active, now, alive, faulty)
            grown = True
            while grown:
                grown = False
                for n in active:
                    if n in self.sensors and n not in cl["onsets"] and n not in cl["exclude"] and any(
                            e in self.sensors and not self._separated(n, e, quiet) for e in cl["exclude"]):
                        cl["exclude"].append(n)
                        grown = True
            keep = {n: v for n, v in active.items() if n not in cl["exclude"] or n in cl["onsets"]}
            active = keep or active
            onset = {n: onset[n] for n in active}
        fresh = self._upstream_newcomers(cl, active) if sticky else []
        if sticky and not fresh and self._detached_newcomers(cl, active, now, alive, faulty):
            # a turbidity rise cut off from the followed water: it and the other new nodes with it
            fresh = [n for n in active if n not in cl["onsets"] and n not in cl.get("exclude", [])]
        exclude = list(cl["onsets"]) if fresh else (cl.get("exclude", []) if sticky else [])
        if fresh:
            # a new signal upstream of a discharge already flowing down: a second discharge
            sticky = False
            active = {n: active[n] for n in fresh}
            onset = {n: onset[n] for n in fresh}
            first = min(fresh, key=lambda n: (onset[n], n))
        if sticky:
            # the same discharge keeps its name, outlets and onset while it lasts, even after
            # its first node has recovered and only nodes further on still show it
            first = cl["first"]
            onset.setdefault(first, cl["onset"])
        seen_onsets = dict(cl.get("onsets", {})) if sticky else {}
        for n, o in onset.items():
            seen_onsets[n] = min(o, seen_onsets.get(n, o))
        onset = seen_onsets
        self.cluster = {"first": first, "onset": onset[first],
                        "until": max(until, cl["until"] if sticky else until),
                        "normal": cl["normal"] if sticky else None, "onsets": onset,
                        "first_evidence": cl.get("first_evidence", {}) if sticky else {},
                        "exclude": exclude}
        order = sorted(onset, key=lambda n: (onset[n], n))
        reverse = self._reversed([n for n in order if n in self.sensors], onset)
        self.cluster["reversed"] = reverse
        normal = [n for n in self.sensors if n not in active and alive(n, now) and not faulty(n, now)]
        if self.cluster.get("normal") is not None:
            normal = [n for n in self.cluster["normal"] if n not in active]  # as when it began
        else:
            self.cluster["normal"] = normal
        if first in active:
            self.cluster["first_evidence"] = {k: v[3] for k, v in active[first].items()}
        size = self._size_guess(self.cluster["first_evidence"])
        outlets = self._outlets(self.sensors[first], [self.sensors[n] for n in normal], reverse, size) \
            if first in self.sensors else []
        fnode = self.sensors.get(first)
        # the alert belongs to the first abnormal node's segment: stable while the direction
        # (and so the outlet) is still being worked out; the outlets' segments are evidence
        seg = fnode.segment if fnode else (outlets[0].segment if outlets else "")
        between = self._bounding_normal(self.sensors[first], normal, reverse) if fnode else None
        ev: dict[str, Any] = {
            "first_node": first,
            "arrival": [[n, round(onset[n], 3)] for n in order],
            "outlets": [o.id for o in outlets],
            # two candidates of the size the signal suggests, on the same reach: nothing in the
            # readings tells them apart, so the alert names both
            "outlet_ambiguous": len(outlets) >= 2 and outlets[0].size == outlets[1].size,
            "outlet_sizes": [o.size for o in outlets],
            "outlet_banks": [o.bank for o in outlets],
            "outlet_segments": [o.segment for o in outlets],
            "upstream_normal": between,
            "flow": "reversed" if reverse else "normal",
            "outlet_size_guess": self.cluster.get("size_guess"),
            "signals": {n: sorted(s) for n, s in active.items()},
            "first_evidence": self.cluster.get("first_evidence", {}),
        }
        return Finding("discharge", seg, first, onset[first], now, until, "critical", ev)

    def _upstream_newcomers(self, cl: dict[str, Any], active: dict[str, dict[str, list]]) -> list[str]:
        """Active nodes new to a discharge that flows normally and lie upstream of its first node."""
        if len(cl.get("onsets", {})) < 2 or cl.get("reversed") or cl["first"] not in self.sensors:
            return []
        fp = _pos(self.sensors[cl["first"]])
        return [n for n in active if n not in cl["onsets"] and n in self.sensors
                and self.creek.is_downstream(_pos(self.sensors[n]), fp)]

    def _detached_newcomers(self, cl: dict[str, Any], active: dict[str, dict[str, list]], now: float,
                            alive: Callable[[str, float], bool],
                            faulty: Callable[[str, float], bool]) -> list[str]:
        """New turbidity signals cut off from the followed discharge by quiet live nodes.

        Turbidity is carried by the water: a plume cannot skip a working node on its way, so a
        rise beyond such a node, in either direction, is another source (an outlet opening while
        the tide's own water is being followed further down, say)."""
        members = [n for n in cl.get("onsets", {}) if n in self.sensors]
        if not members:
            return []
        quiet = self._quiet(cl, active, now, alive, faulty)
        others = members + [e for e in cl.get("exclude", []) if e in self.sensors]
        return [n for n, sigs in active.items()
                if n not in cl["onsets"] and n in self.sensors and "turb" in sigs
                and all(self._separated(n, c, quiet) for c in others)]

    def _quiet(self, cl: dict[str, Any], active: dict[str, dict[str, list]], now: float,
               alive: Callable[[str, float], bool], faulty: Callable[[str, float], bool]) -> list[str]:
        """Live, working sensor nodes showing nothing."""
        return [q for q in self.sensors if q not in active and q not in cl.get("onsets", {})
                and alive(q, now) and not faulty(q, now)]

    def _separated(self, a: str, b: str, quiet: list[str]) -> bool:
        """Does a quiet node lie on the water's path between nodes ``a`` and ``b``?"""
        pa, pb = _pos(self.sensors[a]), _pos(self.sensors[b])
        return any(self._between(pa, _pos(self.sensors[q]), pb) or self._between(pb, _pos(self.sensors[q]), pa)
                   for q in quiet)

    def _solid(self, active: dict[str, dict[str, list]]) -> bool:
        """Turbidity rose somewhere, or DO fell far beyond its usual spread."""
        for sigs in active.values():
            if "turb" in sigs:
                return True
            z = (sigs.get("do") or [0, 0, 0, {}])[3].get("z")
            if z is not None and abs(z) >= self.p.do_only_z:
                return True
        return False

    def _too_fast(self, active: dict[str, dict[str, list]]) -> bool:
        """Did two nodes far apart change closer in time than any plume could travel?"""
        nodes = [n for n in active if n in self.sensors]
        onset = {n: min(v[0] for v in active[n].values()) for n in nodes}
        for i, a in enumerate(nodes):
            pa = self.creek.flow_position(self.sensors[a].channel, self.sensors[a].chainage_m)
            for b in nodes[i + 1:]:
                pb = self.creek.flow_position(self.sensors[b].channel, self.sensors[b].chainage_m)
                dist = abs(pa - pb)
                if dist >= self.p.plume_min_gap_m and abs(onset[a] - onset[b]) < dist / self.p.plume_max_speed_m_s:
                    return True
        return False

    def _reversed(self, nodes: list[str], onset: dict[str, float]) -> bool:
        """Did the signal arrive at upstream nodes later than at downstream ones?"""
        fwd = back = 0
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                if onset[b] - onset[a] < self.p.order_min_s:
                    continue
                pa, pb = _pos(self.sensors[a]), _pos(self.sensors[b])
                if self.creek.is_downstream(pa, pb):
                    fwd += 1
                elif self.creek.is_downstream(pb, pa):
                    back += 1
        return back > fwd

    def _between(self, a: tuple[str, float], b: tuple[str, float], c: tuple[str, float]) -> bool:
        """Is position ``b`` on the flow path from ``a`` to ``c``?"""
        return self.creek.is_downstream(a, b) and self.creek.is_downstream(b, c)

    def _size_guess(self, fe: dict[str, Any]) -> str:
        """A strong signal at the first node points to a large outlet (more flow, less dilution)."""
        strong = False
        turb = fe.get("turb") or {}
        if turb.get("value") is not None and turb.get("baseline"):
            strong |= turb["value"] >= self.p.large_turbidity_ratio * max(turb["baseline"], 1.0)
        do = fe.get("do") or {}
        if do.get("value") is not None and do.get("baseline") is not None:
            strong |= do["baseline"] - do["value"] >= self.p.large_do_drop_mg_l
        self.cluster["size_guess"] = "large" if strong or self.cluster.get("size_guess") == "large" else "small"
        return self.cluster["size_guess"]

    def _outlets(self, first: Node, normal: list[Node], reverse: bool, size: str = "large") -> list[Outlet]:
        fp = _pos(first)
        cands = []
        for o in self.creek.outlets:
            op = (o.channel, o.chainage_m)
            if not reverse:
                if not (self.creek.is_downstream(op, fp) or op == fp):
                    continue
                if any(self._between(op, _pos(n), fp) for n in normal):
                    continue
            else:
                if not (self.creek.is_downstream(fp, op) or op == fp):
                    continue
                if any(self._between(fp, _pos(n), op) for n in normal):
                    continue
            cands.append(o)
        fpos = self.creek.flow_position(*fp)
        cands.sort(key=lambda o: (o.size != size,
                                  abs(self.creek.flow_position(o.channel, o.chainage_m) - fpos)))
        return cands

    def _bounding_normal(self, first: Node, normal: list[str], reverse: bool) -> list[str]:
        """The normal nodes nearest the first abnormal one on the side the water came from."""
        fp = _pos(first)
        out = []
        for n in normal:
            np_ = _pos(self.sensors[n])
            up = self.creek.is_downstream(np_, fp) if not reverse else self.creek.is_downstream(fp, np_)
            if up and not any(self._between(np_, _pos(self.sensors[m]), fp) if not reverse
                              else self._between(fp, _pos(self.sensors[m]), np_)
                              for m in normal if m != n):
                out.append(n)
        return sorted(out)


def _pos(n: Node) -> tuple[str, float]:
    return (n.channel, n.chainage_m)


def _merge_evidence(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Keep the most extreme value and z seen during the signal."""
    out = dict(new)
    if "value" in old and "value" in new and old.get("direction") == new.get("direction"):
        pick = min if new.get("direction") == "down" else max
        out["value"] = pick(old["value"], new["value"])
        out["z"] = pick(old.get("z", 0), new.get("z", 0))
        if old.get("baseline") is not None:
            out["baseline"] = old["baseline"]
    return out

"""Creek-level reasoning: a discharge travels downstream from an outlet, rain hits everywhere.

Node models report water signals (a DO drop, a turbidity rise at one node). Here they are put
on the creek's map (``rivermon.core.topology``):

- **rain**: turbidity rises at a large share of the reporting nodes within a short window, on
  more than one channel when the creek has several (no single outlet could do that);
- **discharge**: otherwise. The node whose signal began first is nearest the source. The
  arrival order says which way the water moved (normally downstream; a sluice or the tide can
  stall or reverse it), and the likely outlets are those between the last normal node and the
  first abnormal one, on the side the water came from. They are ranked by how well each one's
  plume (a dispersing front from that distance, of that size) explains how the turbidity rose at
  the first node; water that reached the next node upstream too soon to have come through the
  first spread both ways from between them; a rise at the outfall's node that no outlet explains
  is the river's water (tide, sluice), not a discharge.

The same code runs live and in replay: both call :meth:`Spatial.observe` in time order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.special import erfc

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
    min_turb_rise_ntu: float = 1.5  # a turbidity rise smaller than 5x the probe's +-0.3 NTU
    #                                 accuracy (creek.md) brings no solids worth a discharge
    # -- the plume's rise at the first abnormal node says which outlet (see _rank_by_rise) --------
    # ILLUSTRATIVE priors, as the topology's positions are: a deployment sets its own.
    plume_speed_m_s: float = 0.03      # the creek's current (slow, gated PRD creek)
    dispersion_m2_s: float = 0.25      # longitudinal dispersion (small channels: 0.05-5, Fischer 1979)
    mixing_m: float = 10.0             # an outfall mixes over about this length before the flow takes over
    plume_ntu: tuple[tuple[str, float], ...] = (("large", 22.0), ("small", 5.0))
    #                                    turbidity excess a steady plume of that outlet size reaches
    rise_min_s: float = 180.0          # fit once the first node's rise has been seen this long
    rise_window_s: float = 600.0       # the fit uses (and then keeps) this much of the rise
    rise_wait_s: float = 330.0         # a new discharge waits at most this long for that
    rise_ambiguous: float = 1.2        # second-best fit within this factor of the best: say both
    probe_ntu: float = 0.3             # the turbidity probe's accuracy (creek.md): two plumes that both
    #                                    explain the rise closer than this cannot be told apart
    outfall_misfit_ntu: float = 0.6    # a rise at the outfall's node no outlet fits this well: the river's
    outfall_reach_m: float = 50.0      # ... judged only at a node this close to the outfall


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
        # water entering from the creek's outfall (tide, sluice): its nodes and until when
        self.boundary: dict[str, Any] | None = st.get("boundary")
        self._curves: dict[tuple[str, float], np.ndarray] = {}
        self.seen_until = float("-inf")

    def knows(self, node: str) -> bool:
        return node in self.sensors and len(self.sensors) >= 2

    def to_state(self) -> dict[str, Any]:
        return {"signals": self.signals, "rain_last": self.rain_last, "rain_onset": self.rain_onset,
                "cluster": self.cluster, "boundary": self.boundary}

    # -- observing --------------------------------------------------------------------------
    def observe(self, node: str, signal: str, onset: float, first: float, last: float,
                evidence: dict[str, Any], alive: Callable[[str, float], bool],
                faulty: Callable[[str, float], bool]) -> list[Finding]:
        """Record one node's signal span and return what the creek shows now."""
        sig = self.signals.setdefault(node, {})
        cur = sig.get(signal)
        if cur is not None and first - cur[2] <= self.p.hold_s:
            cur[2] = max(cur[2], last)
            cur[3] = _merge_evidence(cur[3], evidence, cur[1] + self.p.rise_window_s)
        else:
            sig[signal] = [onset, first, last, _merge_evidence({}, evidence, first + self.p.rise_window_s)]
        now = first  # judge the creek as it was when this signal was seen
        self.seen_until = max(first, last)  # readings up to here have arrived
        active = self._active(now, faulty)
        if not active:
            return []
        until = max(v[2] for s in active.values() for v in s.values())
        rain = self._rain(active, now, until, alive)
        if rain is not None:
            return [rain]
        active = self._not_rain(active)
        active = self._not_boundary(active, now, alive, faulty)
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
        if not ongoing:
            lead = min((n for n in active if n in self.sensors),
                       key=lambda n: (min(v[0] for v in active[n].values()), n), default=None)
            if lead is not None and self._rise_pending(lead, active, now, seen, alive, faulty):
                return []  # a few minutes more of the rise tell which outlet
            if lead is not None and self._from_outfall(lead, active, now, alive, faulty):
                return []  # the river's water pushing in at the outfall (tide, sluice)
        return [self._discharge(active, now, until, alive, faulty)]

    def explains(self, node: str, at: float) -> str | None:
        """``discharge`` or ``rain`` when an ongoing creek event already covers this node."""
        if self.rain_last is not None and at - self.rain_last <= self.p.hold_s:
            return "rain"
        cl = self.cluster
        if cl is not None and at - cl["until"] <= self.p.hold_s and (
                node in cl.get("onsets", {}) or node in cl.get("exclude", [])):
            return "discharge"  # this one's water, or the earlier one's it keeps apart
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
            # only this discharge's own nodes: when none of them shows anything right now, the
            # earlier water still passing does not become this discharge's. (It still keeps the
            # discharge going: the earlier one's water is not followed on its own once a second
            # one is, and letting go of it would open a new alert on it, naming wrong outlets.)
            active = {n: v for n, v in active.items() if n not in cl["exclude"] or n in cl["onsets"]}
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
                        "rise": cl.get("rise") if sticky else None,
                        "rise_onset": cl.get("rise_onset") if sticky else None,
                        "fit": cl.get("fit") if sticky else None,
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
            fe = dict(self.cluster["first_evidence"])
            fe.update({k: {kk: vv for kk, vv in v[3].items() if kk != "trace"}
                       for k, v in active[first].items()})
            self.cluster["first_evidence"] = fe
            if "turb" in active[first]:
                self._keep_rise(active[first]["turb"])
        size = self._size_guess(self.cluster["first_evidence"])
        outlets = self._outlets(self.sensors[first], [self.sensors[n] for n in normal], reverse, size) \
            if first in self.sensors else []
        other = self._both_ways(first, [n for n in order if n in self.sensors], onset)
        if other is not None:
            outlets = self._outlets_between(self.sensors[first], self.sensors[other]) or outlets
        fit = self._rank_by_rise(self.sensors[first], outlets) if first in self.sensors else None
        if fit is not None:
            outlets = [o for _, o in fit]
            self.cluster["size_guess"] = outlets[0].size  # what the rise says, not the first guess
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
            "outlet_ambiguous": (len(outlets) >= 2 and outlets[0].size == outlets[1].size
                                 and (fit is None or self._fits_alike(fit[0][0], fit[1][0]))),
            # how well each candidate's plume explains the rise at the first node (RMS, NTU)
            "outlet_fit": {o.id: round(r, 2) for r, o in fit} if fit is not None else None,
            "outlet_basis": "rise" if fit is not None else "size",
            "outlet_sizes": [o.size for o in outlets],
            "outlet_banks": [o.bank for o in outlets],
            "outlet_segments": [o.segment for o in outlets],
            "upstream_normal": between,
            "flow": "both ways" if other is not None else ("reversed" if reverse else "normal"),
            "spread_between": [first, other] if other is not None else None,
            "outlet_size_guess": self.cluster.get("size_guess"),
            "signals": {n: sorted(s) for n, s in active.items()},
            "first_evidence": self.cluster.get("first_evidence", {}),
        }
        return Finding("discharge", seg, first, onset[first], now, until, "critical", ev)

    # -- which outlet: the plume's rise at the first abnormal node ----------------------------
    def _fits_alike(self, best: float, second: float) -> bool:
        """Do two candidates explain the rise equally well: the second within ``rise_ambiguous``
        of the best, or both closer than the probe's accuracy (the misfits then differ by less
        than what the readings can resolve; a small plume's rise, seen near its top, fits a near
        and a far outlet of one reach alike)?"""
        return second <= self.p.rise_ambiguous * best or second < self.p.probe_ntu

    def _rise_points(self, sig: list, upto: float) -> tuple[np.ndarray, np.ndarray]:
        """Turbidity excess over the usual level at the readings seen so far of a signal's rise."""
        ev = sig[3]
        base = ev.get("baseline")
        tr = [p for p in ev.get("trace") or [] if p[0] <= upto and p[0] <= sig[1] + self.p.rise_window_s]
        if base is None or not tr:
            return np.zeros(0), np.zeros(0)
        a = np.asarray(tr, dtype=float)
        return a[:, 0], a[:, 1] - float(base)

    def _rise_seen_s(self, t: np.ndarray) -> float:
        return float(t[-1] - t[0]) if t.size >= 3 else 0.0

    def _rise_pending(self, lead: str, active: dict[str, dict[str, list]], now: float, seen: float,
                      alive: Callable[[str, float], bool], faulty: Callable[[str, float], bool]) -> bool:
        """Is the lead node's turbidity rise still too short to tell its outlets apart (or the
        river's water from them), and worth waiting for?"""
        sigs = active[lead]
        if "turb" not in sigs or now - seen >= self.p.rise_wait_s:
            return False
        t, _ = self._rise_points(sigs["turb"], self.seen_until)
        if self._rise_seen_s(t) >= self.p.rise_min_s:
            return False
        normal = [self.sensors[n] for n in self.sensors
                  if n not in active and alive(n, now) and not faulty(n, now)]
        return len(self._outlets(self.sensors[lead], normal, False)) >= 2 or self._at_outfall(lead)

    def _keep_rise(self, sig: list) -> None:
        """Remember the first node's rise (the fit is judged on it even after the node recovers).

        Only the rise that began the discharge says which outlet: a later turbidity signal at the
        same node is other water arriving (an earlier plume reaching it, a second outlet), and
        fitting it would rename the outlet halfway through the alert."""
        ro = self.cluster.get("rise_onset")
        if ro is not None and sig[0] != ro:
            return
        self.cluster["rise_onset"] = sig[0]
        t, e = self._rise_points(sig, self.seen_until)
        if t.size:
            self.cluster["rise"] = [[float(a), round(float(b), 3)] for a, b in zip(t, e)]

    def _curve(self, size: str, dist_m: float) -> np.ndarray:
        """Turbidity excess of a steady plume ``dist_m`` downstream of an outlet, every 10 s after
        it opened: advection at the creek's speed, dispersion, mixed over ``mixing_m`` at the
        outfall (the classic erfc front of a continuous release; Fischer et al. 1979)."""
        key = (size, round(dist_m, 1))
        c = self._curves.get(key)
        if c is None:
            p = self.p
            amp = dict(p.plume_ntu).get(size, min(v for _, v in p.plume_ntu))
            tau = np.arange(1, int(RISE_HORIZON_S // 10) + 1) * 10.0
            s0 = p.mixing_m / math.sqrt(12.0)
            c = amp / 2 * erfc((dist_m - p.plume_speed_m_s * tau)
                               / np.sqrt(4 * p.dispersion_m2_s * tau + 2 * s0 ** 2))
            self._curves[key] = c
        return c

    def _fit(self, size: str, dist_m: float, t: np.ndarray, e: np.ndarray) -> float:
        """RMS misfit (NTU) of the rise to that outlet's plume, its opening time unknown (fitted)."""
        c = self._curve(size, dist_m)
        # every opening time on a 10-s grid before the first reading: tau = t - t0
        t0 = t[0] - np.arange(1, c.size) * 10.0
        tau = t[None, :] - t0[:, None]
        pred = np.interp(tau, np.arange(1, c.size + 1) * 10.0, c, left=0.0, right=c[-1])
        return float(np.sqrt(np.min(np.mean((pred - e[None, :]) ** 2, axis=1))))

    def _rank_by_rise(self, first: Node, cands: list[Outlet],
                      t: np.ndarray | None = None, e: np.ndarray | None = None
                      ) -> list[tuple[float, Outlet]] | None:
        """Candidates ordered by how well their plume explains the first node's rise, or None
        when too little of the rise has been seen."""
        cl = self.cluster if t is None else None
        if cl is not None:
            a = np.asarray(cl.get("rise") or [], dtype=float).reshape(-1, 2)
            t, e = a[:, 0], a[:, 1]
        if not cands or self._rise_seen_s(t) < self.p.rise_min_s:
            return None
        key = [first.id, t.size] + [o.id for o in cands]
        if cl is not None and (cl.get("fit") or {}).get("key") == key:
            byid = {o.id: o for o in cands}
            return [(r, byid[i]) for r, i in cl["fit"]["res"]]
        fpos = self.creek.flow_position(*_pos(first))
        out = [(self._fit(o.size, abs(fpos - self.creek.flow_position(o.channel, o.chainage_m)), t, e), o)
               for o in cands]
        out.sort(key=lambda x: (x[0], x[1].id))
        if cl is not None:
            cl["fit"] = {"key": key, "res": [[r, o.id] for r, o in out]}
        return out

    # -- water from the outfall ------------------------------------------------------------------
    def _at_outfall(self, node: str) -> bool:
        """Is this node the last before the creek leaves into the river, and near enough to the
        outfall to see the river's water come in as a sharp front (a front that travels further
        up the creek spreads out like any far plume)?"""
        p = _pos(self.sensors[node])
        ch = self.creek.channel(p[0])
        if ch.joins_channel:
            return False
        end = max(self.creek.flow_position(ch.id, 0.0), self.creek.flow_position(ch.id, ch.length_m))
        if end - self.creek.flow_position(*p) > self.p.outfall_reach_m:
            return False
        return not any(self.creek.is_downstream(p, _pos(o)) for k, o in self.sensors.items() if k != node)

    def _from_outfall(self, lead: str, active: dict[str, dict[str, list]], now: float,
                      alive: Callable[[str, float], bool], faulty: Callable[[str, float], bool]) -> bool:
        """Is the rise at the node next to the outfall more than any outlet there could make?

        When the tide or a sluice pushes the river's (turbid) water in, the node nearest the
        outfall sees it first: faster and higher than a plume from the outlets between it and the
        last normal node could rise. Such water is followed as the river's, not as a discharge."""
        if not self._at_outfall(lead) or "turb" not in active[lead]:
            return False
        t, e = self._rise_points(active[lead]["turb"], self.seen_until)
        normal = [self.sensors[n] for n in self.sensors
                  if n not in active and alive(n, now) and not faulty(n, now)]
        cands = self._outlets(self.sensors[lead], normal, False)
        fit = self._rank_by_rise(self.sensors[lead], cands, t, e)
        if fit is None:
            return False
        amp = max(dict(self.p.plume_ntu).get(o.size, 0.0) for o in cands)
        if fit[0][0] > max(self.p.outfall_misfit_ntu, 0.15 * float(e.max())) and float(e.max()) > amp:
            self.boundary = {"nodes": [lead], "until": max(v[2] for v in active[lead].values()),
                             "since": min(v[0] for v in active[lead].values())}
            return True
        return False

    def _not_boundary(self, active: dict[str, dict[str, list]], now: float,
                      alive: Callable[[str, float], bool],
                      faulty: Callable[[str, float], bool]) -> dict[str, dict[str, list]]:
        """Drop the river's water followed from the outfall, and the nodes it reaches next."""
        b = self.boundary
        if b is None or now - b["until"] > self.p.hold_s:
            self.boundary = None
            return active
        quiet = [q for q in self.sensors if q not in active and alive(q, now) and not faulty(q, now)]
        grown = True
        while grown:
            grown = False
            for n in active:
                if n in self.sensors and n not in b["nodes"] and any(
                        not self._separated(n, m, quiet) for m in b["nodes"]):
                    b["nodes"].append(n)
                    grown = True
        for n in b["nodes"]:
            if n in active:
                b["until"] = max(b["until"], max(v[2] for v in active[n].values()))
        return {n: v for n, v in active.items() if n not in b["nodes"]}

    def _both_ways(self, first: str, nodes: list[str], onset: dict[str, float]) -> str | None:
        """The neighbour upstream of ``first`` that the water reached too soon after it to have
        come through ``first``: the plume spread both ways from between them (slack or turning
        water), so the outlet lies between the two.

        A plume that passed ``first`` needs at least distance / (2 x the creek's speed) to reach
        the next node; arriving much sooner, it came from closer to that node."""
        if first not in nodes:
            return None
        fp = _pos(self.sensors[first])
        for n in nodes:
            if n == first or onset[n] < onset[first]:
                continue
            np_ = _pos(self.sensors[n])
            if not self.creek.is_downstream(np_, fp):
                continue  # only a node upstream of the first, which normal flow cannot reach
            if any(self._between(np_, _pos(self.sensors[m]), fp) for m in self.sensors if m not in (n, first)):
                continue  # not the neighbour
            dist = abs(self.creek.flow_position(*fp) - self.creek.flow_position(*np_))
            if onset[n] - onset[first] < dist / (2 * self.p.plume_speed_m_s):
                return n
        return None

    def _outlets_between(self, a: Node, b: Node) -> list[Outlet]:
        """Outlets on the flow path between two nodes (either order)."""
        pa, pb = _pos(a), _pos(b)
        return [o for o in self.creek.outlets
                if self._between(pa, (o.channel, o.chainage_m), pb) or self._between(pb, (o.channel, o.chainage_m), pa)]

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
            if "turb" in sigs and _excess(sigs["turb"][3]) >= self.p.min_turb_rise_ntu:
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


RISE_HORIZON_S = 4 * 3600.0  # plumes arriving later than this after the opening are not told apart


def _pos(n: Node) -> tuple[str, float]:
    return (n.channel, n.chainage_m)


def _excess(ev: dict[str, Any]) -> float:
    """How far a signal's value moved from the node's usual level (its own unit)."""
    if ev.get("value") is None or ev.get("baseline") is None:
        return float("inf")
    return abs(float(ev["value"]) - float(ev["baseline"]))


def _merge_evidence(old: dict[str, Any], new: dict[str, Any], trace_until: float = float("inf")
                    ) -> dict[str, Any]:
    """Keep the most extreme value and z seen during the signal, and the readings of its rise."""
    out = dict(new)
    if "trace" in old or "trace" in new:
        pts = {p[0]: p for p in (old.get("trace") or []) + (new.get("trace") or []) if p[0] <= trace_until}
        out["trace"] = [pts[k] for k in sorted(pts)]
    if "value" in old and "value" in new and old.get("direction") == new.get("direction"):
        pick = min if new.get("direction") == "down" else max
        out["value"] = pick(old["value"], new["value"])
        out["z"] = pick(old.get("z", 0), new.get("z", 0))
        if old.get("baseline") is not None:
            out["baseline"] = old["baseline"]
    return out

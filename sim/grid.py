"""The creek as a network of well-mixed cells, built from the topology.

Each channel is cut into cells of ``cell_m`` metres. Water moves between neighbouring cells by
advection (upwind, following each channel's normal flow and the branch's join; a negative flow
factor reverses it, as a sluice or the tide can) and by longitudinal dispersion. Three *ghost*
cells stand for the water outside the modelled reach: the creek above the top of each channel
(inflow under normal flow) and the river below the outfall (inflow when the flow reverses).
They carry their own kinetics but no transport, so boundary water has a diurnal cycle too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rivermon.core.topology import Creek, Node

from .physics import Coefficients


@dataclass
class Grid:
    """Cells (then ghosts) of one creek, with the transport matrices of normal and reversed flow."""

    n_cells: int
    n_all: int
    channel: list[str]            # per cell
    centre_m: np.ndarray          # chainage of each cell centre
    segment: list[str]            # per cell (ghosts: "_up-<channel>", "_river")
    volume_m3: np.ndarray         # per cell and ghost (ghosts: 1, unused)
    depth_m: np.ndarray           # per cell and ghost
    area_m2: np.ndarray           # cross-section per cell and ghost
    flow_m3_s: np.ndarray         # normal flow through each cell (for its velocity)
    adv_fwd: np.ndarray           # (n_cells, n_all): mass rate g/s per unit concentration, flow factor +1
    adv_rev: np.ndarray           # same for flow factor -1
    disp: np.ndarray              # (n_cells, n_all) dispersion exchange
    ghosts: dict[str, int]        # name -> index in the state arrays
    max_courant_rate: float       # (|u|/dx) max, per second at flow factor 1
    disp_rate: float              # 2·D/dx², per second

    def cell_of(self, channel: str, chainage_m: float) -> int:
        """Index of the cell that holds a position."""
        idx = [i for i in range(self.n_cells) if self.channel[i] == channel]
        return min(idx, key=lambda i: abs(self.centre_m[i] - chainage_m))

    def observation_weights(self, nodes: list[Node]) -> np.ndarray:
        """(nodes, n_all) weights: a node sees the linear interpolation between the nearest centres."""
        w = np.zeros((len(nodes), self.n_all))
        for r, n in enumerate(nodes):
            idx = [i for i in range(self.n_cells) if self.channel[i] == n.channel]
            xs = self.centre_m[idx]
            x = float(np.clip(n.chainage_m, xs.min(), xs.max()))
            j = int(np.searchsorted(xs, x, side="right")) - 1
            j = min(max(j, 0), len(idx) - 2) if len(idx) > 1 else 0
            if len(idx) == 1:
                w[r, idx[0]] = 1.0
                continue
            frac = (x - xs[j]) / (xs[j + 1] - xs[j])
            w[r, idx[j]] += 1 - frac
            w[r, idx[j + 1]] += frac
        return w

    def spread_weights(self, channel: str, chainage_m: float, half_width_m: float) -> np.ndarray:
        """(n_all,) fractions of a point source spread over the cells within ``half_width_m``."""
        w = np.zeros(self.n_all)
        for i in range(self.n_cells):
            if self.channel[i] == channel and abs(self.centre_m[i] - chainage_m) <= half_width_m:
                w[i] = self.volume_m3[i]
        if not w.any():
            w[self.cell_of(channel, chainage_m)] = 1.0
        return w / w.sum()


@dataclass
class _Cells:
    channel: list[str]
    centre: list[float]
    segment: list[str]
    length: list[float]
    along_flow: dict[str, list[int]]  # per channel, cell indices in normal-flow order


def _cut(creek: Creek, dx: float) -> _Cells:
    """Cells of ``dx`` metres along every channel (the last one of a channel may be shorter)."""
    cells = _Cells([], [], [], [], {})
    for ch in creek.channels:
        ids = []
        for i in range(max(1, math.ceil(ch.length_m / dx - 1e-9))):
            a, b = i * dx, min((i + 1) * dx, ch.length_m)
            seg = creek.segment_at(ch.id, (a + b) / 2)
            ids.append(len(cells.channel))
            cells.channel.append(ch.id)
            cells.centre.append((a + b) / 2)
            cells.segment.append(seg.id if seg else "unassigned")
            cells.length.append(b - a)
        cells.along_flow[ch.id] = ids if ch.flow == "increasing" else ids[::-1]
    return cells


def _links(creek: Creek, cells: _Cells, ghosts: dict[str, int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(from, to) cell pairs under normal flow, and (ghost, first cell) inflows at channel tops."""
    links: list[tuple[int, int]] = []
    inflow: list[tuple[int, int]] = []
    for c in creek.channels:
        ids = cells.along_flow[c.id]
        inflow.append((ghosts[f"_up-{c.id}"], ids[0]))
        links += list(zip(ids, ids[1:]))
        if c.joins_channel:
            links.append((ids[-1], _join_cell(creek, cells, c.joins_channel, c.joins_chainage_m or 0.0)))
    return links, inflow


def _join_cell(creek: Creek, cells: _Cells, parent: str, chainage_m: float) -> int:
    """The parent's first cell at or below a join under normal flow (as the topology links it)."""
    increasing = creek.channel(parent).flow == "increasing"
    for i in cells.along_flow[parent]:
        if (cells.centre[i] >= chainage_m) if increasing else (cells.centre[i] <= chainage_m):
            return i
    return cells.along_flow[parent][-1]


def build_grid(creek: Creek, k: Coefficients) -> Grid:
    """Cut the creek's channels into cells and assemble the transport matrices."""
    dx = k.cell_m
    cells = _cut(creek, dx)
    channel = cells.channel
    n_cells = len(channel)
    main = next(c for c in creek.channels if c.joins_channel is None)
    ghost_names = [f"_up-{c.id}" for c in creek.channels] + ["_river"]
    ghosts = {g: n_cells + i for i, g in enumerate(ghost_names)}
    n_all = n_cells + len(ghosts)

    def dims(ch_id: str) -> tuple[float, float]:
        """(width, depth) of a channel."""
        if ch_id == main.id:
            return k.width_main_m, k.depth_main_m
        return k.width_branch_m, k.depth_branch_m

    depth, area, volume = np.ones(n_all), np.ones(n_all), np.ones(n_all)
    for i in range(n_cells):
        width, d = dims(channel[i])
        depth[i], area[i], volume[i] = d, width * d, width * d * cells.length[i]
    for c in creek.channels:
        width, d = dims(c.id)
        depth[ghosts[f"_up-{c.id}"]], area[ghosts[f"_up-{c.id}"]] = d, width * d
    depth[ghosts["_river"]] = 4.0  # the receiving river is deeper (ASSUMPTION)

    top_q = {c.id: (k.velocity_main_m_s if c.id == main.id else k.velocity_branch_m_s)
             * dims(c.id)[0] * dims(c.id)[1] for c in creek.channels}
    links, inflow = _links(creek, cells, ghosts)
    outfall = cells.along_flow[main.id][-1]
    flow = _accumulate(n_cells, links, inflow, [top_q[channel[f]] for _, f in inflow])
    adv_fwd, adv_rev, disp = _matrices(n_cells, n_all, links, flow, channel, area, k)
    for g, first in inflow:
        q = top_q[channel[first]]
        adv_fwd[first, g] += q
        adv_rev[first, first] -= q
    adv_fwd[outfall, outfall] -= flow[outfall]
    adv_rev[outfall, ghosts["_river"]] += flow[outfall]
    velocity = flow / area[:n_cells]
    return Grid(
        n_cells=n_cells, n_all=n_all, channel=channel, centre_m=np.array(cells.centre),
        segment=cells.segment + ghost_names, volume_m3=volume, depth_m=depth, area_m2=area,
        flow_m3_s=flow, adv_fwd=adv_fwd, adv_rev=adv_rev, disp=disp, ghosts=ghosts,
        max_courant_rate=float(np.max(np.abs(velocity)) / dx),
        disp_rate=2 * k.dispersion_m2_s / dx ** 2)


def _matrices(n_cells: int, n_all: int, links: list[tuple[int, int]], flow: np.ndarray,
              channel: list[str], area: np.ndarray,
              k: Coefficients) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mass-rate matrices (g/s per mg/L): advection forward, advection reversed, dispersion."""
    adv_fwd = np.zeros((n_cells, n_all))
    adv_rev = np.zeros((n_cells, n_all))
    disp = np.zeros((n_cells, n_all))
    for a, b in links:
        q = flow[a]  # the flow leaving cell a along its channel
        adv_fwd[b, a] += q
        adv_fwd[a, a] -= q
        adv_rev[a, b] += q
        adv_rev[b, b] -= q
        if channel[a] != channel[b]:
            continue  # at a confluence the branch's outflow keeps main-channel water out (ASSUMPTION)
        e = k.dispersion_m2_s * min(area[a], area[b]) / k.cell_m
        disp[a, a] -= e
        disp[a, b] += e
        disp[b, b] -= e
        disp[b, a] += e
    return adv_fwd, adv_rev, disp


def _accumulate(n_cells: int, links: list[tuple[int, int]], inflow: list[tuple[int, int]],
                inflow_q: list[float]) -> np.ndarray:
    """Normal flow leaving each cell: boundary inflows summed down the tree of links."""
    flow = np.zeros(n_cells)
    for (_, first), q in zip(inflow, inflow_q):
        flow[first] += q
    into: dict[int, list[int]] = {i: [] for i in range(n_cells)}
    out_of: dict[int, int] = {}
    for a, b in links:
        into[b].append(a)
        out_of[a] = b
    pending = {i: len(into[i]) for i in range(n_cells)}
    ready = [i for i in range(n_cells) if pending[i] == 0]
    while ready:
        a = ready.pop()
        b = out_of.get(a)
        if b is not None:
            flow[b] += flow[a]
            pending[b] -= 1
            if pending[b] == 0:
                ready.append(b)
    return flow

"""Geometry of the creek schematic: channels as straight lines to scale, in SVG user units.

The main channel runs left to right; each branch leaves its junction at an angle, drawn at
the same metres-to-units scale, so lengths and chainages compare truly. Banks map to the side
of the line nearest their compass direction (north up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rivermon.core.topology import Channel, Creek

WIDTH = 1000.0
MARGIN = 60.0
# Directions (unit vectors, SVG y grows downwards) from a junction upstream along successive
# branches: down-left first, so the main channel's labels above it stay clear.
BRANCH_DIRS = ((-0.5, 0.866), (-0.5, -0.866), (0.5, 0.866), (0.5, -0.866))
COMPASS = {"north": (0.0, -1.0), "south": (0.0, 1.0), "east": (1.0, 0.0), "west": (-1.0, 0.0),
           "left": (0.0, -1.0), "right": (0.0, 1.0)}


@dataclass
class Line:
    """A channel drawn from ``origin`` (chainage 0) along ``direction``."""

    origin: tuple[float, float]
    direction: tuple[float, float]

    def at(self, chainage_m: float, scale: float, offset: float = 0.0,
           side: tuple[float, float] | None = None) -> tuple[float, float]:
        x = self.origin[0] + self.direction[0] * chainage_m * scale
        y = self.origin[1] + self.direction[1] * chainage_m * scale
        if offset and side:
            x, y = x + side[0] * offset, y + side[1] * offset
        return round(x, 1), round(y, 1)

    def normal_towards(self, compass: tuple[float, float]) -> tuple[float, float]:
        """The unit normal of the line on the side nearest ``compass``."""
        n = (-self.direction[1], self.direction[0])
        dot = n[0] * compass[0] + n[1] * compass[1]
        return n if dot >= 0 else (-n[0], -n[1])


def _layout(creek: Creek) -> dict[str, Line]:
    """Channel lines in metres (scale applied later)."""
    lines: dict[str, Line] = {}
    main = next(c for c in creek.channels if c.joins_channel is None)
    lines[main.id] = Line((0.0, 0.0), (1.0, 0.0) if main.flow == "increasing" else (-1.0, 0.0))
    if main.flow == "decreasing":
        lines[main.id] = Line((main.length_m, 0.0), (-1.0, 0.0))
    pending = [c for c in creek.channels if c.joins_channel is not None]
    k = 0
    while pending:
        progressed = False
        for c in list(pending):
            if c.joins_channel not in lines:
                continue
            parent = lines[c.joins_channel]
            jx, jy = parent.at(c.joins_chainage_m or 0.0, 1.0)
            d = BRANCH_DIRS[k % len(BRANCH_DIRS)]
            k += 1
            # The junction is the branch's downstream end under normal flow.
            end_at_junction = c.length_m if c.flow == "increasing" else 0.0
            direction = (-d[0], -d[1]) if c.flow == "increasing" else d
            ox = jx - direction[0] * end_at_junction
            oy = jy - direction[1] * end_at_junction
            lines[c.id] = Line((ox, oy), direction)
            pending.remove(c)
            progressed = True
        if not progressed:
            break
    return lines


def build(creek: Creek) -> dict[str, Any]:
    """Shapes for the template: viewBox, segments, outlets, nodes, flow arrows, labels."""
    lines = _layout(creek)
    chans = {c.id: c for c in creek.channels}
    pts = []
    for cid, ln in lines.items():
        pts += [ln.at(0, 1.0), ln.at(chans[cid].length_m, 1.0)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    span = max(max(xs) - min(xs), 1.0)
    scale = (WIDTH - 2 * MARGIN) / span
    shift = (MARGIN - min(xs) * scale, MARGIN + 30 - min(ys) * scale)
    scaled = {cid: Line((ln.origin[0] * scale + shift[0], ln.origin[1] * scale + shift[1]), ln.direction)
              for cid, ln in lines.items()}
    height = (max(ys) - min(ys)) * scale + 2 * MARGIN + 60

    segments = []
    for s in creek.segments:
        ln = scaled[s.channel]
        a, b = ln.at(s.start_m + 1.5, scale), ln.at(s.end_m - 1.5, scale)
        label_side = ln.normal_towards(COMPASS["north"] if ln.direction[1] == 0 else COMPASS["east"])
        # Labels of slanted channels sit further out: the text runs horizontally.
        mid = ln.at(s.mid_m, scale, 40 + 45 * abs(ln.direction[1]), label_side)
        segments.append({"id": s.id, "x1": a[0], "y1": a[1], "x2": b[0], "y2": b[1],
                         "lx": mid[0], "ly": mid[1], "name": s.name.as_dict()})
    outlets = []
    for o in creek.outlets:
        ln = scaled[o.channel]
        side = ln.normal_towards(COMPASS.get(o.bank, COMPASS["south"]))
        bank = ln.at(o.chainage_m, scale, 24, side)
        tip = ln.at(o.chainage_m, scale, 14, side)
        r = 11 if o.size == "large" else 6
        outlets.append({"id": o.id, "size": o.size, "bank": o.bank, "x": bank[0], "y": bank[1],
                        "r": r, "tx": tip[0], "ty": tip[1], "segment": o.segment,
                        "chainage_m": o.chainage_m})
    nodes = []
    for n in creek.nodes:
        ln = scaled[n.channel]
        x, y = ln.at(n.chainage_m, scale)
        nodes.append({"id": n.id, "kind": n.kind, "x": x, "y": y, "segment": n.segment,
                      "aerator": n.aerator})
    arrows = []
    for cid, ln in scaled.items():
        length = chans[cid].length_m
        for frac in (0.25, 0.75) if length > 300 else (0.5,):
            side = ln.normal_towards(COMPASS["south"] if ln.direction[1] == 0 else COMPASS["east"])
            a = ln.at(length * frac - 12, scale, 50, side)
            b = ln.at(length * frac + 12, scale, 50, side)
            arrows.append({"x1": a[0], "y1": a[1], "x2": b[0], "y2": b[1]})
    scale_bar = {"x": MARGIN, "y": round(height - 24, 1), "len": round(100 * scale, 1)}
    return {"width": WIDTH, "height": round(height, 1), "segments": segments, "outlets": outlets,
            "nodes": nodes, "arrows": arrows, "scale_bar": scale_bar,
            "channels": [{"id": cid, "name": chans[cid].name.as_dict()} for cid in scaled]}

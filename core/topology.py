"""The creek network: channels, segments, outlets and nodes, loaded from a TOML file.

The loader validates everything and names the key and the problem when something is wrong
(``creeks[0].nodes[3].chainage_m: 700 is beyond channel 'main' (length 640 m)``). Segments,
outlets and nodes are placed by channel and chainage; a node's segment is derived from its
position, so a node can be moved by editing one number.

Positions along the network use a *flow coordinate*: metres from the top of the main channel
along normal flow. A branch point maps to ``join chainage - (branch length - chainage)``, so a
point on a branch and a point on the main channel below the confluence compare correctly.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")
UNASSIGNED = "unassigned"
NODE_KINDS = ("sensor", "aerator")
AERATOR_TYPES = ("micropore", "fountain")
OUTLET_SIZES = ("large", "small")
FLOW_DIRECTIONS = ("increasing", "decreasing")


class TopologyError(ValueError):
    """The topology file is wrong; the message names the key and the problem."""


@dataclass(frozen=True)
class Name:
    zh: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en}


@dataclass(frozen=True)
class Channel:
    id: str
    name: Name
    length_m: float
    flow: str
    joins_channel: str | None = None
    joins_chainage_m: float | None = None


@dataclass(frozen=True)
class Segment:
    id: str
    name: Name
    channel: str
    start_m: float
    end_m: float
    downstream: str | None = None

    @property
    def mid_m(self) -> float:
        return (self.start_m + self.end_m) / 2

    def contains(self, chainage_m: float, last: bool) -> bool:
        return self.start_m <= chainage_m < self.end_m or (last and chainage_m == self.end_m)


@dataclass(frozen=True)
class Outlet:
    id: str
    size: str
    bank: str
    channel: str
    chainage_m: float
    segment: str


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    channel: str
    chainage_m: float
    segment: str
    creek: str
    aerator: str | None = None
    rated_w: float | None = None

    @property
    def is_aerator(self) -> bool:
        return self.kind == "aerator"


@dataclass
class Creek:
    id: str
    name: Name
    timezone: str
    illustrative: bool
    channels: list[Channel]
    segments: list[Segment]
    outlets: list[Outlet]
    nodes: list[Node]
    _seg: dict[str, Segment] = field(default_factory=dict, repr=False)
    _node: dict[str, Node] = field(default_factory=dict, repr=False)
    _chan: dict[str, Channel] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._seg = {s.id: s for s in self.segments}
        self._node = {n.id: n for n in self.nodes}
        self._chan = {c.id: c for c in self.channels}

    def segment(self, segment_id: str) -> Segment:
        return self._seg[segment_id]

    def node(self, node_id: str) -> Node | None:
        return self._node.get(node_id)

    def channel(self, channel_id: str) -> Channel:
        return self._chan[channel_id]

    def nodes_in(self, segment_id: str, kind: str | None = None) -> list[Node]:
        return [n for n in self.nodes if n.segment == segment_id and (kind is None or n.kind == kind)]

    def outlets_in(self, segment_id: str) -> list[Outlet]:
        return [o for o in self.outlets if o.segment == segment_id]

    def segment_at(self, channel: str, chainage_m: float) -> Segment | None:
        segs = [s for s in self.segments if s.channel == channel]
        top = max((s.end_m for s in segs), default=None)
        for s in segs:
            if s.contains(chainage_m, last=s.end_m == top):
                return s
        return None

    def flow_position(self, channel: str, chainage_m: float) -> float:
        """Metres from the top of the main channel along normal flow (see module doc)."""
        ch = self._chan[channel]
        along = chainage_m if ch.flow == "increasing" else ch.length_m - chainage_m
        if ch.joins_channel is None:
            return along
        parent_pos = self.flow_position(ch.joins_channel, ch.joins_chainage_m or 0.0)
        return parent_pos - (ch.length_m - along)

    def is_downstream(self, a: tuple[str, float], b: tuple[str, float]) -> bool:
        """True when water normally flows from position ``a`` to position ``b``."""
        entry, ch = a, self._chan[a[0]]
        while ch.id != b[0]:
            if not ch.joins_channel:
                return False
            entry = (ch.joins_channel, ch.joins_chainage_m or 0.0)
            ch = self._chan[ch.joins_channel]
        if entry is a:
            return self.flow_position(*b) > self.flow_position(*a)
        return self.flow_position(*b) >= self.flow_position(*entry)

    def upstream_segments(self, segment_id: str) -> list[str]:
        """Segments whose normal flow leads into ``segment_id`` directly."""
        return [s.id for s in self.segments if s.downstream == segment_id]

    def flow_order(self) -> list[Segment]:
        """All segments sorted by flow position of their midpoint (branches before their confluence)."""
        return sorted(self.segments,
                      key=lambda s: self.flow_position(s.channel, s.mid_m))

    def to_api(self) -> dict[str, Any]:
        """The contract's ``GET /api/topology`` shape for this creek (plus a few extra keys)."""
        return {
            "id": self.id,
            "name": self.name.as_dict(),
            "timezone": self.timezone,
            "illustrative": self.illustrative,
            "channels": [
                {"id": c.id, "name": c.name.as_dict(), "length_m": c.length_m, "flow": c.flow,
                 "joins": ({"channel": c.joins_channel, "chainage_m": c.joins_chainage_m}
                           if c.joins_channel else None)}
                for c in self.channels],
            "segments": [
                {"id": s.id, "name": s.name.as_dict(), "channel": s.channel,
                 "start_m": s.start_m, "end_m": s.end_m, "downstream": s.downstream}
                for s in self.segments],
            "outlets": [
                {"id": o.id, "size": o.size, "bank": o.bank, "channel": o.channel,
                 "chainage_m": o.chainage_m, "segment": o.segment}
                for o in self.outlets],
            "nodes": [
                {"id": n.id, "kind": n.kind, "channel": n.channel, "chainage_m": n.chainage_m,
                 "segment": n.segment,
                 **({"aerator": n.aerator, "rated_w": n.rated_w} if n.is_aerator else {})}
                for n in self.nodes],
        }


@dataclass
class Topology:
    creeks: list[Creek]
    source: str = ""

    def creek(self, creek_id: str) -> Creek | None:
        return next((c for c in self.creeks if c.id == creek_id), None)

    def node(self, creek_id: str, node_id: str) -> Node | None:
        creek = self.creek(creek_id)
        return creek.node(node_id) if creek else None

    def all_nodes(self) -> Iterator[Node]:
        for c in self.creeks:
            yield from c.nodes

    def to_api(self) -> dict[str, Any]:
        return {"creeks": [c.to_api() for c in self.creeks]}


# ---- loading ------------------------------------------------------------------------------

def default_topology_path() -> Path:
    return Path(str(resources.files("rivermon.core") / "topologies" / "huanglong.toml"))


def load_topology(path: str | Path | None = None) -> Topology:
    """Load and validate a topology file (the shipped Huanglong Creek when ``path`` is empty)."""
    path = Path(path) if path else default_topology_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(f"topology file {path} does not exist") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_topology(data, source=str(path))
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def parse_topology(data: dict[str, Any], source: str = "") -> Topology:
    creeks_raw = data.get("creeks")
    if not isinstance(creeks_raw, list) or not creeks_raw:
        raise TopologyError("creeks: need at least one [[creeks]] table")
    creeks = [_parse_creek(raw, f"creeks[{i}]") for i, raw in enumerate(creeks_raw)]
    _unique([c.id for c in creeks], "creeks", "id")
    return Topology(creeks, source)


def _get(raw: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...],
         default: Any = ...) -> Any:
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: must be a table")
    if key not in raw:
        if default is ...:
            raise TopologyError(f"{where}.{key}: missing")
        return default
    value = raw[key]
    if kind in (int, float, (int, float)) and isinstance(value, bool):
        raise TopologyError(f"{where}.{key}: must be a number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TopologyError(f"{where}.{key}: must be {names}, got {value!r}")
    return value


def _id(raw: dict[str, Any], where: str, key: str = "id") -> str:
    value = _get(raw, key, where, str)
    if not ID_RE.match(value):
        raise TopologyError(f"{where}.{key}: {value!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
    return value


def _name(raw: dict[str, Any], where: str) -> Name:
    value = _get(raw, "name", where, dict)
    zh = _get(value, "zh", f"{where}.name", str)
    en = _get(value, "en", f"{where}.name", str)
    return Name(zh, en)


def _choice(raw: dict[str, Any], key: str, where: str, choices: tuple[str, ...],
            default: Any = ...) -> str:
    value = _get(raw, key, where, str, default)
    if value not in choices:
        raise TopologyError(f"{where}.{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _unique(ids: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise TopologyError(f"{where}[{i}].{key}: duplicate id {x!r}")
        seen.add(x)


def _items(raw: dict[str, Any], key: str, where: str, required: bool) -> list[dict[str, Any]]:
    items = _get(raw, key, where, list, None if not required else ...)
    if items is None:
        return []
    if required and not items:
        raise TopologyError(f"{where}.{key}: need at least one entry")
    return items


def _parse_creek(raw: dict[str, Any], where: str) -> Creek:
    creek_id = _id(raw, where)
    name = _name(raw, where)
    channels = [_parse_channel(c, f"{where}.channels[{i}]")
                for i, c in enumerate(_items(raw, "channels", where, True))]
    _unique([c.id for c in channels], f"{where}.channels", "id")
    chan = {c.id: c for c in channels}
    _check_joins(channels, chan, where)
    segments = [_parse_segment(s, f"{where}.segments[{i}]", chan)
                for i, s in enumerate(_items(raw, "segments", where, True))]
    _unique([s.id for s in segments], f"{where}.segments", "id")
    if UNASSIGNED in {s.id for s in segments}:
        raise TopologyError(f"{where}.segments: the id {UNASSIGNED!r} is reserved")
    _check_coverage(channels, segments, where)
    segments = _link_downstream(channels, segments)
    probe = Creek(creek_id, name, "", False, channels, segments, [], [])
    outlets = [_parse_outlet(o, f"{where}.outlets[{i}]", probe)
               for i, o in enumerate(_items(raw, "outlets", where, False))]
    _unique([o.id for o in outlets], f"{where}.outlets", "id")
    nodes = [_parse_node(n, f"{where}.nodes[{i}]", probe, creek_id)
             for i, n in enumerate(_items(raw, "nodes", where, True))]
    _unique([n.id for n in nodes], f"{where}.nodes", "id")
    return Creek(creek_id, name, _get(raw, "timezone", where, str, "Asia/Shanghai"),
                 _get(raw, "illustrative", where, bool, False), channels, segments, outlets, nodes)


def _parse_channel(raw: dict[str, Any], where: str) -> Channel:
    length = float(_get(raw, "length_m", where, (int, float)))
    if length <= 0:
        raise TopologyError(f"{where}.length_m: must be positive, got {length}")
    joins = _get(raw, "joins", where, dict, None)
    jc = _get(joins, "channel", f"{where}.joins", str) if joins else None
    jm = float(_get(joins, "chainage_m", f"{where}.joins", (int, float))) if joins else None
    return Channel(_id(raw, where), _name(raw, where), length,
                   _choice(raw, "flow", where, FLOW_DIRECTIONS, "increasing"), jc, jm)


def _check_joins(channels: list[Channel], chan: dict[str, Channel], where: str) -> None:
    roots = [c for c in channels if c.joins_channel is None]
    if len(roots) != 1:
        raise TopologyError(f"{where}.channels: exactly one channel must have no `joins` "
                            f"(the main channel), found {len(roots)}")
    for i, c in enumerate(channels):
        if c.joins_channel is None:
            continue
        if c.joins_channel not in chan:
            raise TopologyError(f"{where}.channels[{i}].joins.channel: unknown channel {c.joins_channel!r}")
        parent = chan[c.joins_channel]
        if not 0 <= (c.joins_chainage_m or 0) <= parent.length_m:
            raise TopologyError(f"{where}.channels[{i}].joins.chainage_m: {c.joins_chainage_m} is "
                                f"beyond channel {parent.id!r} (length {parent.length_m:g} m)")
        seen, cur = {c.id}, parent
        while cur.joins_channel:
            if cur.joins_channel in seen:
                raise TopologyError(f"{where}.channels[{i}].joins: channels join in a loop")
            seen.add(cur.id)
            cur = chan[cur.joins_channel]


def _parse_segment(raw: dict[str, Any], where: str, chan: dict[str, Channel]) -> Segment:
    channel = _get(raw, "channel", where, str)
    if channel not in chan:
        raise TopologyError(f"{where}.channel: unknown channel {channel!r}")
    start = float(_get(raw, "start_m", where, (int, float)))
    end = float(_get(raw, "end_m", where, (int, float)))
    if not 0 <= start < end <= chan[channel].length_m:
        raise TopologyError(f"{where}: start_m {start:g} and end_m {end:g} must satisfy "
                            f"0 <= start_m < end_m <= {chan[channel].length_m:g} (channel {channel!r})")
    return Segment(_id(raw, where), _name(raw, where), channel, start, end)


def _check_coverage(channels: list[Channel], segments: list[Segment], where: str) -> None:
    for c in channels:
        segs = sorted((s for s in segments if s.channel == c.id), key=lambda s: s.start_m)
        if not segs:
            raise TopologyError(f"{where}.segments: channel {c.id!r} has no segment")
        for a, b in zip(segs, segs[1:]):
            if b.start_m < a.end_m:
                raise TopologyError(f"{where}.segments: {a.id!r} and {b.id!r} overlap on channel {c.id!r}")


def _link_downstream(channels: list[Channel], segments: list[Segment]) -> list[Segment]:
    """Fill each segment's ``downstream`` from the channels' flow and joins."""
    chan = {c.id: c for c in channels}
    out = []
    for s in segments:
        c = chan[s.channel]
        same = sorted((x for x in segments if x.channel == c.id), key=lambda x: x.start_m)
        if c.flow == "decreasing":
            same.reverse()
        idx = same.index(s)
        downstream: str | None = None
        if idx + 1 < len(same):
            downstream = same[idx + 1].id
        elif c.joins_channel:
            parent_segs = [x for x in segments if x.channel == c.joins_channel]
            jm = c.joins_chainage_m or 0.0
            hit = [x for x in parent_segs if x.start_m <= jm <= x.end_m]
            # At a boundary the water enters the segment that starts there under the parent's flow.
            if hit:
                pflow = chan[c.joins_channel].flow
                hit.sort(key=lambda x: x.start_m, reverse=(pflow == "decreasing"))
                downstream = hit[-1].id
        out.append(Segment(s.id, s.name, s.channel, s.start_m, s.end_m, downstream))
    return out


def _place(raw: dict[str, Any], where: str, creek: Creek) -> tuple[str, float, str]:
    channel = _get(raw, "channel", where, str)
    if channel not in creek._chan:
        raise TopologyError(f"{where}.channel: unknown channel {channel!r}")
    chainage = float(_get(raw, "chainage_m", where, (int, float)))
    length = creek._chan[channel].length_m
    if not 0 <= chainage <= length:
        raise TopologyError(f"{where}.chainage_m: {chainage:g} is beyond channel {channel!r} "
                            f"(length {length:g} m)")
    seg = creek.segment_at(channel, chainage)
    if seg is None:
        raise TopologyError(f"{where}.chainage_m: {chainage:g} on channel {channel!r} is in no segment")
    declared = _get(raw, "segment", where, str, None)
    if declared is not None and declared != seg.id:
        raise TopologyError(f"{where}.segment: says {declared!r} but chainage {chainage:g} "
                            f"lies in {seg.id!r}")
    return channel, chainage, seg.id


def _parse_outlet(raw: dict[str, Any], where: str, creek: Creek) -> Outlet:
    channel, chainage, seg = _place(raw, where, creek)
    return Outlet(_id(raw, where), _choice(raw, "size", where, OUTLET_SIZES),
                  _get(raw, "bank", where, str), channel, chainage, seg)


def _parse_node(raw: dict[str, Any], where: str, creek: Creek, creek_id: str) -> Node:
    channel, chainage, seg = _place(raw, where, creek)
    kind = _choice(raw, "kind", where, NODE_KINDS)
    aerator = rated = None
    if kind == "aerator":
        aerator = _choice(raw, "aerator", where, AERATOR_TYPES)
        rated = float(_get(raw, "rated_w", where, (int, float)))
        if rated <= 0:
            raise TopologyError(f"{where}.rated_w: must be positive, got {rated:g}")
    return Node(_id(raw, where), kind, channel, chainage, seg, creek_id, aerator, rated)

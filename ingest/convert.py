"""Turn MQTT messages into InfluxDB line protocol and `_accepted` fragments.

Validation itself is :mod:`rivermon.core.reading` (the contract's bad-input table); this module
decides where each outcome goes: accepted readings become ``telemetry`` lines (tags creek,
kind, node, segment; numbers as floats, ``seq`` as an integer), refusals become ``rejects``
lines (bounded per hour, see :class:`RejectsLimiter`), statuses become ``node_status`` lines.
The hot path caches each node's tag prefix so a reading costs one f-string.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from rivermon.core import influx as lp
from rivermon.core import reading as rd
from rivermon.core.topology import UNASSIGNED, Topology

AERATOR_HINTS = ("aerator_on", "power_w")
TOPIC_CACHE_MAX = 100_000
DETAIL_MAX = 1000
R_INTERNAL = "ingest_error"


@dataclass(slots=True)
class NodeTags:
    """What a reading from one node is stored under."""

    segment: str
    kind: str
    registered: bool
    line_prefix: str  # "telemetry,creek=..,kind=..,node=..,segment=.. "
    json_prefix: str  # '{"node":"..","segment":"..","kind":"..","ts":'


@dataclass(slots=True)
class Converted:
    """The outcome of one message: lines for the spool, `_accepted` fragments, counts."""

    lines: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    creek: str = ""
    readings: int = 0
    rejects: list[str] = field(default_factory=list)  # reason per refusal


class RejectsLimiter:
    """At most ``per_hour`` full rejects rows per clock hour; beyond that only counters grow.

    The overflow is still written, as one ``rejects_overflow`` point per hour and reason whose
    ``count`` field is overwritten as it grows (same series and time), so the store stays
    bounded by ``per_hour`` rows an hour however hostile the input.
    """

    def __init__(self, per_hour: int):
        self.per_hour = per_hour
        self.lock = threading.Lock()
        self.hour = -1
        self.used = 0
        self.overflow: Counter[str] = Counter()
        self.dirty: set[str] = set()

    def take(self, reason: str, now: float) -> bool:
        """True when this refusal may be stored in full."""
        with self.lock:
            hour = int(now // 3600)
            if hour != self.hour:
                self.hour, self.used = hour, 0
                self.overflow.clear()
                self.dirty.clear()
            if self.used < self.per_hour:
                self.used += 1
                return True
            self.overflow[reason] += 1
            self.dirty.add(reason)
            return False

    def overflow_lines(self, ingestor: str) -> list[str]:
        """Updated ``rejects_overflow`` points for reasons that grew since the last call."""
        with self.lock:
            out = [lp.line("rejects_overflow", {"ingestor": ingestor, "reason": r},
                           {"count": int(self.overflow[r])}, self.hour * 3_600_000)
                   for r in sorted(self.dirty)]
            self.dirty.clear()
            return out


class UniqueClock:
    """Arrival times in ms that never repeat, so two refusals in one ms are two points."""

    def __init__(self) -> None:
        self.last = 0
        self.lock = threading.Lock()

    def next(self, now: float) -> int:
        with self.lock:
            self.last = max(int(now * 1000), self.last + 1)
            return self.last


class Converter:
    """Messages in, line protocol out; one per ingestor."""

    def __init__(self, topology: Topology, prefix: str, ingestor: str, rejects_per_hour: int,
                 tracker: Any = None):
        self.topology = topology
        self.prefix = prefix
        self.ingestor = ingestor
        self.limiter = RejectsLimiter(rejects_per_hour)
        self.tracker = tracker
        self.clock = UniqueClock()
        self._topics: dict[str, rd.Topic | str] = {}
        self._tags: dict[tuple[str, str, str], NodeTags] = {}
        self._known: dict[tuple[str, str], Any] = {}
        self.reject_counts: Counter[str] = Counter()

    # -- lookups ---------------------------------------------------------------------------

    def topic(self, topic: str) -> rd.Topic | str:
        """The parsed topic, or the sentence saying why it is outside the grammar."""
        hit = self._topics.get(topic)
        if hit is None:
            try:
                hit = rd.parse_topic(topic, self.prefix)
            except rd.TopicError as exc:
                hit = str(exc)
            if len(self._topics) >= TOPIC_CACHE_MAX:
                self._topics.clear()
            self._topics[topic] = hit
        return hit

    def tags(self, creek: str, node: str, fields: dict | None = None) -> NodeTags:
        """Segment and kind from the topology; unknown nodes go under `unassigned`."""
        hit = self._tags.get((creek, node, ""))
        if hit is not None:
            return hit  # a registered node: its kind never depends on the reading
        if (creek, node) in self._known:
            known = self._known[(creek, node)]
        else:
            known = self._known[(creek, node)] = self.topology.node(creek, node)
            if len(self._known) >= TOPIC_CACHE_MAX:
                self._known.clear()
        if known is not None:
            kind = known.kind
        else:
            kind = "aerator" if fields and any(k in fields for k in AERATOR_HINTS) else "sensor"
        key = (creek, node, "" if known is not None else kind)
        hit = self._tags.get(key)
        if hit is None:
            segment = known.segment if known is not None else UNASSIGNED
            tag_str = "".join(f",{k}={lp.escape_key(v)}" for k, v in
                              (("creek", creek), ("kind", kind), ("node", node), ("segment", segment)))
            hit = NodeTags(segment, kind, known is not None, f"telemetry{tag_str} ",
                           f'{{"node":"{node}","segment":"{segment}","kind":"{kind}","ts":')
            if len(self._tags) >= TOPIC_CACHE_MAX:
                self._tags.clear()
            self._tags[key] = hit
        return hit

    # -- telemetry -------------------------------------------------------------------------

    def telemetry(self, topic: str, payload: bytes, now: float | None = None) -> Converted:
        """Validate one telemetry message and build its lines."""
        now = time.time() if now is None else now
        out = Converted()
        t = self.topic(topic)
        if isinstance(t, str):
            self._reject(out, topic, payload, None, [rd.Rejection(rd.R_TOPIC, t)], now)
            return out
        if t.channel != "telemetry":
            self._reject(out, topic, payload, t, [rd.Rejection(
                rd.R_TOPIC, f"topic channel {t.channel!r} is not telemetry")], now)
            return out
        out.creek = t.creek
        data, bad = rd.decode_json(payload)
        if bad:
            self._reject(out, topic, payload, t, [bad], now)
            return out
        result = rd.validate_readings(t.creek, t.node or "", data, now=now, topic=t)
        lines, accepted = out.lines, out.accepted
        node_tags = None
        for r in result.readings:
            fields = r.fields
            if node_tags is None or not node_tags.registered:
                node_tags = self.tags(t.creek, t.node or "", fields)
            # Field names are validated ([a-z][a-z0-9_]*), so they need no escaping in line
            # protocol or JSON; values are floats (repr round-trips) or booleans.
            parts = []
            jparts = []
            for k, v in fields.items():
                text = ("true" if v else "false") if v is True or v is False else repr(v)
                parts.append(f"{k}={text}")
                jparts.append(f'"{k}":{text}')
            body = ",".join(parts)
            jbody = ",".join(jparts)
            ts_ms = r.ts_ms
            if r.seq is not None:
                lines.append(f"{node_tags.line_prefix}{body},seq={r.seq}i {ts_ms}")
                accepted.append(f'{node_tags.json_prefix}{ts_ms / 1000!r},"seq":{r.seq},{jbody}}}')
            else:
                lines.append(f"{node_tags.line_prefix}{body} {ts_ms}")
                accepted.append(f"{node_tags.json_prefix}{ts_ms / 1000!r},{jbody}}}")
        out.readings = len(result.readings)
        if self.tracker is not None and result.readings:
            self.tracker.readings(t.creek, t.node or "", node_tags, result.readings, now)
        if result.rejections:
            self._reject(out, topic, payload, t, result.rejections, now)
        return out

    # -- status ----------------------------------------------------------------------------

    def status(self, topic: str, payload: bytes, now: float | None = None) -> Converted:
        """A retained status or last will: a `node_status` line when it changed."""
        now = time.time() if now is None else now
        out = Converted()
        t = self.topic(topic)
        if isinstance(t, str) or t.channel != "status":
            reason = t if isinstance(t, str) else f"topic channel {t.channel!r} is not status"
            self._reject(out, topic, payload, None if isinstance(t, str) else t,
                         [rd.Rejection(rd.R_TOPIC, reason)], now)
            return out
        out.creek = t.creek
        if not payload:
            return out  # a retained status being cleared: nothing to store, nothing wrong
        status, bad = rd.parse_status(t, payload)
        if bad:
            self._reject(out, topic, payload, t, [bad], now)
            return out
        node_tags = self.tags(t.creek, t.node or "")
        changed = True
        if self.tracker is not None:
            changed = self.tracker.status(t.creek, t.node or "", node_tags, status, now)
        if changed:
            tags = {"creek": t.creek, "node": t.node or "", "segment": node_tags.segment,
                    "kind": node_tags.kind}
            fields: dict[str, Any] = {"state": status.state, "registered": node_tags.registered}
            if status.fw is not None:
                fields["fw"] = status.fw
            out.lines.append(lp.line(lp.NODE_STATUS, tags, fields, self.clock.next(now)))
        return out

    # -- refusals --------------------------------------------------------------------------

    def _reject(self, out: Converted, topic: str, payload: bytes, t: rd.Topic | None,
                rejections: list[rd.Rejection], now: float) -> None:
        """One `rejects` row per reason in this message (counts and details folded in)."""
        by_reason: dict[str, list[str]] = defaultdict(list)
        for rej in rejections:
            by_reason[rej.reason].append(rej.detail)
            out.rejects.append(rej.reason)
            self.reject_counts[rej.reason] += 1
        raw = None
        for reason, details in by_reason.items():
            if not self.limiter.take(reason, now):
                continue
            if raw is None:
                raw = rd.raw_excerpt(payload)
            out.lines.append(self.reject_line(topic, t, reason, details, raw, now))

    def reject_line(self, topic: str, t: rd.Topic | None, reason: str, details: list[str],
                    raw: str, now: float) -> str:
        """One `rejects` point (creek and node tags only when the topic was readable)."""
        detail = "; ".join(details[:5])
        if len(details) > 5:
            detail += f"; and {len(details) - 5} more"
        tags = {"reason": reason, "ingestor": self.ingestor}
        if t is not None:
            tags["creek"] = t.creek
            if t.node:
                tags["node"] = t.node
        fields = {"topic": topic[:1024], "payload": raw, "detail": detail[:DETAIL_MAX],
                  "count": len(details)}
        return lp.line(lp.REJECTS, tags, fields, self.clock.next(now))

    def internal_error(self, topic: str, payload: bytes, exc: Exception) -> Converted:
        """A message the ingestor failed on (a bug): kept in rejects, never dropped silently."""
        out = Converted()
        self._reject(out, topic, payload, None, [rd.Rejection(
            R_INTERNAL, f"the ingestor failed on this message: {type(exc).__name__}: {exc}"[:500])],
            time.time())
        return out

    def periodic_lines(self) -> list[str]:
        """Lines due now regardless of traffic (the per-hour overflow counters)."""
        return self.limiter.overflow_lines(self.ingestor)

"""``rivermon detect``: the live model service.

Subscribes (QoS 1, persistent session) to ``{prefix}/_accepted/+`` (what the ingestor made
durable) and ``{prefix}/+/+/status`` (retained status and last wills), feeds the same
:class:`~rivermon.models.engine.Engine` replay uses, and turns episodes into alerts: kept in
the :class:`~rivermon.core.alerts.AlertStore` at ``{var}/alerts.sqlite``, published on
``{prefix}/{creek}/alerts`` and written to InfluxDB ``alerts`` when an alert opens, changes
severity or is resolved. Detector state is checkpointed to ``{var}/model-state.json`` every
``detect_state_interval_s`` and on SIGTERM, and resumed from there.

The creek clock: data time (the newest reading's ``ts``) advanced by wall time since it
arrived, so the deadman works both in real time and when a simulator publishes a week in a
minute.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from rivermon.core.alerts import AlertPoints, AlertStore, publish_alert
from rivermon.core.clock import DataClock
from rivermon.core.config import Config
from rivermon.core.influx import InfluxClient, InfluxError
from rivermon.core.mqtt import connect_properties, make_client, parse_broker_url, protocol_of
from rivermon.core.reading import parse_status, parse_topic, TopicError
from rivermon.core.topology import Topology, load_topology
from rivermon.models.engine import Engine, Event
from rivermon.models.node import Params

log = logging.getLogger("rivermon.detect")

STATE_FILE = "model-state.json"
ALERTS_DB = "alerts.sqlite"


# Checkpoint before this many messages wait for their acknowledgement (under Mosquitto's
# default max_inflight_messages of 20).
ACK_WINDOW = 16

def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint atomically (a crash leaves the old one or the new one)."""
    tmp = path.with_suffix(".json.tmp")
    try:
        text = json.dumps(state, separators=(",", ":"), allow_nan=False, default=_nan_safe)
    except ValueError:  # a NaN or infinity somewhere: stored as null rather than not at all
        text = json.dumps(_finite(state), separators=(",", ":"), allow_nan=False, default=_nan_safe)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _nan_safe(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def params_from_config(cfg: Config) -> Params:
    """Detector parameters: the defaults, with the settings an operator may change."""
    from zoneinfo import ZoneInfo
    from datetime import datetime

    tz = datetime(2026, 1, 1, tzinfo=ZoneInfo(cfg.timezone)).utcoffset()
    return Params(do_low_mg_l=float(cfg.detect_do_low_mg_l),
                  standards_duration_s=float(cfg.detect_standards_duration_s),
                  low_battery_v=float(cfg.detect_low_battery_v),
                  tz_offset_s=tz.total_seconds() if tz is not None else 8 * 3600.0)


def readings_by_node(items: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Group an ``_accepted`` array into per-node time and field arrays (booleans as 0/1)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in items:
        if isinstance(r, dict) and isinstance(r.get("node"), str) and isinstance(r.get("ts"), (int, float)):
            groups.setdefault(r["node"], []).append(r)
    out = {}
    for node, rs in groups.items():
        t = np.array([float(r["ts"]) for r in rs])
        names = {k for r in rs for k, v in r.items()
                 if k not in ("node", "segment", "kind", "ts", "seq", "creek")
                 and isinstance(v, (int, float, bool))}
        cols = {k: np.array([float(r[k]) if isinstance(r.get(k), (int, float, bool)) else np.nan
                             for r in rs]) for k in names}
        out[node] = (t, cols)
    return out


class DetectService:
    """The running model: MQTT in, alerts out, state checkpointed."""

    def __init__(self, cfg: Config, topology: Topology | None = None):
        self.cfg = cfg
        self.topology = topology or load_topology(cfg.topology or None)
        self.var = Path(cfg.var)
        self.var.mkdir(parents=True, exist_ok=True)
        self.state_path = self.var / STATE_FILE
        self.engine = Engine(self.topology, params_from_config(cfg),
                             autoresolve_s=float(cfg.alert_autoresolve_s))
        self.resumed = self._resume()
        self.store = AlertStore(self.var / ALERTS_DB, tz=cfg.timezone)
        self.influx = InfluxClient(cfg.influx, cfg.influx_db)
        self.alert_points = AlertPoints(self.influx, cfg.timezone)
        self.inbox: queue.Queue = queue.Queue()
        self.connection = 0
        self.unacked: list[tuple[int, int, int]] = []  # (connection, mid, qos), in arrival order
        self.stop = threading.Event()
        self.client = None
        self.clock = DataClock(self.engine.now if self.engine.now != float("-inf") else None)
        self.stats = {"readings": 0, "messages": 0, "bad_messages": 0, "alerts_opened": 0,
                      "alerts_resolved": 0}

    # -- state -----------------------------------------------------------------------------
    def _resume(self) -> bool:
        if not self.state_path.exists():
            return False
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            self.engine.load_state(state)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("model state %s unreadable, starting fresh: %s", self.state_path, exc)
            return False
        log.info("resumed model state", extra={"nodes": len(self.engine.nodes)})
        return True

    def checkpoint(self) -> None:
        """Save the state, then acknowledge every message whose effect it now holds."""
        save_state(self.state_path, self.engine.to_state())
        pending, self.unacked = self.unacked, []
        if self.client is None:
            return
        for connection, mid, qos in pending:
            if qos > 0 and connection == self.connection:
                self.client.ack(mid, qos)

    def _take(self, item: tuple[str, bytes, tuple[int, int, int]]) -> tuple[str, bytes]:
        topic, payload, ack = item
        self.unacked.append(ack)
        return topic, payload

    # -- clock -----------------------------------------------------------------------------
    def creek_now(self) -> float:
        return self.clock.now()

    # -- MQTT --------------------------------------------------------------------------------
    def connect(self) -> None:
        cfg = self.cfg
        v5 = protocol_of(cfg.mqtt_protocol) == 5
        # Manual acknowledgement: a message is acknowledged only once a checkpoint holds its
        # effect, so after a kill -9 the broker redelivers what the saved state has not seen.
        c = make_client(cfg.broker, cfg.detect_client_id, cfg.mqtt_protocol, clean=False,
                        manual_ack=True)
        c.on_connect = self._on_connect
        c.on_message = lambda cl, ud, msg: self.inbox.put(
            (msg.topic, bytes(msg.payload), (self.connection, msg.mid, msg.qos)))
        c.reconnect_delay_set(1, 30)
        b = parse_broker_url(cfg.broker)
        if v5:
            c.connect(b.host, b.port, keepalive=30, clean_start=False,
                      properties=connect_properties(int(cfg.detect_session_expiry_s)))
        else:
            c.connect(b.host, b.port, keepalive=30)
        c.loop_start()
        self.client = c

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.error("broker refused the connection: %s", reason_code)
            return
        # Packet ids belong to one connection: older pending acks must never be sent on this one
        # (the broker redelivers those messages itself).
        self.connection += 1
        p = self.cfg.topic_prefix
        # re-subscribe on every (re)connect: a broker that lost the session forgets them
        client.subscribe([(f"{p}/_accepted/+", 1), (f"{p}/+/+/status", 1)])
        log.info("connected and subscribed", extra={"prefix": p})

    # -- handling ----------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> list[Event]:
        """One MQTT message -> engine -> episode events (also used by tests directly)."""
        p = self.cfg.topic_prefix
        self.stats["messages"] += 1
        if topic.startswith(p + "/_accepted/"):
            creek = topic[len(p) + len("/_accepted/"):]
            items = self._accepted_items(topic, payload)
            return self.feed_items(creek, items) if items else []
        try:
            tp = parse_topic(topic, p)
        except TopicError:
            return []
        if tp.channel != "status" or not payload:
            return []
        status, bad = parse_status(tp, payload)
        if bad or status is None:
            log.warning("status message refused: %s", bad.detail if bad else "?", extra={"topic": topic})
            return []
        return self.engine.status(tp.creek, tp.node or "", status.state, self.creek_now())

    def _accepted_items(self, topic: str, payload: bytes) -> list[dict[str, Any]]:
        try:
            items = json.loads(payload)
        except ValueError as exc:
            self.stats["bad_messages"] += 1
            log.warning("accepted-readings message is not JSON: %s", exc, extra={"topic": topic})
            return []
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            self.stats["bad_messages"] += 1
            return []
        return items

    def feed_items(self, creek: str, items: list[dict[str, Any]]) -> list[Event]:
        """Accepted readings of one creek (any number of nodes) into the engine."""
        groups = readings_by_node(items)
        for node, (t, cols) in groups.items():
            self.stats["readings"] += int(t.size)
            if t.size:
                self.clock.saw(float(t.max()))
        return self.engine.feed_many(creek, [(n, t, c) for n, (t, c) in groups.items()])

    def handle_many(self, messages: list[tuple[str, bytes]]) -> list[Event]:
        """Messages drained together: accepted readings merged per creek and fed once (the
        detectors answer the same whatever the chunking, and big chunks are much cheaper);
        status messages after them, in their order."""
        p = self.cfg.topic_prefix
        merged: dict[str, list[dict[str, Any]]] = {}
        rest = []
        for topic, payload in messages:
            if topic.startswith(p + "/_accepted/"):
                self.stats["messages"] += 1
                merged.setdefault(topic[len(p) + len("/_accepted/"):], []).extend(
                    self._accepted_items(topic, payload))
            else:
                rest.append((topic, payload))
        events: list[Event] = []
        for creek, items in merged.items():
            events += self.feed_items(creek, items)
        for topic, payload in rest:
            events += self.handle(topic, payload)
        return events

    def apply(self, events: list[Event]) -> None:
        """Turn episode events into alert lifecycle changes, emitted once each."""
        changes: dict[int, set[str]] = {}
        order = []
        for ep, change in events:
            if id(ep) not in changes:
                changes[id(ep)] = set()
                order.append(ep)
            changes[id(ep)].add(change)
        now = time.time()
        for ep in order:
            chs = changes[id(ep)]
            if chs - {"resolved"}:
                self._open_or_update(ep, now)
            if "resolved" in chs:
                self._resolve(ep, now)

    def _open_or_update(self, ep, now: float) -> None:
        summary = ep.evidence.get("sentence") or {"zh": ep.kind, "en": ep.kind}
        a, what = self.store.open_or_update(ep.creek, ep.segment, ep.node or None, ep.kind,
                                            ep.severity, ep.start, summary, ep.evidence, now=now)
        if what in ("opened", "severity"):
            if what == "opened":
                self.stats["alerts_opened"] += 1
                log.info("alert opened", extra={"id": a.id, "kind": a.kind, "segment": a.segment,
                                                "node": a.node, "summary": summary.get("en")})
            self._emit(a)

    def _resolve(self, ep, now: float) -> None:
        for a in self.store.list(state=("open", "acknowledged"), segment=ep.segment, kind=ep.kind,
                                 creek=ep.creek):
            if (a.node or "") == ep.node:
                a = self.store.resolve(a.id, "auto", at=now, end=ep.end or ep.last)
                self.stats["alerts_resolved"] += 1
                self._emit(a)

    def _emit(self, alert) -> None:
        if self.client is not None:
            publish_alert(self.client, self.cfg.topic_prefix, alert, self.cfg.timezone)
        self.alert_points.add(alert)
        self.flush_influx()

    def flush_influx(self) -> None:
        self.alert_points.flush()

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *a: self.stop.set())
        signal.signal(signal.SIGINT, lambda *a: self.stop.set())
        try:
            self.influx.ensure_database()
        except InfluxError as exc:
            log.warning("InfluxDB not ready (alerts are kept and retried): %s", exc)
        self.connect()
        log.info("rivermon detect running", extra={"resumed": self.resumed, "var": str(self.var)})
        next_tick = time.monotonic() + float(self.cfg.detect_tick_s)
        next_ckpt = time.monotonic() + float(self.cfg.detect_state_interval_s)
        try:
            while not self.stop.is_set():
                try:
                    batch = [self._take(self.inbox.get(timeout=0.2))]
                    deadline = time.monotonic() + 0.5
                    while len(batch) < 500 and time.monotonic() < deadline:
                        try:
                            batch.append(self._take(self.inbox.get_nowait()))
                        except queue.Empty:
                            break
                    self.apply(self.handle_many(batch))
                except queue.Empty:
                    pass
                except Exception:  # one bad message must not stop the service
                    log.exception("message handling failed")
                mono = time.monotonic()
                if mono >= next_tick:
                    self.apply(self.engine.tick(self.creek_now()))
                    self.flush_influx()
                    next_tick = mono + float(self.cfg.detect_tick_s)
                # Checkpoint on time, and before the unacknowledged messages fill the broker's
                # in-flight window (Mosquitto's default is 20), so the stream never stalls.
                if mono >= next_ckpt or len(self.unacked) >= ACK_WINDOW:
                    self.checkpoint()
                    next_ckpt = mono + float(self.cfg.detect_state_interval_s)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        # drain what already arrived so the checkpoint includes it
        while True:
            try:
                topic, payload = self._take(self.inbox.get_nowait())
            except queue.Empty:
                break
            try:
                self.apply(self.handle(topic, payload))
            except Exception:
                log.exception("message handling failed")
        self.checkpoint()
        log.info("model state saved", extra={"path": str(self.state_path), **self.stats})
        if self.client is not None:
            # disconnect first: the network loop sends the checkpoint's acks before the DISCONNECT
            self.client.disconnect()
            self.client.loop_stop()
        self.store.close()
        self.influx.close()

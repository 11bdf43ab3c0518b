"""``rivermon control``: the live aeration controller.

Subscribes to ``{prefix}/_accepted/+`` (what the ingestor made durable: sensors' DO, aerators'
``aerator_on`` and ``power_w``), ``{prefix}/+/+/status`` (online/offline, last wills) and
``{prefix}/+/alerts`` (open sensor faults make a sensor unusable). Every ``control_tick_s`` it
asks each segment's :class:`~rivermon.control.policy.SegmentController` what its aerators should
do, with the manual overrides of ``{var}/control.sqlite``; each change is published on
``{prefix}/{creek}/{node}/cmd`` (QoS 1) with its reason, logged (JSON log and the ``commands``
table) and awaited: an aerator that does not confirm within ``control_confirm_s``, or confirms
``on`` without drawing power, gets an ``aerator_fault`` alert in ``{var}/alerts.sqlite`` (the
identity the model uses, so one event is one alert), published and written to InfluxDB.

Clocks: decisions use the creek clock (the newest reading's time advanced by wall time since it
arrived, as the model does, so an accelerated simulator is controlled in its own time); override
expiry and confirmation deadlines use the wall clock (they are about people and radios).
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rivermon.core.alerts import AlertPoints, AlertStore, publish_alert
from rivermon.core.clock import DataClock
from rivermon.core.config import Config
from rivermon.core.influx import InfluxClient
from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.core.reading import TopicError, cmd_topic, parse_status, parse_topic
from rivermon.core.topology import Creek, Topology, load_topology

from .board import SENSOR_FAULT_KINDS, DoBoard
from .feedback import UNCONFIRMED, Confirmations, Fault
from .policy import Aerator, ControlParams, Decision, Override, SegmentController
from rivermon.core.aeration import DB_NAME, ControlStore

log = logging.getLogger("rivermon.control")

ALERTS_DB = "alerts.sqlite"
KIND = "aerator_fault"
BY = "rivermon-control"


@dataclass
class CreekControl:
    """Everything the service keeps for one creek."""

    creek: Creek
    board: DoBoard
    controllers: list[SegmentController]
    confirm: Confirmations
    rated: dict[str, float] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)   # aerators whose status says offline


class ControlService:
    """MQTT in, decisions, commands out, confirmations checked."""

    def __init__(self, cfg: Config, topology: Topology | None = None):
        self.cfg = cfg
        self.topology = topology or load_topology(cfg.topology or None)
        self.var = Path(cfg.var)
        self.var.mkdir(parents=True, exist_ok=True)
        self.creeks = {c.id: self._creek_control(c) for c in self.topology.creeks}
        self.store = ControlStore(self.var / DB_NAME)
        self.alerts = AlertStore(self.var / ALERTS_DB, tz=cfg.timezone)
        self.influx = InfluxClient(cfg.influx, cfg.influx_db)
        self.alert_points = AlertPoints(self.influx, cfg.timezone)
        self.inbox: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.client: Any = None
        self.clock = DataClock()
        self.started = time.time()
        self.link_down = False
        self.stats = {"messages": 0, "bad_messages": 0, "commands": 0, "faults": 0}
        self._load_sensor_faults()

    def _creek_control(self, creek: Creek) -> CreekControl:
        params = ControlParams.from_config(self.cfg, creek.timezone)
        ctls = []
        for s in creek.segments:
            aer = [Aerator(n.id, n.aerator or "micropore", n.rated_w or 0.0)
                   for n in creek.nodes_in(s.id, "aerator")]
            if aer:
                ctls.append(SegmentController(s.id, aer, params))
        return CreekControl(creek, DoBoard(creek, float(self.cfg.control_stale_s)), ctls,
                            Confirmations(float(self.cfg.control_confirm_s),
                                          float(self.cfg.control_min_power_frac)),
                            {n.id: n.rated_w or 0.0 for n in creek.nodes if n.is_aerator})

    def _load_sensor_faults(self) -> None:
        """Open sensor faults known before we started (alerts are not retained on the broker)."""
        for a in self.alerts.active():
            cc = self.creeks.get(a.creek)
            if cc and a.node and a.kind in SENSOR_FAULT_KINDS:
                cc.board.set_faulty(a.node, True)

    # -- clock -----------------------------------------------------------------------------
    def creek_now(self) -> float:
        return self.clock.now()

    # -- MQTT --------------------------------------------------------------------------------
    def connect(self) -> None:
        c = make_client(self.cfg.broker, self.cfg.control_client_id, self.cfg.mqtt_protocol)
        c.on_connect = self._on_connect
        c.on_message = lambda cl, ud, msg: self.inbox.put((msg.topic, bytes(msg.payload)))
        c.reconnect_delay_set(1, 30)
        b = parse_broker_url(self.cfg.broker)
        c.connect(b.host, b.port, keepalive=30)
        c.loop_start()
        self.client = c

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.error("broker refused the connection: %s", reason_code)
            return
        p = self.cfg.topic_prefix
        # re-subscribe on every (re)connect: a clean session forgets subscriptions
        client.subscribe([(f"{p}/_accepted/+", 1), (f"{p}/+/+/status", 1), (f"{p}/+/alerts", 1)])
        log.info("connected and subscribed", extra={"prefix": p})

    # -- input -----------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> None:
        """One MQTT message (also called directly by tests)."""
        p = self.cfg.topic_prefix
        self.stats["messages"] += 1
        if topic.startswith(p + "/_accepted/"):
            self._accepted(topic[len(p) + len("/_accepted/"):], payload, topic)
            return
        if topic.startswith(p + "/") and topic.endswith("/alerts") and topic.count("/") == p.count("/") + 2:
            self._alert(payload)
            return
        try:
            tp = parse_topic(topic, p)
        except TopicError:
            return
        cc = self.creeks.get(tp.creek)
        if cc is None or tp.channel != "status" or not payload:
            return
        status, bad = parse_status(tp, payload)
        if bad or status is None:
            log.warning("status message refused: %s", bad.detail if bad else "?", extra={"topic": topic})
            return
        node = tp.node or ""
        cc.board.set_online(node, status.state == "online")
        if node in cc.rated:
            (cc.offline.discard if status.state == "online" else cc.offline.add)(node)

    def _accepted(self, creek: str, payload: bytes, topic: str) -> None:
        cc = self.creeks.get(creek)
        try:
            items = json.loads(payload)
        except ValueError as exc:
            self.stats["bad_messages"] += 1
            log.warning("accepted-readings message is not JSON: %s", exc, extra={"topic": topic})
            return
        if cc is None:
            return
        wall = time.time()
        for r in items if isinstance(items, list) else [items]:
            if not isinstance(r, dict) or not isinstance(r.get("node"), str):
                continue
            ts = r.get("ts")
            if not isinstance(ts, (int, float)) or isinstance(ts, bool):
                continue
            node = r["node"]
            self.clock.saw(float(ts))
            do = r.get("do_mg_l")
            if isinstance(do, (int, float)) and not isinstance(do, bool):
                cc.board.reading(node, float(ts), float(do))
            on = r.get("aerator_on")
            if node in cc.rated and isinstance(on, bool):
                pw = r.get("power_w")
                pw = float(pw) if isinstance(pw, (int, float)) and not isinstance(pw, bool) else None
                settled = cc.confirm.telemetry(node, on, pw, wall)
                if settled is not None:
                    self._settled(cc, node, settled[1])

    def _alert(self, payload: bytes) -> None:
        try:
            ev = json.loads(payload)
        except ValueError:
            return
        if not isinstance(ev, dict) or ev.get("kind") not in SENSOR_FAULT_KINDS:
            return
        cc = self.creeks.get(str(ev.get("creek")))
        if cc and isinstance(ev.get("node"), str):
            cc.board.set_faulty(ev["node"], ev.get("state") in ("open", "acknowledged"))

    # -- deciding ----------------------------------------------------------------------------
    def _overrides(self, wall: float) -> dict[str, Override]:
        return {o["node"]: Override(o["node"], o["mode"], o["until"], o["by"])
                for o in self.store.overrides(wall)}

    def tick(self) -> list[Decision]:
        """Decide every segment, send the changes, check confirmations; returns the commands sent."""
        wall, now = time.time(), self.creek_now()
        if not self.cfg.control_dry_run and not self._link_up(wall):
            return []
        if not self.cfg.control_dry_run:
            self.store.beat(now=wall)  # the panel sends orders itself while no controller beats
        ovs = self._overrides(wall)
        # an override is judged by wall time; hand the controller its end in creek time
        ovs = {n: Override(o.node, o.mode, now + (o.until - wall), o.by) for n, o in ovs.items()}
        grace = wall - self.started < 2 * float(self.cfg.control_tick_s)
        sent = []
        for cc in self.creeks.values():
            for ctl in cc.controllers:
                do, why = cc.board.segment_do(ctl.segment, now)
                if do is None and grace and not any(n in ovs for n in (a.node for a in ctl.aerators)):
                    continue  # just started: give the first readings a moment before falling back
                trend = cc.board.segment_trend(ctl.segment, now) if do is not None else None
                downstream = cc.board.downstream_do(ctl.segment, now)
                for d in ctl.decide(now, do, why, ovs, trend, downstream):
                    if d.changed:
                        if not self._command(cc, d, wall):
                            ctl.forget(d.node)  # not sent: decide (and log) it again next tick
                        sent.append(d)
            for fault in cc.confirm.due(wall):
                self._fault(cc, fault)
        self.flush_influx()
        return sent

    def _link_up(self, wall: float) -> bool:
        """Whether commands can go out; while they cannot, nothing is decided and no deadline runs."""
        up = self.client is not None and self.client.is_connected()
        if not up and not self.link_down:
            log.warning("broker connection down: no commands, confirmation deadlines paused")
        if up and self.link_down:
            log.info("broker connection back: deciding again")
            for cc in self.creeks.values():
                cc.confirm.restart(wall)
        self.link_down = not up
        return up

    def _command(self, cc: CreekControl, d: Decision, wall: float) -> bool:
        """Log and publish one command; False when the broker connection is down."""
        dry = bool(self.cfg.control_dry_run)
        mode = "dry-run" if dry else d.mode
        if not dry and (self.client is None or not self.client.is_connected()):
            return False  # the link dropped within this tick: decided again after reconnecting
        self.store.log_command(creek=cc.creek.id, segment=d.segment, node=d.node, aerator_on=d.on,
                               mode=mode, rule=d.rule, reason=d.reason, do_mg_l=d.do_mg_l, ts=wall)
        self.stats["commands"] += 1
        log.info("aerator command", extra={"creek": cc.creek.id, "segment": d.segment, "node": d.node,
                                           "aerator_on": d.on, "mode": mode, "rule": d.rule,
                                           "do_mg_l": d.do_mg_l, "reason": d.reason["en"],
                                           "reason_zh": d.reason["zh"]})
        if dry:
            return True
        payload = {"aerator_on": d.on, "reason": d.reason_text(), "ts": round(wall, 3),
                   "rule": d.rule, "control_mode": d.mode, "by": BY}
        self.client.publish(cmd_topic(self.cfg.topic_prefix, cc.creek.id, d.node),
                            json.dumps(payload, ensure_ascii=False).encode("utf-8"), qos=1)
        cc.confirm.sent(d.node, d.on, wall, cc.rated.get(d.node, 0.0))
        return True

    # -- feedback ----------------------------------------------------------------------------
    def _settled(self, cc: CreekControl, node: str, fault: Fault | None) -> None:
        if fault is not None:
            self._fault(cc, fault)
            return
        # a good confirmation ends a fault that this service (not the model) raised
        seg = cc.creek.node(node).segment  # type: ignore[union-attr]
        for a in self.alerts.list(state=("open", "acknowledged"), segment=seg, kind=KIND, creek=cc.creek.id):
            if a.node == node and a.evidence.get("source") == "control":
                a = self.alerts.resolve(a.id, "auto")
                log.info("aerator fault resolved: command confirmed", extra={"id": a.id, "node": node})
                self._emit(a)

    def _fault(self, cc: CreekControl, fault: Fault) -> None:
        if fault.mode == UNCONFIRMED and fault.node in cc.offline:
            # its silence is the model's node_offline alert; one event, one alert
            log.info("command unconfirmed by an offline aerator", extra={"node": fault.node})
            return
        node = cc.creek.node(fault.node)
        seg = node.segment if node else "unassigned"
        old = [a for a in self.alerts.list(state=("open", "acknowledged"), segment=seg, kind=KIND,
                                           creek=cc.creek.id) if a.node == fault.node]
        mine = {**fault.evidence, "command_sent": round(fault.sent, 3)}
        # same identity as the model's aerator detector: merge into its alert, keep its evidence
        evidence = {**old[0].evidence, "control": mine} if old and old[0].evidence.get("source") != "control" else mine
        a, change = self.alerts.open_or_update(cc.creek.id, seg, fault.node, KIND, "warning",
                                               fault.sent, fault.summary(), evidence)
        self.stats["faults"] += 1
        log.warning("aerator fault", extra={"id": a.id, "node": fault.node, "mode": fault.mode,
                                            "change": change, "summary": fault.summary()["en"]})
        if change in ("opened", "severity"):
            self._emit(a)

    def _emit(self, alert) -> None:
        if self.client is not None:
            publish_alert(self.client, self.cfg.topic_prefix, alert, self.cfg.timezone)
        self.alert_points.add(alert)

    def flush_influx(self) -> None:
        self.alert_points.flush()

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *a: self.stop.set())
        signal.signal(signal.SIGINT, lambda *a: self.stop.set())
        self.connect()
        log.info("rivermon control running", extra={"var": str(self.var),
                                                    "dry_run": bool(self.cfg.control_dry_run)})
        tick_s = float(self.cfg.control_tick_s)
        next_tick = time.monotonic() + tick_s
        try:
            while not self.stop.is_set():
                try:
                    topic, payload = self.inbox.get(timeout=min(0.2, tick_s))
                    self.handle(topic, payload)
                except queue.Empty:
                    pass
                except Exception:  # one bad message must not stop the service
                    log.exception("message handling failed")
                if time.monotonic() >= next_tick:
                    try:
                        self.tick()
                    except Exception:
                        log.exception("control tick failed")
                    next_tick = time.monotonic() + tick_s
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        log.info("rivermon control stopping", extra=self.stats)
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
        self.store.close()
        self.alerts.close()
        self.influx.close()

"""Publishing the simulated creek on a broker, as real nodes do, in real or accelerated time.

Each node has its own MQTT client (client id ``sim-{creek}-{node}-{pid}``; the run loop services
every connection itself, no thread per node) with a retained
last will ``{"state": "offline", "fw": ...}`` on its status topic; on every (re)connect it
publishes ``{"state": "online", ...}`` retained. Telemetry goes out with QoS 1, one reading per
message, or a backlog array after a radio outage. When a node dies or its radio drops, its
connection is cut without a normal DISCONNECT (MQTT 5: reason code 0x04 "disconnect with will";
MQTT 3.1.1: the socket is closed), so the broker itself publishes the will, as it would for a
real node. For large ``--copies`` runs a *pooled* mode uses one client per creek copy that
publishes every node's status retained itself (no per-node wills).

Aerators subscribe to their ``cmd`` topics, switch, and report at once (an extra reading
stamped with the current simulated time), then at every sampling step as usual.

Time: the simulated clock runs at ``speed`` x real time from the run's start; speed 0 means as
fast as possible. A message is never published before the wall clock reaches its simulated
time, so no reading is ever stamped in the future (the ingestor refuses those).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from rivermon.core.config import Config
from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.core.reading import cmd_topic, status_topic, telemetry_topic

from .engine import Simulation
from .network import Message
from .runner import RunPlan
from .timeparse import rfc3339

log = logging.getLogger("rivermon.sim")
INJECT_SEGMENT = "_sim"


def inject_topic(prefix: str, creek: str) -> str:
    """Where ``rivermon sim --inject`` sends an event to a running simulator of ``creek``."""
    return f"{prefix}/{INJECT_SEGMENT}/{creek}/inject"
PER_NODE_LIMIT = 400
CONNECT_TIMEOUT_S = 30.0
KEEPALIVE_S = 30
RECONNECT_EVERY_S = 2.0
PROGRESS_EVERY_S = 6 * 3600.0  # a log line per six simulated hours


@dataclass
class Command:
    """An aerator command taken off the broker."""
    creek: str
    node: str
    on: bool | None
    reason: str


def parse_cmd(payload: bytes) -> tuple[bool | None, str]:
    """A ``cmd`` payload -> (aerator_on or None for 'back to the timer', reason); ValueError says why."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cmd payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"cmd payload is a JSON {type(data).__name__}, not an object")
    reason = str(data.get("reason", ""))[:200]
    if data.get("mode") in ("schedule", "auto"):
        return None, reason
    if "aerator_on" not in data:
        raise ValueError("cmd payload has no aerator_on (true, false, or null for the local timer)")
    on = data["aerator_on"]
    if on is not None and not isinstance(on, bool):
        raise ValueError(f"cmd aerator_on must be true, false or null, got {on!r}")
    return on, reason


class NodeClient:
    """One MQTT connection that publishes for one node (or, pooled, for many)."""

    def __init__(self, cfg: Config, client_id: str, creek: str, node: str | None, fw: str,
                 prefix: str):
        self.cfg, self.creek, self.node, self.fw, self.prefix = cfg, creek, node, fw, prefix
        self.broker = parse_broker_url(cfg.broker)
        self.v5 = cfg.mqtt_protocol in ("5", "5.0", "v5")
        self.client = make_client(self.broker, client_id, cfg.mqtt_protocol)
        self.client.max_inflight_messages_set(100)
        self.connected = threading.Event()
        self.cut = False
        self.retry_at = 0.0
        self.last_info: mqtt.MQTTMessageInfo | None = None
        if node:
            self.client.will_set(status_topic(prefix, creek, node),
                                 json.dumps({"state": "offline", "fw": fw}), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a, **k: self.connected.clear()

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        if getattr(rc, "is_failure", False):
            log.error("broker refused the node's connection", extra={"node": self.node, "rc": str(rc)})
            return
        if self.node:
            self.status(self.node, "online")
        self.connected.set()

    def start(self, deadline: float) -> None:
        """Connect, retrying until ``deadline`` (monotonic) as a node does while the broker starts.

        No network thread: the run loop services every client (see :meth:`service`).
        """
        while True:
            try:
                self.client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"cannot reach the broker {self.broker.display()}: {exc}") from None
                log.warning("broker not reachable yet; retrying",
                            extra={"broker": self.broker.display(), "error": str(exc)})
                time.sleep(1.0)

    def service(self, timeout: float = 0.0) -> None:
        """Read acks, write what is queued, keep the connection alive; reconnect when it is lost.

        A real node keeps trying to reach the broker; QoS 1 messages published meanwhile wait in
        paho's queue and go out once the connection is back.
        """
        if self.cut:
            return
        rc = self.client.loop(timeout)
        if rc == mqtt.MQTT_ERR_SUCCESS or time.monotonic() < self.retry_at:
            return
        self.retry_at = time.monotonic() + RECONNECT_EVERY_S
        try:
            self.client.reconnect()
        except OSError:
            pass

    def status(self, node: str, state: str) -> None:
        """Publish a node's retained status."""
        self.last_info = self.client.publish(status_topic(self.prefix, self.creek, node),
                                             json.dumps({"state": state, "fw": self.fw}), qos=1,
                                             retain=True)

    def publish(self, topic: str, payload: Any) -> None:
        """Publish telemetry with QoS 1."""
        self.last_info = self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1)

    def wait_connected(self, timeout: float) -> bool:
        """Service the connection until the broker accepted it, or the timeout."""
        deadline = time.monotonic() + timeout
        while not self.connected.is_set() and time.monotonic() < deadline:
            self.client.loop(0.05)
        return self.connected.is_set()

    def flush(self, timeout: float = 10.0) -> None:
        """Service the connection until the broker has acknowledged what this client sent."""
        deadline = time.monotonic() + timeout
        while (self.last_info is not None and not self.last_info.is_published()
               and self.connected.is_set() and time.monotonic() < deadline):
            self.client.loop(0.05)

    def cut_with_will(self) -> None:
        """Drop the connection the way a dead node does, so the broker publishes the will."""
        self.flush()
        self.cut = True
        if self.v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.reasoncodes import ReasonCode
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        else:
            sock = self.client.socket()
            if sock is not None:
                sock.close()
        self.connected.clear()

    def reconnect(self) -> None:
        """The link is back: connect again (on_connect says online) and wait for it."""
        self.cut = False
        self.connected.clear()
        try:
            self.client.reconnect()
        except OSError as exc:
            log.warning("node reconnect failed", extra={"node": self.node, "error": str(exc)})
            return
        self.wait_connected(CONNECT_TIMEOUT_S)

    def stop(self) -> None:
        """Flush, then disconnect cleanly (a node that was cut stays cut)."""
        if not self.cut:
            self.flush()
            self.client.disconnect()
            self.client.loop(0.05)


class LivePublisher:
    """All the node connections of a live run, and the aerators' command subscription."""

    def __init__(self, sims: list[Simulation], cfg: Config, pooled: bool):
        self.cfg, self.sims, self.pooled = cfg, sims, pooled
        self.prefix = cfg.topic_prefix
        self.by_creek = {s.creek_id: s for s in sims}
        self.clients: dict[tuple[str, str], NodeClient] = {}
        self.pools: dict[str, NodeClient] = {}
        self.commands: queue.Queue[Command] = queue.Queue()
        self.injections: queue.Queue[tuple[str, bytes]] = queue.Queue()
        pid = os.getpid()
        for s in sims:
            if pooled:
                self.pools[s.creek_id] = NodeClient(cfg, f"sim-{s.creek_id}-pool-{pid}", s.creek_id,
                                                    None, "", self.prefix)
            else:
                for n in s.creek.nodes:
                    self.clients[(s.creek_id, n.id)] = NodeClient(
                        cfg, f"sim-{s.creek_id}-{n.id}-{pid}"[:64], s.creek_id, n.id,
                        s.links[n.id].fw, self.prefix)
        self.cmd_client = make_client(parse_broker_url(cfg.broker), f"sim-cmd-{pid}", cfg.mqtt_protocol)
        self.cmd_client.on_connect = self._cmd_connect
        self.cmd_client.on_message = self._cmd_message
        self.listening = threading.Event()
        self.cmd_client.on_subscribe = lambda *a, **k: self.listening.set()

    def _all(self) -> list[NodeClient]:
        return list(self.clients.values()) + list(self.pools.values())

    def service(self) -> None:
        """One pass over every connection (acks in, queued packets out, keepalive)."""
        for c in self._all():
            c.service()

    def start(self) -> None:
        """Connect every node (retrying while the broker starts) and the command listener."""
        b = parse_broker_url(self.cfg.broker)
        self.cmd_client.connect_async(b.host, b.port, keepalive=KEEPALIVE_S)
        self.cmd_client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        # Listen for commands before any aerator says it is online (a controller may answer at once).
        if not self.listening.wait(CONNECT_TIMEOUT_S):
            why = ("it refused the cmd subscription" if self.cmd_client.is_connected()
                   else "no connection")
            raise ConnectionError(f"cannot reach the broker {b.display()}: {why} within "
                                  f"{CONNECT_TIMEOUT_S:g} s")
        for c in self._all():
            c.start(deadline)
        for c in self._all():
            if not c.wait_connected(max(0.0, deadline - time.monotonic())):
                raise ConnectionError(f"could not connect node {c.node or c.creek} to the broker "
                                      f"{b.display()} within {CONNECT_TIMEOUT_S:g} s")
        if self.pooled:
            for s in self.sims:
                for n in s.creek.nodes:
                    self.pools[s.creek_id].status(n.id, "online")

    def _cmd_connect(self, client, userdata, flags, rc, props=None) -> None:
        # Re-subscribe on every connect (a broker restart forgets non-persistent sessions).
        client.subscribe([(cmd_topic(self.prefix, s.creek_id, "+"), 1) for s in self.sims]
                         + [(inject_topic(self.prefix, s.creek_id), 1) for s in self.sims])

    def _cmd_message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/inject") and msg.topic.startswith(f"{self.prefix}/{INJECT_SEGMENT}/"):
            self.injections.put((msg.topic.split("/")[-2], msg.payload))
            return
        parts = msg.topic[len(self.prefix) + 1:].split("/")
        if len(parts) != 3:
            return
        creek, node = parts[0], parts[1]
        try:
            on, reason = parse_cmd(msg.payload)
        except ValueError as exc:
            log.warning("cmd refused", extra={"topic": msg.topic, "error": str(exc)})
            return
        self.commands.put(Command(creek, node, on, reason))

    def apply_injections(self) -> None:
        """Events sent with ``rivermon sim --inject`` start at the next step (and go in the truth)."""
        while True:
            try:
                creek, payload = self.injections.get_nowait()
            except queue.Empty:
                return
            sim = self.by_creek.get(creek)
            try:
                raw = json.loads(payload)
                if sim is None or not isinstance(raw, dict):
                    raise ValueError("an injection is a JSON object like a scenario [[events]] table")
                spec = sim.inject(raw)
            except ValueError as exc:
                log.warning("injection refused", extra={"creek": creek, "error": str(exc)})
                continue
            log.info("event injected", extra={"creek": creek, "kind": spec.kind, "target": spec.target})

    def apply_commands(self, now_sim: float) -> None:
        """Hand queued commands to the aerators; each one reports its new state at once."""
        self.apply_injections()
        while True:
            try:
                c = self.commands.get_nowait()
            except queue.Empty:
                return
            sim = self.by_creek.get(c.creek)
            if sim is None:
                continue
            reports = sim.command_now(c.node, c.on, c.reason, now_sim)
            if reports is None:
                log.warning("cmd for a node that is not an aerator of this creek",
                            extra={"creek": c.creek, "node": c.node})
                continue
            log.info("aerator cmd", extra={"creek": c.creek, "node": c.node, "aerator_on": c.on,
                                           "reason": c.reason})
            for m in reports:
                self.send(sim.creek_id, m)

    def send(self, creek: str, m: Message) -> None:
        """Put one simulated message on the wire (a will cuts the node's connection)."""
        if self.pooled:
            pool = self.pools[creek]
            if m.channel == "status":
                pool.status(m.node, m.payload["state"])
            else:
                pool.publish(telemetry_topic(self.prefix, creek, m.node), m.payload)
            return
        c = self.clients[(creek, m.node)]
        if m.channel == "status":
            if m.will:
                c.cut_with_will()
            elif m.payload["state"] == "online":
                c.reconnect()
            return
        c.publish(telemetry_topic(self.prefix, creek, m.node), m.payload)

    def stop(self) -> None:
        """Flush, then disconnect cleanly (a node that was cut stays cut)."""
        for c in self._all():
            c.stop()
        self.cmd_client.disconnect()
        self.cmd_client.loop_stop()


class Pacer:
    """When may a message stamped with simulated time ``at`` go out."""

    def __init__(self, start: float, speed: float):
        self.start, self.speed = start, speed
        self.wall0 = time.time()

    def allowed(self) -> float:
        """The latest simulated time that may go out now."""
        now = time.time()
        if self.speed <= 0 or self.speed == 1:
            # Real time publishes each reading as soon as its stamp is not in the future, so a
            # run that starts in the past (or one interval before now) catches up at once.
            return now
        return min(now, self.start + (now - self.wall0) * self.speed)

    def wait_until(self, at: float, stop: threading.Event, tick: Any) -> None:
        """Wait (servicing connections with ``tick``) until ``at`` may go out."""
        while not stop.is_set():
            ahead = at - self.allowed()
            if ahead <= 0:
                return
            tick()
            stop.wait(min(ahead / max(self.speed, 1.0), 0.2))


def run_live(sims: list[Simulation], plan: RunPlan, cfg: Config, clients: str = "auto") -> int:
    """Publish the run on the broker until it ends (or forever) or SIGTERM/SIGINT."""
    n_nodes = sum(len(s.creek.nodes) for s in sims)
    pooled = clients == "pooled" or (clients == "auto" and n_nodes > PER_NODE_LIMIT)
    pub = LivePublisher(sims, cfg, pooled)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        pub.start()
    except ConnectionError:
        pub.stop()
        raise
    log.info("simulated nodes connected", extra={"nodes": n_nodes, "pooled": pooled,
                                                 "broker": parse_broker_url(cfg.broker).display()})
    pacer = Pacer(plan.start, plan.speed)

    def tick(now_sim: float) -> None:
        """Commands in, connections serviced."""
        pub.apply_commands(now_sim)
        pub.service()

    published = 0
    last_at = plan.start
    next_report = plan.start + PROGRESS_EVERY_S
    t0 = time.monotonic()
    try:
        while not stop.is_set() and not all(s.finished() for s in sims):
            batch: list[tuple[float, int, str, Message]] = []
            for k, s in enumerate(sims):
                if not s.finished():
                    batch += [(m.at, k, s.creek_id, m) for m in s.step()]
            batch.sort(key=lambda x: (x[0], x[1]))
            for at, _, creek, m in batch:
                pacer.wait_until(at, stop, lambda: tick(max(last_at, min(at, pacer.allowed()))))
                if stop.is_set():
                    break
                pub.send(creek, m)
                published += 1
                last_at = max(last_at, at)
            tick(last_at)  # a command's confirmation is never stamped before what went out
            if sims[0].t >= next_report:
                next_report += PROGRESS_EVERY_S
                log.info("simulated up to", extra={"sim_time": rfc3339(sims[0].t, sims[0].creek.timezone),
                                                   "messages": published})
    finally:
        pub.stop()
    elapsed = time.monotonic() - t0
    log.info("simulation ended", extra={"messages": published, "seconds": round(elapsed, 2),
                                        "rate_per_s": round(published / elapsed, 1) if elapsed else None,
                                        "sim_end": sims[0].t})
    print(json.dumps({"messages": published, "seconds": round(elapsed, 2),
                      "rate_per_s": round(published / elapsed, 1) if elapsed else None}), flush=True)
    return 0

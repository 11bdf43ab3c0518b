"""The ingestor: MQTT in, durable spool, acknowledgements, InfluxDB out.

Threads:

- paho's network loop calls :meth:`Ingestor.on_message`: validate, build lines, queue them
  with the message id (no acknowledgement yet).
- the *flusher* (:meth:`Ingestor._flush_loop`) takes everything queued, appends it to the
  spool as one record, ``fdatasync``s, and only then acknowledges those messages, in the order
  received (MQTT 3.1.1 wants that), and publishes their readings on ``{prefix}/_accepted/{creek}``.
  While the spool is at its bound it waits: nothing more is acknowledged, so the broker holds
  the rest (its in-flight window bounds what sits in memory here).
- the *writer* (:class:`~rivermon.ingest.writer.Writer`) moves spooled records into InfluxDB.

Acknowledgements queued for one connection are dropped when it breaks: the broker redelivers
those messages on the persistent session, and writing a reading twice overwrites the identical
point.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from rivermon.core import reading as rd
from rivermon.core.config import Config
from rivermon.core.influx import InfluxClient, InfluxError
from rivermon.core.mqtt import connect_properties, make_client, parse_broker_url, protocol_of
from rivermon.core.topology import Topology

from . import metrics as mx
from .convert import Converter
from .fastclient import BufferedClient
from .nodes import NodeTracker
from .spool import Spool
from .writer import Writer

log = logging.getLogger("rivermon.ingest")

# A group (one spool record, one fdatasync, one run of acknowledgements) closes at this many
# messages or bytes, or this long after its first message: well inside the broker's in-flight
# window (1000), and short enough that acknowledgements flow continuously.
GROUP_MAX_MSGS = 400
GROUP_MAX_BYTES = 2 * 1024 * 1024
GROUP_WAIT_S = 0.010
# `_accepted` messages carry at most this many readings (the contract's backlog limit).
ACCEPTED_MAX_READINGS = 1000
# paho keeps unacknowledged outgoing `_accepted` messages in memory; bound that.
ACCEPTED_QUEUE_MAX = 64
PERIODIC_S = 10.0


def spool_dir(cfg: Config) -> Path:
    return Path(cfg.var) / "ingest" / cfg.ingest_client_id / "spool"


def subscriptions(cfg: Config) -> list[str]:
    """The topic filters, through ``$share/GROUP/`` when a share group is set."""
    filters = [f"{cfg.topic_prefix}/+/+/telemetry", f"{cfg.topic_prefix}/+/+/status"]
    if cfg.ingest_share_group:
        filters = [f"$share/{cfg.ingest_share_group}/{f}" for f in filters]
    return filters


class Ingestor:
    """One ingestor process's moving parts."""

    def __init__(self, cfg: Config, topology: Topology, leaving: bool = False):
        self.cfg = cfg
        self.leaving = leaving
        self.last_message = time.monotonic()
        self.metrics = mx.IngestMetrics()
        self.tracker = NodeTracker()
        self.converter = Converter(topology, cfg.topic_prefix, cfg.ingest_client_id,
                                   cfg.ingest_rejects_per_hour, self.tracker)
        self.spool = Spool(spool_dir(cfg), cfg.ingest_spool_max_mb * 1024 * 1024,
                           fsync=cfg.ingest_fsync)
        if self.spool.lost_bytes:
            log.error("the spool had corrupt records in an older segment (disk damage?); "
                      "they are cut off", extra={"bytes": self.spool.lost_bytes})
        elif self.spool.truncated_bytes:
            log.warning("cut a torn record off the spool; its messages were never acknowledged "
                        "and the broker delivers them again",
                        extra={"bytes": self.spool.truncated_bytes})
        self.influx = InfluxClient(cfg.influx, cfg.influx_db)
        self.writer = Writer(self.spool, self.influx, cfg.ingest_batch_size, cfg.ingest_batch_ms,
                             self.metrics, self._limited_reject_line, cfg.topic_prefix,
                             cfg.ingest_rejects_keep_days)
        self.broker = parse_broker_url(cfg.broker)
        self.v5 = protocol_of(cfg.mqtt_protocol) == mqtt.MQTTv5
        self.client = make_client(self.broker, cfg.ingest_client_id, cfg.mqtt_protocol,
                                  manual_ack=True, clean=False, client_class=BufferedClient)
        self.client.max_inflight_messages_set(32)
        self.client.max_queued_messages_set(ACCEPTED_QUEUE_MAX)
        # Backoff from 1 s, capped at 10 s so a restarted broker is back in use within seconds.
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message
        self.cond = threading.Condition()
        self.generation = 0
        self.connected = False
        self.subscribed = False
        self._reset_pending()
        self.stop_event = threading.Event()
        self.flusher = threading.Thread(target=self._flush_loop, name="spool-flusher", daemon=True)
        self.flusher_heartbeat = time.monotonic()
        self.spool_full = False
        self.http = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.influx.ensure_database()
        except InfluxError as exc:
            # Not fatal: readings wait in the spool until InfluxDB answers.
            log.warning("InfluxDB not reachable at start; spooling until it is",
                        extra={"error": str(exc)[:300]})
        if self.cfg.ingest_metrics_port:
            self.http = mx.serve(self.cfg.ingest_metrics_port, {
                "/metrics": self.render_metrics, "/livez": self.livez, "/readyz": self.readyz})
        self.writer.start()
        self.flusher.start()
        props = connect_properties(self.cfg.ingest_session_expiry_s) if self.v5 else None
        kwargs: dict[str, Any] = {"clean_start": False, "properties": props} if self.v5 else {}
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30, **kwargs)
        self.client.loop_start()
        log.info("ingestor started", extra={
            "broker": self.broker.display(), "influx": self.influx.url, "db": self.cfg.influx_db,
            "client_id": self.cfg.ingest_client_id, "subscriptions": subscriptions(self.cfg),
            "spool": str(self.spool.dir), "spooled_bytes": self.spool.unwritten_bytes()})

    def stop(self, drain_s: float = 5.0, end_session: bool = False) -> None:
        """Flush and acknowledge what is queued, disconnect, give the writer ``drain_s``.

        ``end_session`` asks the broker to delete this client's session (leaving a share
        group for good); otherwise it keeps queueing for us.
        """
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()
        self.flusher.join(10)
        if end_session and self.v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
            self.client.disconnect(properties=props)
        else:
            self.client.disconnect()
        self.client.loop_stop()
        if end_session and not self.v5:
            self._end_311_session()
        self.writer.stop(drain_s)
        self.writer.join(drain_s + 15)
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        self.influx.close()
        self.writer.poster.close()
        self.spool.close()
        log.info("ingestor stopped", extra={"spooled_bytes": self.spool.unwritten_bytes()})

    # -- MQTT callbacks (paho's thread) ---------------------------------------------------------

    def on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                   properties: Any = None) -> None:
        if reason.is_failure:
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        with self.cond:
            self.generation += 1
            self.connected = True
        self.metrics.connects += 1
        # Resubscribe on every connect: a session the broker lost (restart without
        # persistence, expiry) would otherwise leave us connected and deaf.
        topics = subscriptions(self.cfg)
        if self.leaving:
            # Leaving: take no new messages, only what the session already holds.
            client.unsubscribe(topics)
            self.subscribed = True
            log.info("leaving: unsubscribed; draining what the broker queued for this session",
                     extra={"filters": topics})
            return
        self._drop_old_subscriptions(client, topics)
        if self.v5:
            from paho.mqtt.subscribeoptions import SubscribeOptions
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        else:
            client.subscribe([(t, 1) for t in topics])
        log.info("connected to the broker", extra={
            "session_present": bool(getattr(flags, "session_present", False)),
            "broker": self.broker.display()})

    def _drop_old_subscriptions(self, client: mqtt.Client, topics: list[str]) -> None:
        """Unsubscribe filters an earlier run of this client id had (say, before a share group
        was set): the persistent session keeps them, and they would deliver twice."""
        path = spool_dir(self.cfg).parent / "subscriptions.json"
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = []
        stale = [t for t in old if isinstance(t, str) and t not in topics]
        if stale:
            client.unsubscribe(stale)
            log.info("unsubscribed filters of an earlier configuration", extra={"filters": stale})
        if stale or old != topics:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(topics))
            tmp.replace(path)

    def on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                     properties: Any = None) -> None:
        bad = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if bad:
            log.error("broker refused a subscription", extra={"reasons": bad})
            return
        self.subscribed = True

    def on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                      properties: Any = None) -> None:
        with self.cond:
            self.generation += 1  # acks queued for the old connection must not be sent
            self.connected = False
            self.subscribed = False
        if not self.stop_event.is_set():
            log.warning("disconnected from the broker; reconnecting with backoff",
                        extra={"reason": str(reason)})

    def on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Validate and queue one message; its acknowledgement waits for the spool."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = repr(msg._topic)[:300]
        payload = msg.payload
        self.last_message = time.monotonic()
        try:
            if topic.endswith("/status"):
                out = self.converter.status(topic, payload)
                self.metrics.messages["status"] += 1
            else:
                out = self.converter.telemetry(topic, payload)
                self.metrics.messages["telemetry"] += 1
                self.metrics.readings += out.readings
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop ingestion
            log.exception("could not process a message; it is kept in rejects",
                          extra={"topic": topic[:300]})
            out = self.converter.internal_error(topic, payload, exc)
        size = sum(len(x) for x in out.lines)
        with self.cond:
            if out.lines:
                self.p_lines.extend(out.lines)
                self.p_bytes += size
            if msg.qos:
                if self.p_gen != self.generation:
                    # Packet ids of an earlier connection: never send them on this one (the
                    # broker redelivers those messages itself).
                    self.p_acks, self.p_gen = [], self.generation
                self.p_acks.append(msg.mid)
            if out.accepted:
                self.p_accepted[out.creek].extend(out.accepted)
            self.p_msgs += 1
            if self.p_msgs == 1 or self.p_msgs >= GROUP_MAX_MSGS or self.p_bytes >= GROUP_MAX_BYTES:
                self.cond.notify()

    # -- the flusher -----------------------------------------------------------------------

    def _reset_pending(self) -> None:
        self.p_lines: list[str] = []
        self.p_bytes = 0
        self.p_acks: list[int] = []
        self.p_gen = self.generation
        self.p_accepted: dict[str, list[str]] = defaultdict(list)
        self.p_msgs = 0

    def _flush_loop(self) -> None:
        next_periodic = time.monotonic() + PERIODIC_S
        while True:
            self.flusher_heartbeat = time.monotonic()
            group = self._take_group()
            if group is None:
                return
            lines, nbytes, acks, accepted, generation = group
            if time.monotonic() >= next_periodic:
                lines += self.converter.periodic_lines()
                next_periodic = time.monotonic() + PERIODIC_S
            if lines:
                self.spool.append("\n".join(lines).encode("utf-8"), len(lines))
                self.metrics.spool_appends += 1
            self.spool.sync()
            with self.cond:
                current = generation == self.generation and self.connected
            if current:
                self.client.ack_many(acks)
                self.metrics.acks += len(acks)
            if accepted and self.cfg.ingest_publish_accepted:
                self._publish_accepted(accepted)

    def _take_group(self) -> tuple | None:
        """Wait for queued messages, and for room in the spool; take them all."""
        with self.cond:
            while not self.p_msgs:
                if self.stop_event.is_set():
                    return None
                self.cond.wait(1.0)
                self.flusher_heartbeat = time.monotonic()
            if self.p_msgs < GROUP_MAX_MSGS and not self.stop_event.is_set():
                self.cond.wait(GROUP_WAIT_S)
        while self.spool.full(self.p_bytes) and not self.stop_event.is_set():
            if not self.spool_full:
                log.warning("spool is full: acknowledgements stop until InfluxDB takes more",
                            extra={"spooled_bytes": self.spool.unwritten_bytes(),
                                   "bound_bytes": self.spool.max_bytes})
            self.spool_full = True
            with self.spool.cond:
                self.spool.cond.wait(0.5)
            self.flusher_heartbeat = time.monotonic()
        if self.spool_full and not self.spool.full(self.p_bytes):
            log.info("spool has room again; acknowledging resumes")
        self.spool_full = self.spool.full(self.p_bytes)
        with self.cond:
            group = (self.p_lines, self.p_bytes, self.p_acks, self.p_accepted, self.p_gen)
            self._reset_pending()
        return group

    def _publish_accepted(self, accepted: dict[str, list[str]]) -> None:
        """The group's readings on `{prefix}/_accepted/{creek}`, in bounded JSON arrays."""
        if not self.connected:
            self.metrics.accepted_dropped += sum(len(v) for v in accepted.values())
            return
        for creek, frags in accepted.items():
            topic = f"{self.cfg.topic_prefix}/_accepted/{creek}"
            for i in range(0, len(frags), ACCEPTED_MAX_READINGS):
                chunk = frags[i:i + ACCEPTED_MAX_READINGS]
                info = self.client.publish(topic, "[" + ",".join(chunk) + "]", qos=1)
                if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    self.metrics.accepted_published += len(chunk)
                else:
                    self.metrics.accepted_dropped += len(chunk)

    def _limited_reject_line(self, topic: str, t: rd.Topic | None, reason: str,
                             details: list[str], raw: str, now: float) -> str | None:
        """A rejects row for the writer's refused points, counted and within the hour's cap."""
        self.converter.reject_counts[reason] += 1
        if not self.converter.limiter.take(reason, now):
            return None
        return self.converter.reject_line(topic, t, reason, details, raw, now)

    def _end_311_session(self) -> None:
        """MQTT 3.1.1 ends a session by connecting once with a clean session."""
        done = threading.Event()
        c = make_client(self.broker, self.cfg.ingest_client_id, self.cfg.mqtt_protocol, clean=True)
        c.on_connect = lambda *a, **k: done.set()
        try:
            c.connect(self.broker.host, self.broker.port, keepalive=10)
            c.loop_start()
            done.wait(10)
            c.disconnect()
            c.loop_stop()
        except OSError as exc:
            log.warning("could not end the session", extra={"error": str(exc)})

    def drained(self, idle_s: float) -> bool:
        """Nothing arrived for ``idle_s``, nothing is queued, InfluxDB has everything."""
        with self.cond:
            queued = self.p_msgs
        return (self.connected and queued == 0 and self.spool.unwritten_bytes() == 0
                and time.monotonic() - self.last_message >= idle_s)

    # -- health and metrics ----------------------------------------------------------------

    def livez(self) -> tuple[int, str, str]:
        now = time.monotonic()
        stale = [name for name, beat in (("flusher", self.flusher_heartbeat),
                                         ("writer", self.writer.heartbeat)) if now - beat > 60]
        # A writer blocked in a long InfluxDB timeout still beats at least every timeout + 1 s.
        mqtt_thread = getattr(self.client, "_thread", None)
        if mqtt_thread is not None and not mqtt_thread.is_alive() and not self.stop_event.is_set():
            stale.append("mqtt")
        if stale or not self.writer.is_alive() or not self.flusher.is_alive():
            return 503, "application/json", json.dumps({"live": False, "stale": stale}) + "\n"
        return 200, "application/json", json.dumps({"live": True}) + "\n"

    def readyz(self) -> tuple[int, str, str]:
        body = {"mqtt": "subscribed" if self.subscribed else "connected" if self.connected else "down",
                "influx": "ok" if self.writer.healthy else "failing",
                "spool_bytes": self.spool.unwritten_bytes(), "spool_full": self.spool_full}
        ready = self.subscribed and not self.spool_full
        return (200 if ready else 503), "application/json", json.dumps(body) + "\n"

    def render_metrics(self) -> tuple[int, str, str]:
        from .metrics_text import render
        return 200, "text/plain; version=0.0.4; charset=utf-8", render(self)

"""The live side of the panel: segment status, the MQTT connection, and SSE fan-out.

One :class:`LiveHub` per app computes the ``/api/segments`` snapshot (cached for a second so
twenty clients cost one InfluxDB query), recomputes it every ``web_refresh_s`` and at once when
an alert event arrives on the broker, and pushes changes to every open page as Server-Sent
Events. Its MQTT connection (re-subscribed on every connect) is also what ``/healthz`` reports
and what alert actions are published through.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable

from rivermon.core.config import Config
from rivermon.core.influx import InfluxError
from rivermon.core.topology import Topology

from .queries import PanelQueries
from .status import STATUSES, UNRESOLVED, segment_status, sort_alerts
from .timeutil import iso

log = logging.getLogger("rivermon.web.live")
SNAPSHOT_TTL_S = 1.0
MAX_QUEUE = 100  # events buffered per SSE client; a client that falls this far behind is dropped


class LiveHub:
    """Segment snapshots, MQTT alert/cmd subscription and SSE subscribers."""

    def __init__(self, cfg: Config, topology: Topology, queries: PanelQueries,
                 alerts: Any, on_snapshot: Callable[[dict], None] | None = None):
        self.cfg = cfg
        self.topology = topology
        self.queries = queries
        self.alerts = alerts
        self.on_snapshot = on_snapshot
        self._lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_at = 0.0
        self._encoded: tuple[dict[str, Any], bytes] | None = None
        self._subs: set[queue.Queue] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = None
        self.broker_connected = False
        self.commands: deque[dict[str, Any]] = deque(maxlen=200)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, mqtt: bool = True) -> "LiveHub":
        if mqtt:
            self._start_mqtt()
        self._thread = threading.Thread(target=self._loop, name="rivermon-web-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.drop_clients()
        if self._thread:
            self._thread.join(5)
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
            self.client = None

    def drop_clients(self) -> int:
        """End every open stream now (their pages reconnect by themselves); returns how many."""
        with self._lock:
            subs = list(self._subs)
            self._subs.clear()
        for q in subs:
            q.dropped = True  # type: ignore[attr-defined]
            try:
                q.put_nowait(None)  # wake the stream so it ends now
            except queue.Full:
                pass
        return len(subs)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _start_mqtt(self) -> None:
        from rivermon.core.mqtt import make_client, parse_broker_url

        url = parse_broker_url(self.cfg.broker)
        client = make_client(url, f"rivermon-web-{uuid.uuid4().hex[:8]}", self.cfg.mqtt_protocol)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 10)
        self.client = client
        try:
            client.connect_async(url.host, url.port, keepalive=15)
        except (OSError, ValueError) as exc:
            log.warning("broker connect failed", extra={"error": str(exc)})
        client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("broker refused the panel", extra={"rc": str(rc)})
            return
        self.broker_connected = True
        prefix = self.cfg.topic_prefix
        # Re-subscribe on every connect: the session is clean.
        client.subscribe([(f"{prefix}/+/alerts", 1), (f"{prefix}/+/+/cmd", 1)])
        log.info("panel connected to broker")

    def _on_disconnect(self, client, userdata, flags, rc, props=None) -> None:
        self.broker_connected = False

    def _on_message(self, client, userdata, msg) -> None:
        try:
            payload = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("unreadable message skipped", extra={"topic": msg.topic})
            return
        if not isinstance(payload, dict):
            return
        if msg.topic.endswith("/alerts"):
            self.broadcast("alert", payload, private=True)
            self._wake.set()
        elif msg.topic.endswith("/cmd"):
            parts = msg.topic.split("/")
            self.commands.appendleft({"node": parts[-2], "creek": parts[-3], **payload,
                                      "received": time.time()})

    # ---- snapshots ----------------------------------------------------------------------
    def segments(self, max_age_s: float = SNAPSHOT_TTL_S) -> dict[str, Any]:
        """The ``/api/segments`` payload, at most ``max_age_s`` old."""
        snap = self._snapshot
        complete = snap is not None and all(s["updated"] is not None for s in snap["segments"])
        if not complete:
            max_age_s = 0.0  # a segment without data yet: look again rather than serve a gap
        if snap is not None and time.monotonic() - self._snapshot_at <= max_age_s:
            return snap
        if complete and not self._compute_lock.acquire(blocking=False):
            # Someone is already recomputing: serve the last answer rather than queue behind it.
            return snap
        if not complete:
            self._compute_lock.acquire()
        try:
            if self._snapshot is not None and time.monotonic() - self._snapshot_at <= max_age_s:
                return self._snapshot
            return self._refresh()
        finally:
            self._compute_lock.release()

    def segments_json(self) -> bytes:
        """The snapshot as JSON bytes, encoded once per snapshot."""
        snap = self.segments()
        cached = self._encoded
        if cached is not None and cached[0] is snap:
            return cached[1]
        body = json.dumps(snap, ensure_ascii=False, separators=(",", ":")).encode()
        self._encoded = (snap, body)
        return body

    def _refresh(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            snap = self.compute()
        except InfluxError as exc:
            log.warning("segment status query failed", extra={"error": str(exc)})
            if self._snapshot is None:
                raise
            snap = dict(self._snapshot, stale=True, error=str(exc))
        self._snapshot, self._snapshot_at = snap, started
        if self.on_snapshot:
            self.on_snapshot(snap)
        return snap

    def compute(self, now_s: float | None = None) -> dict[str, Any]:
        """Status, latest DO and turbidity and open alerts for every segment."""
        now_s = time.time() if now_s is None else now_s
        unresolved = [a for a in self.alerts.unresolved() if a.get("state") in UNRESOLVED]
        out = []
        aerators: dict[str, Any] = {}
        nodes: dict[str, Any] = {}
        for creek in self.topology.creeks:
            latest = self.queries.latest_by_segment(creek.id, now_s=now_s)
            per_node = self.queries.latest_by_node(creek.id, fields=("aerator_on", "do_mg_l"), now_s=now_s)
            for node, vals in per_node.items():
                if "aerator_on" in vals:
                    aerators[node] = {"aerator_on": vals["aerator_on"].value,
                                      "time": iso(vals["aerator_on"].ts_s, creek.timezone)}
                seen = max(v.ts_s for v in vals.values())
                nodes[node] = {"last": iso(seen, creek.timezone),
                               "online": now_s - seen <= self.cfg.web_offline_after_s}
            for seg in creek.segments:
                vals = latest.get(seg.id, {})
                do, turb = vals.get("do_mg_l"), vals.get("turbidity_ntu")
                times = [v.ts_s for v in (do, turb) if v and v.ts_s]
                newest = max(times) if times else None
                alerts = sort_alerts(a for a in unresolved
                                     if a.get("segment") == seg.id and a.get("creek", creek.id) == creek.id)
                top = alerts[0] if alerts else None
                out.append({
                    "id": seg.id, "creek": creek.id, "name": seg.name.as_dict(), "channel": seg.channel,
                    "status": segment_status(newest, alerts, now_s, self.cfg.web_offline_after_s),
                    "do_mg_l": do.value if do else None,
                    "turbidity_ntu": turb.value if turb else None,
                    "updated": iso(newest, creek.timezone),
                    "do_updated": iso(do.ts_s if do else None, creek.timezone),
                    "turbidity_updated": iso(turb.ts_s if turb else None, creek.timezone),
                    "open_alerts": len(alerts),
                    "unacknowledged": sum(1 for a in alerts if a.get("state") == "open"),
                    "top_alert": ({"id": top.get("id"), "kind": top.get("kind"),
                                   "severity": top.get("severity"), "summary": top.get("summary")}
                                  if top else None),
                })
        return {"segments": out, "aerators": aerators, "nodes": nodes,
                "generated": iso(now_s, self.topology.creeks[0].timezone)}

    def _loop(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                with self._compute_lock:
                    snap = self._refresh()
                body = json.dumps(snap["segments"], sort_keys=True)
                if body != last:
                    last = body
                    self.broadcast("segments", snap)
            except Exception as exc:  # keep refreshing whatever one round did
                log.warning("live refresh failed", extra={"error": str(exc)})
            self._wake.wait(self.cfg.web_refresh_s)
            self._wake.clear()

    def wake(self) -> None:
        """Recompute now (after an alert action)."""
        self._wake.set()

    # ---- SSE fan-out --------------------------------------------------------------------
    def subscribe(self, private: bool) -> queue.Queue:
        q: queue.Queue = queue.Queue(MAX_QUEUE)
        q.private = private  # type: ignore[attr-defined]
        with self._lock:
            self._subs.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._subs.discard(q)

    @property
    def client_count(self) -> int:
        return len(self._subs)

    def broadcast(self, event: str, data: Any, private: bool = False) -> None:
        """Send to every subscriber (``private`` events only to logged-in ones)."""
        with self._lock:
            for q in list(self._subs):
                if private and not q.private:  # type: ignore[attr-defined]
                    continue
                try:
                    q.put_nowait((event, data))
                except queue.Full:
                    # A client this far behind is cut off; its EventSource reconnects.
                    self._subs.discard(q)
                    q.dropped = True  # type: ignore[attr-defined]

    def status_counts(self) -> dict[str, int]:
        snap = self._snapshot or {"segments": []}
        counts = {s: 0 for s in STATUSES}
        for seg in snap["segments"]:
            counts[seg["status"]] = counts.get(seg["status"], 0) + 1
        return counts

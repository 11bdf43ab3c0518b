"""The ``rivermon notify`` service: MQTT listener -> outbox -> notifier -> one courier per target.

Delivery semantics (tested in tests/test_notify_service.py):

- An alert event is acknowledged to the broker (QoS 1, manual acks, in order) only after it is
  committed to the outbox. The session is persistent (``notify_client_id``, clean start off,
  ``notify_session_expiry_s``), so events published while the notifier is down wait in the broker.
- Each target has its own courier thread sending that target's messages strictly in order.
  A failure (network, HTTP status, robot errcode) is retried after ``notify_retry_base_s``,
  doubling up to ``notify_retry_max_s``, forever: nothing is dropped while a target is down, and
  nothing behind the failed message overtakes it. A restart resumes from the outbox.
- At-least-once towards the targets: a crash between a target's answer and the outbox update
  sends that one message again (the ``X-Rivermon-Delivery`` header lets a webhook deduplicate).
"""

from __future__ import annotations

import fcntl
import logging
import random
import signal
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

import requests

from rivermon.core.config import Config
from rivermon.core.mqtt import connect_properties, make_client, parse_broker_url, protocol_of
from rivermon.core.topology import TopologyError, load_topology
from rivermon.notify.message import Texts
from rivermon.notify.notifier import Notifier, Policy
from rivermon.notify.outbox import Outbox
from rivermon.notify.quiet import parse_quiet_hours
from rivermon.notify.routes import Target, empty_routes, load_routes
from rivermon.notify.targets import DeliveryError, send

log = logging.getLogger("rivermon.notify")

TICK_S = 0.25          # how often timers (reminders, escalation, quiet hours) are checked
PRUNE_EVERY_S = 3600.0


def outbox_path(cfg: Config) -> Path:
    return Path(cfg.var) / "notify.sqlite"


def alerts_subscription(prefix: str) -> str:
    return f"{prefix}/+/alerts"


def backoff(attempts: int, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempts`` (1, 2, ...): base * 2^(n-1), capped, with jitter."""
    delay = min(max_s, base_s * (2 ** min(attempts - 1, 30)))
    return delay * random.uniform(0.8, 1.0)


class Listener:
    """Subscribes to ``{prefix}/+/alerts`` and acknowledges each event once it is in the outbox."""

    def __init__(self, cfg: Config, outbox: Outbox, on_event: Callable[[], None],
                 on_fatal: Callable[[str], None]):
        self.cfg = cfg
        self.outbox = outbox
        self.on_event = on_event
        self.on_fatal = on_fatal
        self.topic = alerts_subscription(cfg.topic_prefix)
        self.subscribed = threading.Event()
        self.stopping = False
        self.failed = False
        self.client = make_client(cfg.broker, cfg.notify_client_id, cfg.mqtt_protocol,
                                  manual_ack=True, clean=False)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        b = parse_broker_url(self.cfg.broker)
        if protocol_of(self.cfg.mqtt_protocol) == 5:
            self.client.connect_async(b.host, b.port, keepalive=30, clean_start=False,
                                      properties=connect_properties(self.cfg.notify_session_expiry_s))
        else:
            self.client.connect_async(b.host, b.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        # Subscribe on every (re)connect: a broker that lost the session must not lose us.
        client.subscribe(self.topic, qos=1)
        log.info("connected to broker", extra={"broker": parse_broker_url(self.cfg.broker).display(),
                                               "session_present": getattr(flags, "session_present", None)})

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any = None) -> None:
        self.subscribed.set()
        log.info("subscribed", extra={"topic": self.topic})

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        self.subscribed.clear()
        log.log(logging.INFO if self.stopping else logging.WARNING, "disconnected from broker",
                extra={"reason": str(reason)})

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.split("/")[-2].startswith("_"):
            # `{prefix}/_accepted/alerts` (readings of a creek named "alerts") also matches the
            # wildcard; creek ids never start with "_", so it is not an alert event.
            client.ack(msg.mid, msg.qos)
            return
        if self.failed:
            return  # acks stay in order: nothing after an unstored event is acknowledged
        try:
            self.outbox.add_event(msg.topic, msg.payload, time.time())
        except Exception as exc:  # disk full, file gone: do not ack; stop so the broker keeps it
            self.failed = True
            log.exception("could not store an alert event; not acknowledged")
            self.on_fatal(f"outbox write failed: {exc}")
            return
        client.ack(msg.mid, msg.qos)
        self.on_event()


class Courier(threading.Thread):
    """Sends one target's queued messages in order, retrying the head until it goes through."""

    def __init__(self, outbox: Outbox, target: Target, cfg: Config, stop: threading.Event):
        super().__init__(name=f"courier-{target.name}", daemon=True)
        self.outbox = outbox
        self.target = target
        self.cfg = cfg
        self.stop_event = stop
        self.wake = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        try:
            while not self.stop_event.is_set():
                try:
                    self._step(session)
                except Exception:  # the outbox was busy or a bug: log, pause, carry on
                    log.exception("courier step failed", extra={"target": self.target.name})
                    self.stop_event.wait(1.0)
        finally:
            session.close()

    def _step(self, session: requests.Session) -> None:
        self.wake.clear()
        head = self.outbox.head(self.target.name)
        now = time.time()
        if head is None or head.next_try > now:
            self.wake.wait(1.0 if head is None else min(1.0, head.next_try - now))
            return
        try:
            send(session, self.target, head.body, head.seq, self.cfg.notify_http_timeout_s)
        except DeliveryError as exc:
            delay = backoff(head.attempts + 1, self.cfg.notify_retry_base_s, self.cfg.notify_retry_max_s)
            self.outbox.failed(head.seq, str(exc), time.time() + delay)
            log.warning("delivery failed; will retry", extra={
                "target": self.target.name, "url": self.target.display_url(), "delivery": head.seq,
                "attempt": head.attempts + 1, "retry_in_s": round(delay, 2), "error": str(exc)})
            return
        self.outbox.delivered(head.seq, time.time())
        log.info("delivered", extra={"target": self.target.name, "delivery": head.seq,
                                     "alert": head.alert_id, "reason": head.reason})


def _lock_var(var: Path) -> IO[bytes]:
    """One notifier per outbox: two would send every message twice."""
    var.mkdir(parents=True, exist_ok=True)
    f = open(var / "notify.lock", "wb")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ValueError(f"another rivermon notify is running with the outbox in {var} "
                         "(notify.lock is held)") from None
    return f


class NotifyService:
    """Listener, notifier and couriers over one outbox; start() and stop() it."""

    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.routes = load_routes(cfg.notify_routes, cfg.timezone) if cfg.notify_routes else empty_routes()
        policy = Policy(cfg.notify_remind_s, cfg.notify_escalate_s,
                        parse_quiet_hours(cfg.notify_quiet_hours, cfg.timezone))
        try:
            topology = load_topology(cfg.topology or None)
        except TopologyError as exc:
            log.warning("topology unreadable; messages show segment ids only", extra={"error": str(exc)})
            topology = None
        self._lock_file = _lock_var(Path(cfg.var))
        self.outbox = Outbox(outbox_path(cfg))
        self.stop_event = threading.Event()
        self.events_ready = threading.Event()
        self.fatal: str | None = None
        self.couriers = {name: Courier(self.outbox, t, cfg, self.stop_event)
                         for name, t in self.routes.targets.items()}
        store = Path(cfg.var) / "alerts.sqlite" if cfg.notify_alert_store else None
        self.notifier = Notifier(self.outbox, self.routes, Texts(cfg.notify_panel_url, cfg.timezone, topology),
                                 policy, clock, store, self._wake_courier)
        self.listener = Listener(cfg, self.outbox, self.events_ready.set, self._fatal)
        self._brain = threading.Thread(target=self._run_brain, name="notifier", daemon=True)

    def start(self) -> "NotifyService":
        if not self.routes.routes:
            log.warning("no routes configured (notify_routes); alert events are recorded, not sent")
        for name, counts in self.outbox.status()["targets"].items():
            waiting = counts.get("queued", 0) + counts.get("held", 0)
            if name not in self.routes.targets and waiting:
                log.error("messages wait for a target the routes file no longer has; kept in the "
                          "outbox until it is configured again", extra={"target": name, "waiting": waiting})
        for courier in self.couriers.values():
            courier.start()
        self._brain.start()
        self.listener.start()
        log.info("notify started", extra={"outbox": str(self.outbox.path), "routes": self.routes.source,
                                          "targets": {n: t.display_url() for n, t in self.routes.targets.items()}})
        return self

    def stop(self) -> None:
        self.listener.stop()
        self.stop_event.set()
        self.events_ready.set()
        for courier in self.couriers.values():
            courier.wake.set()
        for thread in (self._brain, *self.couriers.values()):
            if thread.ident is not None:  # started
                thread.join(max(10.0, self.cfg.notify_http_timeout_s + 2))
        self.notifier.close()
        self.outbox.close()
        self._lock_file.close()

    def _fatal(self, why: str) -> None:
        self.fatal = why
        self.stop_event.set()

    def _wake_courier(self, target: str) -> None:
        courier = self.couriers.get(target)
        if courier is not None:
            courier.wake.set()

    def _run_brain(self) -> None:
        last_prune = 0.0
        while not self.stop_event.is_set():
            self.events_ready.clear()
            try:
                self.notifier.process_pending()
                self.notifier.tick()
                if time.time() - last_prune > PRUNE_EVERY_S:
                    last_prune = time.time()
                    self.outbox.prune(time.time() - self.cfg.notify_keep_days * 86400)
            except Exception:  # keep notifying; the event stays unprocessed and is retried
                log.exception("notifier step failed")
            self.events_ready.wait(TICK_S)


def run_notify(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT; exit 1 if the outbox cannot be written."""
    service = NotifyService(cfg)
    signal.signal(signal.SIGTERM, lambda *_: service.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: service.stop_event.set())
    service.start()
    try:
        while not service.stop_event.wait(1.0):
            pass
    finally:
        service.stop()
    if service.fatal:
        log.error("notify stopped", extra={"reason": service.fatal})
        return 1
    log.info("notify stopped")
    return 0

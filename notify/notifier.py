"""What to send, to whom and when: routing, reminders, escalation and quiet hours.

The notifier reads alert events from the outbox's ``events`` table (in the order received),
keeps the latest state of each alert, and turns changes into messages in ``deliveries``:

- an alert seen for the first time -> ``opened`` to every target of every matching route;
- its severity changes -> ``severity`` to the targets following it plus those now matching;
- acknowledged / resolved -> a notice to every target following it (reminders stop);
- still ``open`` after ``remind_s`` since the last message to a target -> ``reminder``;
- ``critical`` and still ``open`` ``escalate_s`` after it became critical -> ``escalation``
  to the route's ``escalate_to`` targets, which then follow the alert too;
- a non-critical message to a chat target (people) during quiet hours is held and, when they
  end, replaced by one digest of the held alerts (their state at that moment). Webhooks
  (machines) are never quiet.

Routing one event and writing its messages is one transaction with marking the event
processed, so a crash neither loses nor repeats a message. Times are the notifier's clock
(when it saw things), not the alert's timestamps, which may be simulated.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from rivermon.core.alerts import SEVERITIES, STATES
from rivermon.notify.message import Notice, Texts, render, render_digest, render_reminders
from rivermon.notify.outbox import Outbox, TrackedAlert
from rivermon.notify.quiet import QuietHours
from rivermon.notify.routes import Route, Routes, Target
from rivermon.notify.targets import chat_payload, webhook_payload

log = logging.getLogger("rivermon.notify")

STATE_RANK = {s: i for i, s in enumerate(STATES)}
REMIND_BATCH_MAX_S = 60.0  # reminders due this much later still join a list sent now


class EventError(ValueError):
    """An alert event that cannot be routed; the message says what is wrong with it."""


@dataclass(frozen=True)
class Policy:
    """The global defaults a route may override."""

    remind_s: float = 1800.0
    escalate_s: float = 3600.0
    quiet: QuietHours | None = None


def parse_event(payload: str) -> dict[str, Any]:
    """Check an alert event enough to route it; raise EventError naming the problem."""
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EventError(f"an alert event is a JSON object, got {type(event).__name__}")
    for key in ("id", "creek", "kind"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise EventError(f"{key!r} is missing or not a non-empty string")
    if event.get("severity") not in SEVERITIES:
        raise EventError(f"severity {event.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
    if event.get("state") not in STATES:
        raise EventError(f"state {event.get('state')!r} is not one of {', '.join(STATES)}")
    if event.get("segment") is not None and not isinstance(event["segment"], str):
        raise EventError("'segment' must be a string")
    try:
        event_time(event)
    except ValueError as exc:
        raise EventError(f"'updated' is not a time: {exc}") from None
    return event


def event_time(event: dict[str, Any]) -> float:
    """The event's ``updated`` as Unix seconds (0 when absent: order by state then)."""
    value = event.get("updated")
    if value in (None, ""):
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


class Notifier:
    """Routes events and runs the timers; all state lives in the outbox."""

    def __init__(self, outbox: Outbox, routes: Routes, texts: Texts, policy: Policy,
                 clock: Callable[[], float] = time.time, alert_store: Path | None = None,
                 on_enqueue: Callable[[str], None] = lambda target: None):
        self.outbox = outbox
        self.routes = routes
        self.texts = texts
        self.policy = policy
        self.clock = clock
        self.alert_store_path = alert_store
        self.on_enqueue = on_enqueue
        self._store: Any = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- events ----------------------------------------------------------------------------
    def process_pending(self) -> int:
        """Route every stored, not yet processed event; returns how many."""
        done = 0
        while batch := self.outbox.pending_events():
            for seq, topic, payload in batch:
                self._process_one(seq, topic, payload)
                done += 1
        return done

    def _process_one(self, seq: int, topic: str, payload: str) -> None:
        now = self.clock()
        try:
            event = parse_event(payload)
        except EventError as exc:
            # Kept in the outbox with the reason (`rivermon notify --status` counts them).
            log.warning("alert event refused", extra={"topic": topic, "reason": str(exc),
                                                      "payload": payload[:300]})
            self.outbox.mark_event(seq, now, str(exc))
            return
        try:
            with self.outbox.tx():
                self.apply(event, now)
                self.outbox.mark_event(seq, now)
        except Exception as exc:  # a bug must not block every later event; keep this one aside
            log.exception("alert event could not be routed", extra={"topic": topic})
            self.outbox.mark_event(seq, now, f"internal error: {type(exc).__name__}: {exc}")

    def apply(self, event: dict[str, Any], now: float) -> None:
        """Take one alert event (from MQTT or the alert store) into account."""
        prev = self.outbox.alert(event["id"])
        updated = event_time(event)
        if prev is not None and self._stale(prev, event, updated):
            return
        reason = self._reason(prev, event)
        tracked = self._track(prev, event, updated, now)
        if reason in ("opened", "severity"):
            matched = self.routes.matching(event)
            tracked.routes = list(dict.fromkeys(tracked.routes + [r.name for r in matched]))
            recipients = self._subscribe(event["id"], matched, now)
        else:
            recipients = {t: r for t, (r, _, _) in self.outbox.subs(event["id"]).items()}
        self.outbox.save_alert(tracked)
        if reason is None:
            return
        if reason == "opened" and not recipients:
            log.info("no route matches alert", extra={"alert": event["id"], "kind": event["kind"],
                                                      "severity": event["severity"]})
        notice = Notice(reason, event, previous_severity=prev.severity if prev else "")
        for target, route in recipients.items():
            self._send(target, route, notice, now)

    @staticmethod
    def _stale(prev: TrackedAlert, event: dict[str, Any], updated: float) -> bool:
        """An older event arriving late (or a repeat) must not undo what is known."""
        if STATE_RANK[event["state"]] < STATE_RANK[prev.state]:
            return True
        return bool(updated and prev.updated and updated < prev.updated)

    @staticmethod
    def _reason(prev: TrackedAlert | None, event: dict[str, Any]) -> str | None:
        if prev is None:
            return "opened"
        if event["state"] != prev.state:
            return event["state"] if event["state"] in ("acknowledged", "resolved") else None
        if event["severity"] != prev.severity:
            return "severity"
        return None

    @staticmethod
    def _track(prev: TrackedAlert | None, event: dict[str, Any], updated: float,
               now: float) -> TrackedAlert:
        critical_since = prev.critical_since if prev else None
        if event["severity"] == "critical" and critical_since is None:
            critical_since = now
        elif event["severity"] != "critical":
            critical_since = None
        return TrackedAlert(event["id"], event, event["state"], event["severity"],
                            max(updated, prev.updated if prev else 0.0),
                            prev.first_seen if prev else now, critical_since,
                            prev.routes if prev else [])

    def _subscribe(self, alert_id: str, matched: list[Route], now: float) -> dict[str, str]:
        """target -> route for everyone who should hear about this alert now."""
        recipients = {t: r for t, (r, _, _) in self.outbox.subs(alert_id).items()}
        for route in matched:
            for target in route.targets:
                recipients.setdefault(target, route.name)
                self.outbox.add_sub(alert_id, target, route.name, now)
        return recipients

    # -- messages --------------------------------------------------------------------------
    def _send(self, target_name: str, route_name: str, notice: Notice, now: float) -> None:
        target = self.routes.targets.get(target_name)
        if target is None:
            log.error("alert follows a target that the routes file no longer has; not sent",
                      extra={"alert": notice.event["id"], "target": target_name})
            return
        quiet = self._quiet_for(route_name) if target.chat else None
        held = (quiet is not None and notice.event["severity"] != "critical" and quiet.active(now))
        body = self.body(target, notice)
        self.outbox.enqueue(target.name, notice.event["id"], notice.reason, body, now,
                            quiet.ends_after(now) if held else None)
        self.outbox.touch_sub(notice.event["id"], target.name, now, notice.reason == "reminder")
        if not held:
            self.on_enqueue(target.name)

    def _quiet_for(self, route_name: str) -> QuietHours | None:
        route = self.routes.route(route_name)
        return route.quiet if route is not None and route.quiet_set else self.policy.quiet

    def body(self, target: Target, notice: Notice) -> str:
        """The JSON text to POST for this notice (signing, if any, is added at send time)."""
        if target.chat:
            style = "text" if target.msgtype == "text" else target.type
            payload = chat_payload(target, render(notice, self.texts, style))
        else:
            payload = webhook_payload(notice.event, notice.reason, self.texts.link(notice.event["id"]))
            if notice.reason in ("reminder", "escalation"):
                payload["notify"].update(n=notice.n, unacknowledged_s=round(notice.open_s, 1))
        return json.dumps(payload, ensure_ascii=False)

    # -- timers ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Reminders, escalations and the end of quiet hours, as of now."""
        now = self.clock()
        with self.outbox.tx():
            self._release_held(now)
        due: dict[str, list[tuple[TrackedAlert, str, int, bool]]] = {}
        strict: set[str] = set()
        for alert in self.outbox.alerts_in_state("open"):
            if not (self._reminders_due(alert, now, early=True) or self._escalations_due(alert, now)):
                continue
            with self.outbox.tx():
                if self._still_open(alert, now):
                    self._escalate(alert, now)
                    for target, route_name, n, on_time in self._reminders_due(alert, now, early=True):
                        due.setdefault(target, []).append((alert, route_name, n, on_time))
                        if on_time:
                            strict.add(target)
        with self.outbox.tx():
            for target in strict:
                self._remind(target, due[target], now)

    def _still_open(self, alert: TrackedAlert, now: float) -> bool:
        """Check the alert store (same machine) before nagging people about an alert."""
        store = self._alert_store()
        if store is None:
            return True
        try:
            current = store.get(alert.id)
        except Exception:  # not in this store (another machine's alert), or the file is busy
            return True
        if current.state == "open":
            return True
        event = current.to_event(self.texts.tz)
        if event_time(event) >= alert.updated:
            self.apply(event, now)
        return self.outbox.alert(alert.id).state == "open"  # type: ignore[union-attr]

    def _alert_store(self) -> Any:
        if self._store is None and self.alert_store_path is not None and self.alert_store_path.exists():
            from rivermon.core.alerts import AlertStore
            self._store = AlertStore(self.alert_store_path, tz=self.texts.tz)
        return self._store

    def _reminders_due(self, alert: TrackedAlert, now: float,
                       early: bool = False) -> list[tuple[str, str, int, bool]]:
        """(target, route, reminders so far, due already) of every reminder due now.

        With ``early``, reminders due within the next tenth of their interval (at most a
        minute) are included too, flagged not yet due: they join a list sent to the same target.
        """
        due = []
        for target, (route_name, last, n) in self.outbox.subs(alert.id).items():
            route = self.routes.route(route_name)
            every = route.remind_s if route is not None and route.remind_s is not None else self.policy.remind_s
            slack = min(REMIND_BATCH_MAX_S, every * 0.1) if early else 0.0
            if every <= 0 or now - last < every - slack:
                continue
            target_cfg = self.routes.targets.get(target)
            quiet = self._quiet_for(route_name) if target_cfg is not None and target_cfg.chat else None
            if quiet is not None and alert.severity != "critical" and quiet.active(now):
                continue  # the digest at the end of quiet hours covers it
            due.append((target, route_name, n, now - last >= every))
        return due

    def _remind(self, target_name: str, items: list[tuple[TrackedAlert, str, int, bool]],
                now: float) -> None:
        """Reminders due for one target: one message each, or one list for a chat robot."""
        target = self.routes.targets.get(target_name)
        if target is None or not target.chat:
            items = [it for it in items if it[3]]  # machines need no batching: only those due
        if target is None or not target.chat or len(items) == 1:
            for alert, route_name, n, _ in items:
                self._send(target_name, route_name, Notice("reminder", alert.event, n=n + 1,
                                                           open_s=now - alert.first_seen), now)
            return
        style = "text" if target.msgtype == "text" else target.type
        listed = [(a.event, n + 1, now - a.first_seen) for a, _, n, _ in items]
        ids = ",".join(a.id for a, _, _, _ in items)
        for message in render_reminders(listed, self.texts, style):
            self.outbox.enqueue(target.name, ids, "reminder",
                                json.dumps(chat_payload(target, message), ensure_ascii=False), now)
        for alert, _, _, _ in items:
            self.outbox.touch_sub(alert.id, target.name, now, reminded=True)
        self.on_enqueue(target.name)

    def _escalations_due(self, alert: TrackedAlert, now: float) -> list[Route]:
        if alert.severity != "critical" or alert.critical_since is None:
            return []
        due = []
        for name in alert.routes:
            route = self.routes.route(name)
            if route is None or not route.escalate_to or self.outbox.escalated(alert.id, name):
                continue
            after = route.escalate_s if route.escalate_s is not None else self.policy.escalate_s
            if after > 0 and now - alert.critical_since >= after:
                due.append(route)
        return due

    def _escalate(self, alert: TrackedAlert, now: float) -> None:
        for route in self._escalations_due(alert, now):
            name = route.name
            notice = Notice("escalation", alert.event, open_s=now - alert.critical_since)
            for target in route.escalate_to:
                self.outbox.add_sub(alert.id, target, name, now)
                self._send(target, name, notice, now)
            self.outbox.mark_escalated(alert.id, name, now)
            log.info("alert escalated", extra={"alert": alert.id, "route": name,
                                               "targets": list(route.escalate_to)})

    def _release_held(self, now: float) -> None:
        due = self.outbox.held_due(now)
        by_target: dict[str, list[tuple[int, str]]] = {}
        for seq, target, alert_id, _reason in due:
            by_target.setdefault(target, []).append((seq, alert_id))
        for target_name, rows in by_target.items():
            target = self.routes.targets.get(target_name)
            seqs = [s for s, _ in rows]
            if target is None or not target.chat:
                # A target no longer configured (or no longer a chat robot): keep each held
                # message, in order, for the operator to see in --status.
                self.outbox.set_status(seqs, "queued", now)
            else:
                self._digest(target, [a for _, a in rows], now)
                self.outbox.set_status(seqs, "digested", now)
            self.on_enqueue(target_name)

    def _digest(self, target: Target, alert_ids: list[str], now: float) -> None:
        events, windows = [], []
        for alert_id in dict.fromkeys(alert_ids):
            tracked = self.outbox.alert(alert_id)
            if tracked is not None:
                events.append(tracked.event)
                self.outbox.touch_sub(alert_id, target.name, now)
            route = self.outbox.subs(alert_id).get(target.name, ("",))[0]
            quiet = self._quiet_for(route)
            windows.append(quiet.spec if quiet is not None else "")
        window = next((w for w in windows if w), "静默时段")
        style = "text" if target.msgtype == "text" else target.type
        for message in render_digest(events, self.texts, style, window):
            body = json.dumps(chat_payload(target, message), ensure_ascii=False)
            self.outbox.enqueue(target.name, ",".join(dict.fromkeys(alert_ids)), "digest", body, now)

"""Alerts for the panel: read from the shared ``AlertStore``, acted on the way the model emits.

An action (acknowledge, note, resolve) changes the row in ``{var}/alerts.sqlite``, then the
new event is published on ``{prefix}/{creek}/alerts`` (QoS 1) and its point written to
InfluxDB's ``alerts`` measurement, exactly as the model service does for its own changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from rivermon.core.alerts import ACTIVE_STATES, Alert, AlertStore, alert_line, publish_alert
from rivermon.core.influx import InfluxClient, InfluxError

log = logging.getLogger("rivermon.web.alerts")
ACTIONS = ("acknowledge", "note", "resolve")


class AlertSource:
    """The panel's window on alerts."""

    def __init__(self, path: str | Path, tz: str, prefix: str, influx: InfluxClient,
                 mqtt_client: Callable[[], Any]):
        self.store = AlertStore(path, tz)
        self.tz = tz
        self.prefix = prefix
        self.influx = influx
        self.mqtt_client = mqtt_client

    def close(self) -> None:
        self.store.close()

    def unresolved(self) -> list[dict[str, Any]]:
        return [a.to_event(self.tz) for a in self.store.list(state=ACTIVE_STATES)]

    def events(self, state: str | None = None, segment: str | None = None, kind: str | None = None,
               since: float | None = None, until: float | None = None,
               limit: int | None = 1000) -> list[dict[str, Any]]:
        states: Any = state
        if state == "active":
            states = ACTIVE_STATES
        return [a.to_event(self.tz) for a in self.store.list(state=states, segment=segment, kind=kind,
                                                             since=since, until=until, limit=limit)]

    def raw(self, since: float | None = None, until: float | None = None) -> list[Alert]:
        return self.store.list(since=since, until=until)

    def get(self, alert_id: str) -> dict[str, Any]:
        return self.store.get(alert_id).to_event(self.tz)

    def act(self, alert_id: str, action: str, by: str, note: str = "") -> dict[str, Any]:
        """Apply ``action`` for user ``by``; a note given with acknowledge/resolve is kept too."""
        if action not in ACTIONS:
            raise ValueError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
        if action == "note":
            alert = self.store.add_note(alert_id, by, note)
        else:
            alert = (self.store.acknowledge if action == "acknowledge" else self.store.resolve)(alert_id, by)
            if note.strip():
                alert = self.store.add_note(alert_id, by, note)
        self._emit(alert)
        return alert.to_event(self.tz)

    def _emit(self, alert: Alert) -> None:
        client = self.mqtt_client()
        if client is not None:
            publish_alert(client, self.prefix, alert, self.tz)
        else:
            log.warning("alert change not published: no broker connection", extra={"id": alert.id})
        try:
            self.influx.write_lines([alert_line(alert, self.tz)])
        except InfluxError as exc:
            # The SQLite row is the record; the InfluxDB point is a copy for Grafana and trends.
            log.warning("alert point not written", extra={"id": alert.id, "error": str(exc)})


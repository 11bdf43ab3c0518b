"""Run one ingestor in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading

from rivermon.core.config import Config
from rivermon.core.topology import load_topology

log = logging.getLogger("rivermon.ingest")


# --leave: how long the session must stay quiet before it counts as drained.
LEAVE_IDLE_S = 3.0


def run_ingest(cfg: Config, leave: bool = False) -> int:
    """Start the ingestor, wait for a stop signal, stop it cleanly.

    With ``leave``: unsubscribe, ingest what the broker still holds for this client id,
    and once that is all in InfluxDB end the session and exit (retiring a share-group member
    without losing its queued share).
    """
    from .service import Ingestor
    from .spool import SpoolLocked

    topology = load_topology(cfg.topology or None)
    try:
        ingestor = Ingestor(cfg, topology, leaving=leave)
    except SpoolLocked as exc:
        log.error(str(exc))
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ingestor.start()
    while not stop.wait(0.5):
        if not ingestor.writer.is_alive() or not ingestor.flusher.is_alive():
            log.error("an ingestor thread died; exiting so the supervisor restarts us")
            ingestor.stop(drain_s=0)
            return 1
        if leave and ingestor.drained(LEAVE_IDLE_S):
            ingestor.stop(end_session=True)
            log.info("left: the session's messages are all in InfluxDB and the session is ended")
            return 0
    ingestor.stop()
    return 0

"""Run one ingestor in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading

from rivermon.core.config import Config
from rivermon.core.topology import load_topology

log = logging.getLogger("rivermon.ingest")


def run_ingest(cfg: Config) -> int:
    """Start the ingestor, wait for a stop signal, stop it cleanly."""
    from .service import Ingestor
    from .spool import SpoolLocked

    topology = load_topology(cfg.topology or None)
    try:
        ingestor = Ingestor(cfg, topology)
    except SpoolLocked as exc:
        log.error(str(exc))
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ingestor.start()
    while not stop.wait(1.0):
        if not ingestor.writer.is_alive() or not ingestor.flusher.is_alive():
            log.error("an ingestor thread died; exiting so the supervisor restarts us")
            ingestor.stop(drain_s=0)
            return 1
    ingestor.stop()
    return 0

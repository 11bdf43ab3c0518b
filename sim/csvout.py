"""The offline path: a whole run written as a replay CSV, no broker.

Rows are written in the order the broker would have received them (after network faults): a
duplicate is a repeated row, a reordered reading comes one row late, and a radio outage's
backlog appears where the link came back, stamped with the times the readings were taken.
Consumers that sort by ``time`` (as ``rivermon replay`` does) see the backlog in place and the
duplicates next to each other. Status messages (online, last will) have no CSV form; the truth
file records the faults that cause them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable

from .engine import Simulation
from .network import Message

CSV_FIELDS = ("do_mg_l", "turbidity_ntu", "temp_c", "battery_v", "rssi_dbm", "aerator_on", "power_w")


@dataclass
class CsvStats:
    """What an offline run wrote, and how long it took."""
    rows: int = 0
    messages: int = 0
    backlogs: int = 0
    seconds: float = 0.0


def _cell(value: object) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return repr(value)


def write_rows(fh: IO[str], messages: Iterable[Message], stats: CsvStats) -> None:
    """Write the telemetry of some messages as CSV rows."""
    for m in messages:
        if m.channel != "telemetry":
            continue
        stats.messages += 1
        batch = m.payload if isinstance(m.payload, list) else [m.payload]
        stats.backlogs += isinstance(m.payload, list)
        for r in batch:
            fh.write(_row(m.node, r))
            stats.rows += 1


_SENSOR_KEYS = {"ts", "seq", "do_mg_l", "turbidity_ntu", "temp_c", "battery_v", "rssi_dbm"}
_AERATOR_KEYS = {"ts", "seq", "aerator_on", "power_w", "rssi_dbm"}


def _row(node: str, r: dict) -> str:
    """One CSV line (fast paths for the two shapes the simulated nodes send)."""
    keys = r.keys()
    if keys == _SENSOR_KEYS:
        return (f"{r['ts']},{node},{r['do_mg_l']!r},{r['turbidity_ntu']!r},{r['temp_c']!r},"
                f"{r['battery_v']!r},{r['rssi_dbm']!r},,\n")
    if keys == _AERATOR_KEYS:
        return (f"{r['ts']},{node},,,,,{r['rssi_dbm']!r},{'true' if r['aerator_on'] else 'false'},"
                f"{r['power_w']!r}\n")
    return f"{r['ts']},{node}," + ",".join(_cell(r.get(f)) for f in CSV_FIELDS) + "\n"


def run_to_csv(sims: list[Simulation], path: str | Path) -> CsvStats:
    """Run simulations (one per creek copy) to their end, writing one CSV; return figures."""
    stats = CsvStats()
    t0 = time.perf_counter()
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("time,node," + ",".join(CSV_FIELDS) + "\n")
        while not all(s.finished() for s in sims):
            for s in sims:
                if not s.finished():
                    write_rows(fh, s.step(), stats)
    stats.seconds = time.perf_counter() - t0
    return stats

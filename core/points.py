"""The InfluxDB point of an accepted reading: one place that decides the telemetry layout.

Live ingest and backfill must write identical points (same measurement, tags and field
types), so that a reading that arrives both live and from a backfill CSV is stored once: the
same creek, node and ``ts`` give the same series key and time, and the second write overwrites
the first.
"""

from __future__ import annotations

from typing import Any

from rivermon.core.influx import TELEMETRY, line
from rivermon.core.reading import Reading
from rivermon.core.topology import UNASSIGNED, Topology

__all__ = ["telemetry_tags", "telemetry_fields", "telemetry_line", "UNREGISTERED_AERATOR_FIELDS"]

# A node the topology does not know has no declared kind; these fields only come from aerators.
UNREGISTERED_AERATOR_FIELDS = frozenset({"aerator_on", "power_w"})


def telemetry_tags(reading: Reading, topology: Topology) -> dict[str, str]:
    """``creek``, ``segment`` (``unassigned`` for an unknown node), ``node``, ``kind``."""
    node = topology.node(reading.creek, reading.node)
    if node is not None:
        return {"creek": reading.creek, "segment": node.segment, "node": reading.node,
                "kind": node.kind}
    kind = "aerator" if UNREGISTERED_AERATOR_FIELDS & reading.fields.keys() else "sensor"
    return {"creek": reading.creek, "segment": UNASSIGNED, "node": reading.node, "kind": kind}


def telemetry_fields(reading: Reading) -> dict[str, Any]:
    """Measurements as floats (booleans stay booleans), plus ``seq`` as an integer when sent."""
    fields: dict[str, Any] = {k: (v if type(v) is bool else float(v)) for k, v in reading.fields.items()}
    if reading.seq is not None:
        fields["seq"] = int(reading.seq)
    return fields


def telemetry_line(reading: Reading, topology: Topology) -> str:
    """The line-protocol ``telemetry`` point of one accepted reading (millisecond time)."""
    return line(TELEMETRY, telemetry_tags(reading, topology), telemetry_fields(reading),
                reading.ts_ms)

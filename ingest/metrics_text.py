"""Render the ingestor's state as Prometheus text (read at scrape time, never on the hot path)."""

from __future__ import annotations

import time
from typing import Any

from .metrics import counter, gauge, label_str

P = "rivermon_ingest_"


def render(ing: Any) -> str:
    """The whole /metrics page of one ingestor."""
    m = ing.metrics
    out: list[str] = []
    out += [f"# HELP {P}messages_total MQTT messages received, by channel",
            f"# TYPE {P}messages_total counter"]
    out += [f'{P}messages_total{{channel="{ch}"}} {n}' for ch, n in m.messages.items()]
    out += counter(P + "readings_total", "Readings accepted (validated and spooled)", m.readings)
    out += [f"# HELP {P}rejects_total Refusals, by reason (message, reading or field)",
            f"# TYPE {P}rejects_total counter"]
    out += [f"{P}rejects_total{label_str(reason=r)} {n}"
            for r, n in sorted(ing.converter.reject_counts.items())]
    out += counter(P + "acks_total", "QoS 1 messages acknowledged after their group was durable", m.acks)
    out += counter(P + "written_lines_total", "Lines written to InfluxDB", m.written_lines)
    out += counter(P + "write_errors_total", "Failed InfluxDB writes (retried)", m.write_errors)
    out += counter(P + "write_splits_total", "Batches split to isolate points InfluxDB refused",
                   m.write_splits)
    out += counter(P + "accepted_published_total", "Readings published on _accepted", m.accepted_published)
    out += counter(P + "accepted_dropped_total",
                   "Readings not published on _accepted (broker down or queue full)", m.accepted_dropped)
    out += counter(P + "connects_total", "Successful broker connections", m.connects)
    out += m.batch.render(P + "batch_lines", "Lines per InfluxDB write")
    out += m.write_latency.render(P + "write_seconds", "InfluxDB write latency, including splits")
    out += m.lag.render(P + "lag_seconds", "Arrival to written in InfluxDB, oldest record of each batch")
    out += _spool(ing)
    out += _health(ing)
    out += _nodes(ing)
    return "\n".join(out) + "\n"


def _spool(ing: Any) -> list[str]:
    sp = ing.spool
    oldest = sp.oldest_wall_ms()
    age = max(0.0, time.time() - oldest / 1000.0) if oldest else 0.0
    out = gauge(P + "spool_bytes", "Spooled bytes not yet in InfluxDB", [("", sp.unwritten_bytes())])
    out += gauge(P + "spool_disk_bytes", "Bytes of spool segment files on disk", [("", sp.disk_bytes())])
    out += gauge(P + "spool_bound_bytes", "The spool's bound (ingest_spool_max_mb)", [("", sp.max_bytes)])
    out += gauge(P + "spool_age_seconds", "Age of the oldest spooled record not yet in InfluxDB",
                 [("", round(age, 3))])
    out += gauge(P + "spool_full", "1 while the spool is at its bound and acks are held",
                 [("", int(ing.spool_full))])
    return out


def _health(ing: Any) -> list[str]:
    out = gauge(P + "mqtt_connected", "1 while connected to the broker", [("", int(ing.connected))])
    out += gauge(P + "mqtt_subscribed", "1 while subscribed", [("", int(ing.subscribed))])
    out += gauge(P + "influx_healthy", "0 while InfluxDB writes fail", [("", int(ing.writer.healthy))])
    try:
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        rss = 0
    out += gauge(P + "max_rss_bytes", "Peak resident memory of the ingestor", [("", rss)])
    return out


def _nodes(ing: Any) -> list[str]:
    nodes = ing.tracker.snapshot()
    samples: dict[str, list[tuple[str, float]]] = {k: [] for k in (
        "node_online", "node_last_seen_seconds", "node_last_reading_ts_seconds", "node_readings",
        "node_seq_gaps", "node_seq_repeats", "node_battery_volts")}
    for n in nodes:
        lab = label_str(creek=n.creek, node=n.node, segment=n.segment, kind=n.kind,
                        registered=str(n.registered).lower())
        samples["node_online"].append((lab, 1 if n.state == "online" else 0 if n.state == "offline" else -1))
        samples["node_last_seen_seconds"].append((lab, round(n.last_seen, 3)))
        samples["node_last_reading_ts_seconds"].append((lab, round(n.last_ts, 3)))
        samples["node_readings"].append((lab, n.readings))
        samples["node_seq_gaps"].append((lab, n.seq_gaps))
        samples["node_seq_repeats"].append((lab, n.seq_repeats))
        if n.battery_v is not None:
            samples["node_battery_volts"].append((lab, n.battery_v))
    helps = {
        "node_online": "1 online, 0 offline (status topic or last will), -1 no status seen",
        "node_last_seen_seconds": "Unix time a reading from the node last arrived",
        "node_last_reading_ts_seconds": "Newest reading ts from the node",
        "node_readings": "Readings accepted from the node since start",
        "node_seq_gaps": "Missing seq numbers seen (exact with one ingestor)",
        "node_seq_repeats": "Repeated seq numbers seen (exact with one ingestor)",
        "node_battery_volts": "Battery of the node's newest reading",
    }
    out: list[str] = []
    for key, vals in samples.items():
        out += gauge(P + key, helps[key], vals)
    unassigned = sum(1 for n in nodes if not n.registered)
    out += gauge(P + "unregistered_nodes", "Nodes sending that the topology does not know",
                 [("", unassigned)])
    out += counter(P + "untracked_node_updates_total",
                   "Updates for nodes beyond the tracker's bound (10,000 nodes)", ing.tracker.untracked)
    return out

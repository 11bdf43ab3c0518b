"""The simulator feeding the real ingestor: everything it publishes is accepted and stored once."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from rivermon.core.servers import free_port

pytestmark = pytest.mark.e2e

SCENARIO = """
name = "ingest-check"
duration = "2h"
season = "summer"

[[events]]
kind = "duplicates"
node = "hl1-s1"
at = "10m"
duration = "1h"
prob = 0.3

[[events]]
kind = "radio_outage"
node = "hl6-s1"
at = "20m"
duration = "40m"

[[events]]
kind = "clock_skew"
node = "hl7-s1"
at = "0m"
duration = "2h"
offset_s = -900
"""


def _ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_everything_the_simulator_publishes_is_stored_once(service, broker_url, influx, prefix,
                                                          tmp_path: Path):
    port = free_port()
    ingest = service("ingest", "--broker", broker_url, "--influx", influx.url, "--influx-db",
                     influx.database, "--topic-prefix", prefix, "--var", str(tmp_path / "var"),
                     "--ingest-metrics-port", str(port), "--ingest-batch-ms", "100",
                     "--ingest-client-id", f"sim-test-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + 30
    while not _ready(f"http://127.0.0.1:{port}/readyz"):
        assert time.monotonic() < deadline, ingest.log()[-2000:]
        time.sleep(0.2)
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", "--broker", broker_url,
                        "--topic-prefix", prefix, "--scenario", str(scenario), "--speed", "0",
                        "--seed", "2"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    expected = 20 * 120  # every node, every minute, once (duplicates collapse, the backlog lands)

    def count() -> int:
        rows = influx.rows('SELECT count("rssi_dbm") FROM "telemetry" GROUP BY "node"')
        return sum(int(r["count"]) for r in rows)

    deadline = time.monotonic() + 30
    while count() < expected and time.monotonic() < deadline:
        time.sleep(0.3)
    per_node = {r["node"]: int(r["count"]) for r in
                influx.rows('SELECT count("rssi_dbm") FROM "telemetry" GROUP BY "node"')}
    assert per_node == {n: 120 for n in per_node} and len(per_node) == 20, per_node
    rejects = influx.rows('SELECT count("detail") FROM "rejects"') if _has(influx, "rejects") else []
    assert not rejects, rejects
    segs = influx.rows('SELECT last("do_mg_l") FROM "telemetry" WHERE "node" = \'hl3-s1\' GROUP BY "segment"')
    assert [r["segment"] for r in segs] == ["hl-3"]


def _has(influx, measurement: str) -> bool:
    res = influx.query("SHOW MEASUREMENTS")[0].get("series") or []
    return any(measurement in (v[0] for v in s["values"]) for s in res)

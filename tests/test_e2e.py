"""End to end on real servers: simulator → MQTT → ingestor → InfluxDB → model → panel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from rivermon.core.servers import free_port

pytestmark = pytest.mark.e2e


def _wait(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except requests.RequestException:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _published_per_node(truth_csv: Path) -> Counter:
    import csv

    with open(truth_csv, newline="") as f:
        return Counter((row["node"], row["time"]) for row in csv.DictReader(f))


def test_ten_simulated_minutes_travel_from_nodes_to_the_panel(
        service, broker_url, influx, topology, prefix, tmp_path):
    common = ["--broker", broker_url, "--influx", influx.url, "--influx-db", influx.database,
              "--topic-prefix", prefix, "--var", str(tmp_path / "var")]
    metrics_port, web_port = free_port(), free_port()
    ingest = service("ingest", *common, env={"RIVERMON_INGEST_METRICS_PORT": str(metrics_port)})
    detect = service("detect", *common)
    web = service("web", *common, env={"RIVERMON_WEB_PORT": str(web_port),
                                        "RIVERMON_WEB_PUBLIC_VIEW": "true"})
    _wait(lambda: requests.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1).ok, 30,
          "ingestor ready:\n" + ingest.log())
    base = f"http://127.0.0.1:{web_port}"
    _wait(lambda: requests.get(base + "/healthz", timeout=1).status_code == 200, 30,
          "panel healthy:\n" + web.log())

    # Ten simulated minutes for every node of the default creek, published over MQTT, and the
    # same run written offline as CSV: both come from the same seed, so the CSV says exactly
    # what was published.
    sim_args = ["--scenario", "normal-week", "--duration", "10m", "--speed", "0", "--seed", "7",
                "--start", str(int(time.time()) - 900)]
    sim = service("sim", *common, *sim_args, "--truth", str(tmp_path / "truth.jsonl"))
    assert sim.proc.wait(120) == 0, sim.log()
    offline = service("sim", *common, *sim_args, "--csv", str(tmp_path / "published.csv"),
                      "--truth", str(tmp_path / "truth-offline.jsonl"))
    assert offline.proc.wait(60) == 0, offline.log()
    expected = _published_per_node(tmp_path / "published.csv")
    per_node = Counter(node for node, _ in expected)
    assert set(per_node) == {n.id for n in topology.all_nodes()}

    def landed():
        rows = influx.rows('SELECT count("seq") FROM "telemetry" GROUP BY "node"')
        return {r["node"]: r["count"] for r in rows}

    got = _wait(lambda: (c := landed()) == dict(per_node) and c, 60,
                f"every reading in InfluxDB: expected {dict(per_node)}")
    assert got == dict(per_node)

    # The contract's layout: tags creek, segment, node, kind on every point.
    tags = influx.rows('SHOW TAG VALUES FROM "telemetry" WITH KEY IN ("creek", "segment", "kind")')
    values = {(t["key"], t["value"]) for t in tags}
    assert ("creek", "huanglong") in values and ("kind", "sensor") in values
    assert ("kind", "aerator") in values
    assert {("segment", s.id) for s in topology.creek("huanglong").segments} <= values

    segs = requests.get(base + "/api/segments", timeout=5).json()["segments"]
    assert {s["id"] for s in segs} == {s.id for s in topology.creek("huanglong").segments}
    for s in segs:
        assert s["do_mg_l"] is not None and s["turbidity_ntu"] is not None, s
        assert s["updated"], s
        assert s["status"] in ("ok", "warning", "critical", "offline", "unknown")

    health = requests.get(base + "/healthz", timeout=5)
    assert health.status_code == 200
    front = requests.get(base + "/", timeout=5)
    assert front.status_code == 200
    for s in topology.creek("huanglong").segments:
        assert s.name.zh in front.text
    for proc in (ingest, detect, web):
        assert proc.proc.poll() is None, proc.log()


def test_rivermon_up_starts_everything_and_leaves_no_process_behind(tmp_path):
    var = tmp_path / "var"
    web_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rivermon.cli", "up", "--var", str(var), "--no-sim",
         "--web-port", str(web_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Panel:" in line:
                break
        assert any("Panel:" in line for line in lines), "".join(lines)
        assert requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=5).status_code == 200
        children = _processes_mentioning(str(var))
        assert len(children) >= 6, children  # mosquitto, influxd, ingest, detect, web, control
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out
    time.sleep(0.5)
    assert _processes_mentioning(str(var)) == [], "processes left behind"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd[:200]}")
    return found

"""`rivermon bench ingest`: landed readings/s against the broker's and InfluxDB's own limits.

Starts its own Mosquitto and InfluxDB (rivermon.core.servers) in a temporary directory, and
measures in the same run:

- limit 2: InfluxDB's ingest rate for pre-built line protocol (one writer, 5,000-line batches);
- limit 1: the broker's delivery rate to a do-nothing paho subscriber, with the same publishers
  (``mosquitto_pub -q 1``, one per node) as the ingest runs;
- landed readings/s: from the publishers' start until the ingestor(s) report every reading
  written, then counted in InfluxDB; one-reading messages and 100-reading backlog arrays;
- the drain of a backlog of one-reading messages queued at the broker while the ingestor was
  stopped; and the ingestor's peak RSS.

Prints a table with each figure, its target and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from rivermon.core import servers
from rivermon.core.config import Config
from rivermon.core.influx import InfluxClient, line

PREFIX = "bench/v1"
CREEK = "huanglong"
ARRAY = 100


@dataclass
class Row:
    what: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


# -- payloads and publishers ------------------------------------------------------------------

def write_payloads(directory: Path, nodes: int, readings: int, per_message: int, tag: str) -> list[tuple[str, Path]]:
    """One file per node of JSON payloads, one message per line; returns (topic, file)."""
    base_ms = int((time.time() - 2 * 86400) * 1000)
    out = []
    per_node = readings // nodes
    for n in range(nodes):
        node = f"{tag}-{n}"
        path = directory / f"{node}.jsonl"
        with open(path, "w") as f:
            for m in range(0, per_node, per_message):
                batch = [{"ts": (base_ms + i) / 1000, "seq": i, "do_mg_l": 5.0 + (i % 97) / 100,
                          "turbidity_ntu": 12.0 + (i % 13), "temp_c": 27.5}
                         for i in range(m, min(m + per_message, per_node))]
                f.write(json.dumps(batch[0] if per_message == 1 else batch, separators=(",", ":")) + "\n")
        out.append((f"{PREFIX}/{CREEK}/{node}/telemetry", path))
    return out


def publish(port: int, payloads: list[tuple[str, Path]], parallel: int) -> float:
    """Run `mosquitto_pub -l` per file, ``parallel`` at a time; returns the wall start time."""
    binary = servers.find_binary("mosquitto_pub")
    start = time.time()
    pending = list(payloads)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < parallel:
            topic, path = pending.pop(0)
            with open(path, "rb") as f:
                running.append(subprocess.Popen(
                    [binary, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-M", "200", "-l",
                     "-t", topic], stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in list(running):
            if p.poll() is not None:
                running.remove(p)
        time.sleep(0.01)
    return start


SINK = """
import sys, time, threading
import paho.mqtt.client as mqtt
port, topic, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
n = 0; first = last = 0.0; done = threading.Event()
def on_message(c, u, m):
    global n, first, last
    n += 1
    if n == 1: first = time.time()
    if n >= want:
        last = time.time(); done.set()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sink", protocol=mqtt.MQTTv311)
c.on_message = on_message
ready = threading.Event()
c.on_subscribe = lambda *a, **k: ready.set()
c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(topic, 1)
c.connect("127.0.0.1", port); c.loop_start(); ready.wait(10)
print("ready", flush=True)
done.wait(float(sys.argv[4]))
print(n, first, last, flush=True)
c.loop_stop(); c.disconnect()
"""


def sink_rate(port: int, payloads: list[tuple[str, Path]], messages: int, readings: int,
              parallel: int, timeout: float = 120) -> tuple[float, float]:
    """Limit 1: (readings/s, messages/s) delivered to a do-nothing paho subscriber."""
    proc = subprocess.Popen([sys.executable, "-c", SINK, str(port), f"{PREFIX}/+/+/telemetry",
                             str(messages), str(timeout)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    start = publish(port, payloads, parallel)
    n, _first, last = proc.stdout.readline().split()
    proc.wait(10)
    if int(n) < messages:
        raise RuntimeError(f"the sink received {n} of {messages} messages")
    elapsed = float(last) - start
    return readings / elapsed, messages / elapsed


def influx_rate(url: str, points: int, batch: int = 5000) -> float:
    """Limit 2: points/s InfluxDB takes from one writer of pre-built line protocol."""
    client = InfluxClient(url, "bench_limit2", timeout=60)
    client.ensure_database()
    base = int((time.time() - 2 * 86400) * 1000)
    bodies = []
    for start in range(0, points, batch):
        bodies.append("\n".join(
            line("telemetry", {"creek": CREEK, "kind": "sensor", "node": f"lim-{i % 30}", "segment": "hl-1"},
                 {"do_mg_l": 5.0 + (i % 97) / 100, "turbidity_ntu": 12.0 + (i % 13), "temp_c": 27.5,
                  "seq": i}, base + i)
            for i in range(start, min(start + batch, points))))
    t0 = time.perf_counter()
    for body in bodies:
        client.write_lines(body)
    rate = points / (time.perf_counter() - t0)
    client.drop_database()
    client.close()
    return rate


# -- ingestors ---------------------------------------------------------------------------------

class Ingestors:
    """N `rivermon ingest` processes on one shared subscription."""

    def __init__(self, count: int, mq_port: int, influx_url: str, db: str, var: Path, logs: Path):
        self.count, self.mq_port, self.influx_url, self.db = count, mq_port, influx_url, db
        self.var, self.logs = var, logs
        self.ports = [servers.free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen] = []
        self.peak_rss = 0

    def argv(self, i: int) -> list[str]:
        argv = [sys.executable, "-m", "rivermon.cli", "ingest",
                "--broker", f"mqtt://127.0.0.1:{self.mq_port}", "--influx", self.influx_url,
                "--influx-db", self.db, "--topic-prefix", PREFIX, "--var", str(self.var),
                "--log-level", "WARNING", "--ingest-metrics-port", str(self.ports[i]),
                "--ingest-client-id", f"bench-{self.db}-{i}"]
        if self.count > 1:
            argv += ["--ingest-share-group", f"bench-{self.db}"]
        return argv

    def forget_sessions(self) -> None:
        """End the runs' persistent sessions, or the broker keeps queueing (and, for a share
        group, routing a share of) later runs' messages to them."""
        from rivermon.core.mqtt import connect_properties, make_client

        for i in range(self.count):
            c = make_client(f"mqtt://127.0.0.1:{self.mq_port}", f"bench-{self.db}-{i}")
            c.connect("127.0.0.1", self.mq_port, clean_start=True, properties=connect_properties(0))
            c.loop_start()
            time.sleep(0.2)
            c.disconnect()
            c.loop_stop()

    def start(self) -> float:
        t0 = time.time()
        for i in range(self.count):
            log = open(self.logs / f"ingest-{self.db}-{i}.log", "ab")
            self.procs.append(subprocess.Popen(self.argv(i), stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
            log.close()
        deadline = time.monotonic() + 30
        while not all(self._get(p, "/readyz") for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingestors did not become ready; see {self.logs}")
            time.sleep(0.05)
        return t0

    def _get(self, port: int, path: str) -> str | None:
        try:
            r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=2)
            return r.text if r.status_code == 200 else None
        except requests.RequestException:
            return None

    def written(self) -> int:
        total = 0
        for port in self.ports:
            text = self._get(port, "/metrics") or ""
            for ln in text.splitlines():
                if ln.startswith("rivermon_ingest_written_lines_total "):
                    total += int(float(ln.split()[1]))
        return total

    def wait_written(self, lines: int, timeout: float) -> float:
        """Wall time when the ingestors had written ``lines`` lines.

        Polled every 0.1 s; the moment is interpolated between the last two samples, so the
        polling interval does not inflate short runs.
        """
        deadline = time.monotonic() + timeout
        prev_t, prev_n = time.time(), self.written()
        while time.monotonic() < deadline:
            self.sample_rss()
            now, n = time.time(), self.written()
            if n >= lines:
                if n == prev_n:
                    return now
                return prev_t + (now - prev_t) * (lines - prev_n) / (n - prev_n)
            prev_t, prev_n = now, n
            time.sleep(0.1)
        raise RuntimeError(f"only {self.written()} of {lines} lines written after {timeout:.0f} s")

    def sample_rss(self) -> None:
        for p in self.procs:
            try:
                for ln in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if ln.startswith("VmHWM:"):
                        self.peak_rss = max(self.peak_rss, int(ln.split()[1]) * 1024)
            except OSError:
                pass

    def stop(self) -> None:
        self.sample_rss()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs = []


def count_in_influx(url: str, db: str) -> int:
    client = InfluxClient(url, db, timeout=60)
    try:
        rows = client.rows('SELECT count("do_mg_l") FROM "telemetry"')
        return int(rows[0]["count"]) if rows else 0
    finally:
        client.close()


# -- the runs -------------------------------------------------------------------------------------

def run_ingest(tmp: Path, mq: servers.ManagedServer, influx_url: str, payloads, readings: int,
               ingestors: int, parallel: int, db: str) -> tuple[float, int]:
    """Landed readings/s with ``ingestors`` processes running while the publishers publish."""
    ing = Ingestors(ingestors, mq.port, influx_url, db, tmp / f"var-{db}", tmp)
    try:
        ing.start()
        start = publish(mq.port, payloads, parallel)
        done = ing.wait_written(readings, 300)
        ing.sample_rss()
    finally:
        ing.stop()
        ing.forget_sessions()
    landed = count_in_influx(influx_url, db)
    if landed != readings:
        raise RuntimeError(f"{db}: {landed} readings in InfluxDB, {readings} published")
    return readings / (done - start), ing.peak_rss


def run_drain(tmp: Path, mq: servers.ManagedServer, influx_url: str, payloads, readings: int,
              ingestors: int, parallel: int, db: str) -> tuple[float, float, int]:
    """(readings/s, seconds) to drain a backlog queued while the ingestors were stopped."""
    ing = Ingestors(ingestors, mq.port, influx_url, db, tmp / f"var-{db}", tmp)
    ing.start()  # creates the persistent sessions and subscriptions
    ing.stop()
    publish(mq.port, payloads, parallel)
    time.sleep(0.5)
    ing2 = Ingestors(ingestors, mq.port, influx_url, db, tmp / f"var-{db}", tmp)
    ing2.ports = ing.ports
    try:
        t0 = time.time()
        for i in range(ingestors):
            log = open(tmp / f"ingest-{db}-{i}.log", "ab")
            ing2.procs.append(subprocess.Popen(ing2.argv(i), stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
            log.close()
        done = ing2.wait_written(readings, 300)
    finally:
        ing2.stop()
        ing2.forget_sessions()
    landed = count_in_influx(influx_url, db)
    if landed != readings:
        raise RuntimeError(f"{db}: {landed} readings in InfluxDB, {readings} published")
    return readings / (done - t0), done - t0, ing2.peak_rss


def run_latency(tmp: Path, mq: servers.ManagedServer, influx_url: str,
                samples: int = 20) -> tuple[float, float, int]:
    """(median, max) seconds from publishing one reading at low load to finding it in InfluxDB."""
    from .testing import Publisher

    db = "latency"
    ing = Ingestors(1, mq.port, influx_url, db, tmp / f"var-{db}", tmp)
    client = InfluxClient(influx_url, db)
    pub = Publisher(f"mqtt://127.0.0.1:{mq.port}")
    took = []
    try:
        ing.start()
        base = int(time.time()) - 3600
        for i in range(samples):
            t0 = time.time()
            pub.publish(f"{PREFIX}/{CREEK}/lat-1/telemetry", {"ts": base + i, "do_mg_l": 5.0})
            q = f'SELECT "do_mg_l" FROM "telemetry" WHERE time = {int((base + i) * 1000)}ms'
            while not client.rows(q):
                if time.time() - t0 > 10:
                    raise RuntimeError("a reading did not become queryable within 10 s")
                time.sleep(0.005)
            took.append(time.time() - t0)
            time.sleep(0.1)
    finally:
        pub.close()
        client.close()
        ing.stop()
        ing.forget_sessions()
    took.sort()
    return took[len(took) // 2], took[-1], ing.peak_rss


def run_bench(args: argparse.Namespace, cfg: Config) -> int:
    """Run every measurement and print the table; exit 0 only when all targets pass."""
    tmp = Path(tempfile.mkdtemp(prefix="rivermon-bench-ingest-"))
    mq = servers.mosquitto(tmp / "mosquitto").start()
    ix = servers.influxd(tmp / "influxd").start(timeout=60)
    rows: list[Row] = []
    counts = [1, 2] if args.ingestors == 0 else [args.ingestors]
    try:
        k = args.nodes
        par = args.publishers or k
        n = args.readings - args.readings % k
        na = args.array_readings - args.array_readings % (k * ARRAY)
        single = write_payloads(tmp, k, n, 1, "one")
        arrays = write_payloads(tmp, k, na, ARRAY, "arr")
        drain_n = args.backlog - args.backlog % k
        drain = write_payloads(tmp, k, drain_n, 1, "drain")
        print(f"# {n:,} one-reading messages and {na:,} readings in 100-reading arrays from {k} "
              f"nodes; {par} mosquitto_pub -q 1 at once; backlog {drain_n:,}; tmp {tmp}", flush=True)
        limit2 = influx_rate(ix.url, max(n, 200_000))
        rows.append(Row("limit 2: InfluxDB, pre-built line protocol (5,000/batch)", limit2, "points/s"))
        lim1, lim1_msgs = sink_rate(mq.port, single, n, n, par)
        rows.append(Row("limit 1: broker -> do-nothing paho subscriber, 1-reading msgs", lim1, "readings/s"))
        lim1a, lim1a_msgs = sink_rate(mq.port, arrays, na // ARRAY, na, par)
        rows.append(Row("limit 1: broker -> do-nothing paho subscriber, 100-reading arrays", lim1a,
                        "readings/s", note=f"{lim1a_msgs:,.0f} msgs/s"))
        rss = 0
        only = set(args.only.split(","))
        for c in counts if "one" in only else []:
            rate, peak = run_ingest(tmp, mq, ix.url, single, n, c, par, f"one_{c}")
            rss = max(rss, peak)
            rows.append(Row(f"landed, 1-reading msgs, {c} ingestor(s)", rate, "readings/s",
                            f">= 80% of limit 1 ({0.8 * lim1:,.0f})", rate >= 0.8 * lim1,
                            f"{rate / lim1:.0%} of limit 1"))
        for c in counts if "arrays" in only else []:
            rate, peak = run_ingest(tmp, mq, ix.url, arrays, na, c, par, f"arr_{c}")
            rss = max(rss, peak)
            rows.append(Row(f"landed, 100-reading arrays, {c} ingestor(s)", rate, "readings/s",
                            ">= 50,000", rate >= 50_000))
        for c in counts if "drain" in only else []:
            rate, secs, peak = run_drain(tmp, mq, ix.url, drain, drain_n, c, par, f"drain_{c}")
            rss = max(rss, peak)
            rows.append(Row(f"drain {drain_n:,} queued 1-reading msgs, {c} ingestor(s)", rate,
                            "readings/s", ">= 15,000", rate >= 15_000,
                            f"{secs:.1f} s from process start"))
        if "latency" in only:
            med, worst, peak = run_latency(tmp, mq, ix.url)
            rss = max(rss, peak)
            rows.append(Row("publish -> queryable in InfluxDB at low load, median", med * 1000, "ms"))
            rows.append(Row("publish -> queryable in InfluxDB at low load, max of 20", worst * 1000, "ms",
                            "< 1,000", worst < 1.0))
        rows.append(Row("ingestor peak RSS (largest process)", rss / 1e6, "MB", "< 100", rss < 100e6))
    finally:
        mq.stop()
        ix.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)
    # A target passes when any ingestor count meets it (scale-out is the design).
    return 0 if _targets_met(rows) else 1


def _targets_met(rows: list[Row]) -> bool:
    groups: dict[str, bool] = {}
    for r in rows:
        if r.ok is None:
            continue
        key = r.what.split(",")[1].strip() if r.what.startswith(("landed", "drain")) else r.what
        groups[key] = groups.get(key, False) or r.ok
    return all(groups.values())


def print_table(rows: list[Row]) -> None:
    width = max(len(r.what) for r in rows)
    print()
    print(f"{'measurement':<{width}}  {'value':>12}  {'unit':<11}  {'target':<26}  result  note")
    print("-" * (width + 80))
    for r in rows:
        res = "" if r.ok is None else "PASS" if r.ok else "FAIL"
        print(f"{r.what:<{width}}  {r.value:>12,.0f}  {r.unit:<11}  {r.target:<26}  {res:<6}  {r.note}")
    sys.stdout.flush()

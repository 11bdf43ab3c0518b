#!/usr/bin/env python3
"""Soak benchmark: the creek at 10x its normal rate through the whole service, with 20 panel clients.

Starts what ``rivermon up`` starts (its own Mosquitto and InfluxDB on free loopback ports, then
``rivermon ingest``, ``rivermon detect`` and ``rivermon web`` as child processes), runs the
simulator accelerated (``rivermon sim --speed 10``: ten simulated minutes per minute, so every
node reports ten times a minute) for ``--minutes`` of wall time while ``--clients`` panel
clients each poll ``GET /api/segments`` and a DO series of one segment, and prints:

- memory: RSS of every service process at the start and end, and its growth per hour (least
  squares slope over the run after the first minute of warm-up);
- latency of the panel requests: p50, p95, p99 and errors;
- readings lost: what the simulator published (the same seed and start run offline with
  ``--csv``, the simulator's own record of its stream) against what InfluxDB holds, counted per
  (node, ts); and duplicates (points stored more than once per node and ts).

The RSS samples are kept in ``{work}/rss.csv``. Not part of the test suite. Usage::

    .venv/bin/python bench/soak.py                  # 10 minutes
    .venv/bin/python bench/soak.py --minutes 3 --clients 20 --speed 10
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from rivermon.core import servers
from rivermon.core.influx import InfluxClient
from rivermon.core.topology import load_topology

DB = "rivermon"
PREFIX = "rivermon/v1"
PASSWORD = "soak-password-1"
WARMUP_S = 60.0
SAMPLE_S = 5.0
# What a healthy service stays within over a soak (figures beyond are printed as FAIL).
LIMITS = {"rss_growth_mb_h": 50.0, "p99_ms": 1000.0, "lost": 0, "duplicates": 0}


# ---- processes --------------------------------------------------------------------------------

class Proc:
    """A ``rivermon`` subcommand as a child process with its log."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        with open(log, "ab") as out:
            self.popen = subprocess.Popen([sys.executable, "-m", "rivermon.cli", *argv],
                                          stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                          start_new_session=True)
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_ok(url: str, timeout: float, proc: Proc) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            break
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    tail = "\n".join(proc.log.read_text(errors="replace").splitlines()[-15:])
    raise SystemExit(f"{proc.name} is not healthy at {url}; its log ends:\n{tail}")


# ---- panel clients --------------------------------------------------------------------------------

def login(base: str, name: str) -> str:
    """Log in as a viewer; the session cookie header."""
    s = requests.Session()
    try:
        html = s.get(base + "/login", timeout=10).text
        token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        r = s.post(base + "/login", data={"name": name, "password": PASSWORD, "csrf_token": token},
                   allow_redirects=False, timeout=10)
        if r.status_code != 302:
            raise SystemExit(f"panel login failed: {r.status_code} {r.text[:200]}")
        return "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    finally:
        s.close()


class PanelClient(threading.Thread):
    """Polls ``/api/segments`` and one segment's DO series every ``period`` seconds."""

    def __init__(self, base: str, cookie: str, segment: str, span_s: float, period: float,
                 stop: threading.Event):
        super().__init__(daemon=True)
        self.host, self.port = base.split("//")[1].split(":")
        self.cookie, self.segment, self.span_s, self.period, self.halt = cookie, segment, span_s, period, stop
        self.latency: dict[str, list[float]] = {"segments": [], "series": []}
        self.errors: Counter = Counter()

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        headers = {"Cookie": self.cookie, "Accept": "application/json"}
        next_at = time.monotonic()
        while not self.halt.is_set():
            now = time.time()
            paths = {"segments": "/api/segments",
                     "series": f"/api/series?segment={self.segment}&field=do_mg_l"
                               f"&start={now - self.span_s:.0f}&end={now:.0f}"}
            for name, path in paths.items():
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path, headers=headers)
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        self.errors[f"{name} {r.status}"] += 1
                        continue
                except (OSError, http.client.HTTPException) as exc:
                    self.errors[f"{name} {type(exc).__name__}"] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
                    continue
                self.latency[name].append((time.perf_counter() - t0) * 1000)
            next_at += self.period
            self.halt.wait(max(0.0, next_at - time.monotonic()))
        conn.close()


# ---- counting -------------------------------------------------------------------------------------

def published(csv_path: Path) -> Counter:
    """(node, ts_ms) of every reading the simulator put on the wire (duplicates counted)."""
    with open(csv_path, newline="") as f:
        return Counter((row["node"], round(float(row["time"]) * 1000)) for row in csv.DictReader(f))


def stored(influx: InfluxClient) -> Counter:
    rows = influx.rows('SELECT "seq", "node" FROM "telemetry"')
    return Counter((r["node"], int(r["time"])) for r in rows)


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    if len(samples) < 3:
        return float("nan")
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 3600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else float("nan")


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ---- the run ---------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock length of the soak")
    ap.add_argument("--speed", type=float, default=10.0, help="simulated seconds per second")
    ap.add_argument("--clients", type=int, default=20, help="panel clients")
    ap.add_argument("--poll-s", type=float, default=2.0, help="each client's polling period")
    ap.add_argument("--scenario", default="demo", help="simulator scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="", help="working directory (default: a temporary one)")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="rivermon-soak-")).resolve()
    var, logs = work / "var", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.minutes:g} min, creek at {args.speed:g}x, {args.clients} panel clients, "
          f"work in {work}", flush=True)
    broker = servers.mosquitto(work / "mosquitto").start()
    influxd = servers.influxd(work / "influxd").start(timeout=60)
    influx = InfluxClient(influxd.url, DB)
    influx.ensure_database()
    procs: list[Proc] = []
    stop = threading.Event()
    try:
        from rivermon.web.users import UserError, UserStore

        users = UserStore(var / "web.sqlite")
        try:
            users.add("soak", "viewer", PASSWORD)
        except UserError:
            pass
        finally:
            if hasattr(users, "close"):
                users.close()
        common = ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--influx", influxd.url,
                  "--influx-db", DB, "--topic-prefix", PREFIX, "--var", str(var),
                  "--log-level", "WARNING"]
        metrics_port, web_port = servers.free_port(), servers.free_port()
        ingest = Proc("ingest", ["ingest", *common], logs / "ingest.log",
                      {"RIVERMON_INGEST_METRICS_PORT": str(metrics_port)})
        detect = Proc("detect", ["detect", *common], logs / "detect.log")
        web = Proc("web", ["web", *common], logs / "web.log",
                   {"RIVERMON_WEB_PORT": str(web_port), "RIVERMON_WEB_COOKIE_SECURE": "false"})
        procs += [ingest, detect, web]
        wait_ok(f"http://127.0.0.1:{metrics_port}/readyz", 60, ingest)
        base = f"http://127.0.0.1:{web_port}"
        wait_ok(base + "/healthz", 60, web)

        sim_minutes = max(1, round(args.minutes * args.speed))
        start = int(time.time()) - sim_minutes * 60 - 60
        sim_args = ["--scenario", args.scenario, "--seed", str(args.seed), "--speed", str(args.speed),
                    "--start", str(start), "--duration", f"{sim_minutes}m"]
        sim = Proc("sim", ["sim", *common, *sim_args, "--truth", str(work / "truth.jsonl")],
                   logs / "sim.log")
        procs.append(sim)
        t_start = time.monotonic()

        segments = [s.id for s in load_topology().creeks[0].segments]
        clients = [PanelClient(base, login(base, "soak"), segments[i % len(segments)],
                               6 * 3600, args.poll_s, stop) for i in range(args.clients)]
        for c in clients:
            c.start()
        watched = {p.name: p.pid for p in procs} | {"mosquitto": broker.proc.pid,
                                                     "influxd": influxd.proc.pid}
        rss: dict[str, list[tuple[float, float]]] = {name: [] for name in watched}
        while sim.popen.poll() is None:
            el = time.monotonic() - t_start
            for name, pid in watched.items():
                mb = rss_mb(pid)
                if mb is not None:
                    rss[name].append((el, mb))
            for p in (ingest, detect, web):
                if p.popen.poll() is not None:
                    raise SystemExit(f"{p.name} died during the soak; see {p.log}")
            if el > args.minutes * 60 + 120:
                raise SystemExit("the simulator overran its time; see " + str(sim.log))
            time.sleep(SAMPLE_S)
        wall = time.monotonic() - t_start
        with open(work / "rss.csv", "w", newline="") as f:  # for a closer look at growth
            w = csv.writer(f)
            w.writerow(["process", "seconds", "rss_mb"])
            for name, samples in rss.items():
                w.writerows([name, round(el, 1), round(mb, 2)] for el, mb in samples)
        stop.set()
        for c in clients:
            c.join(30)
        if sim.popen.returncode != 0:
            raise SystemExit(f"the simulator failed; see {sim.log}")

        # What was published: the same run, offline.
        csv_path = work / "published.csv"
        offline = subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", *sim_args,
                                  "--csv", str(csv_path), "--truth", str(work / "truth-offline.jsonl")],
                                 capture_output=True, text=True)
        if offline.returncode != 0:
            raise SystemExit("offline run failed: " + offline.stderr[-2000:])
        sent = published(csv_path)
        deadline = time.monotonic() + 120
        got = stored(influx)
        while set(sent) - set(got) and time.monotonic() < deadline:
            time.sleep(1)
            got = stored(influx)
        lost = len(set(sent) - set(got))
        dups = sum(n - 1 for n in got.values() if n > 1)
        extra = len(set(got) - set(sent))

        print(f"\nrivermon soak: {wall / 60:.1f} min wall, {sim_minutes} simulated minutes "
              f"({args.speed:g}x), {args.clients} panel clients polling every {args.poll_s:g} s")
        print(f"\n{'process':<10} {'RSS start MB':>13} {'RSS end MB':>11} {'max MB':>8} {'growth MB/h':>12}")
        worst = 0.0
        for name, samples in rss.items():
            if not samples:
                continue
            after = [s for s in samples if s[0] >= WARMUP_S] or samples
            g = slope_per_hour(after)
            if name in ("ingest", "detect", "web") and g == g:
                worst = max(worst, g)
            print(f"{name:<10} {samples[0][1]:13.1f} {samples[-1][1]:11.1f} "
                  f"{max(s[1] for s in samples):8.1f} {g:12.1f}")
        print(f"\n{'panel request':<16} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
        p99s = []
        for name in ("segments", "series"):
            lat = [x for c in clients for x in c.latency[name]]
            errs = sum(n for c in clients for k, n in c.errors.items() if k.startswith(name))
            p99s.append(pct(lat, 99))
            print(f"GET /api/{name:<7} {len(lat):7d} {pct(lat, 50):8.1f} {pct(lat, 95):8.1f} "
                  f"{pct(lat, 99):8.1f} {errs:7d}")
        errors = Counter()
        for c in clients:
            errors.update(c.errors)
        if errors:
            print("errors:", dict(errors))
        print(f"\nreadings published {sum(sent.values()):,} ({len(sent):,} distinct node+ts), "
              f"stored {len(got):,}, lost {lost}, duplicates {dups}, unexpected {extra}")
        checks = [("RSS growth of ingest/detect/web (MB/h)", worst, LIMITS["rss_growth_mb_h"]),
                  ("panel p99 (ms)", max(p99s), LIMITS["p99_ms"]),
                  ("readings lost", lost, LIMITS["lost"]), ("duplicates", dups, LIMITS["duplicates"])]
        ok = True
        print()
        for label, value, limit in checks:
            passed = value <= limit
            ok &= passed
            print(f"{label:<40} {value:10.1f}  limit {limit:<8g} {'PASS' if passed else 'FAIL'}")
        return 0 if ok else 1
    finally:
        stop.set()
        for p in reversed(procs):
            p.stop()
        influx.close()
        influxd.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())

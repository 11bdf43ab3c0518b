"""``rivermon bench web``: the panel's speed with a year of 1-minute data for every node.

Loads the data (unless ``--keep`` finds it loaded), builds the hourly aggregates, runs
``rivermon web`` as a child process and hits it from concurrent clients, then prints p50/p95/p99
of ``GET /api/segments`` and of a one-year ``GET /api/series`` against their limits.
Without ``--influx`` it starts its own InfluxDB and Mosquitto under ``{var}/bench-web`` (never
the machine's broker on 1883).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from rivermon.core.config import Config
from rivermon.core.influx import InfluxClient, line
from rivermon.core.topology import load_topology

DB = "rivermon_bench_web"
LIMITS_MS = {"segments": 50.0, "series_1y": 500.0}
BATCH = 10000
PASSWORD = "bench-password-1"


def _lines(node, creek: str, start: int, end: int, step: int = 60):
    """Line protocol for one node, 1-minute readings with a diurnal DO cycle."""
    tags = {"creek": creek, "segment": node.segment, "node": node.id, "kind": node.kind}
    prefix = line("telemetry", tags, {"x": 0.0}, 0).split(" ")[0]
    phase = (hash(node.id) % 1000) / 1000 * 0.5
    seq = 0
    out = []
    for t in range(start, end, step):
        seq += 1
        if node.kind == "sensor":
            day = (t % 86400) / 86400
            do = 6.0 + 2.2 * math.sin(2 * math.pi * (day - 0.375 + phase)) + (seq % 7) * 0.03
            turb = 12.0 + (seq % 11) * 0.4
            out.append(f"{prefix} do_mg_l={do:.2f},turbidity_ntu={turb:.1f},temp_c=27.5,"
                       f"battery_v=3.9,seq={seq}i {t * 1000}")
        else:
            on = 6 <= (t % 86400) // 3600 <= 22
            out.append(f"{prefix} aerator_on={'true' if on else 'false'},"
                       f"power_w={1400.0 if on else 0.0},seq={seq}i {t * 1000}")
        if len(out) >= BATCH:
            yield "\n".join(out)
            out = []
    if out:
        yield "\n".join(out)


def load(client: InfluxClient, days: int, end: int) -> tuple[int, float]:
    """Write ``days`` of data for every node; returns (points, seconds)."""
    topo = load_topology()
    creek = topo.creeks[0]
    start = end - days * 86400
    t0 = time.monotonic()
    count = 0
    with ThreadPoolExecutor(3) as pool:
        pending = []
        for node in creek.nodes:
            for body in _lines(node, creek.id, start, end):
                pending.append(pool.submit(client.write_lines, body))
                count += body.count("\n") + 1
                if len(pending) > 6:
                    pending.pop(0).result()
            print(f"  loaded {node.id} ({count:,} points, {time.monotonic() - t0:.0f} s)", flush=True)
        for f in pending:
            f.result()
    return count, time.monotonic() - t0


def _loaded(client: InfluxClient) -> int:
    try:
        rows = client.rows('SELECT count("seq") FROM "telemetry"')
    except Exception:
        return 0
    return int(rows[0]["count"]) if rows else 0


def _login(base: str) -> requests.Session:
    s = requests.Session()
    html = s.get(base + "/login", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    r = s.post(base + "/login", data={"name": "bench", "password": PASSWORD, "csrf_token": token},
               allow_redirects=False, timeout=10)
    if r.status_code != 302:
        raise RuntimeError(f"bench login failed: {r.status_code}")
    return s


def measure(base: str, paths: list[str], clients: int, total: int) -> list[float]:
    """Latencies (ms) of ``total`` GETs spread over ``clients`` threads (client i asks for
    ``paths[i % len(paths)]``).

    Each client logs in once and then keeps one HTTP/1.1 connection (``http.client``: a thin
    client, so the figures are the panel's and not the load generator's).
    """
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(base)
    cookies = []
    for _ in range(clients):
        s = _login(base)
        cookies.append("; ".join(f"{c.name}={c.value}" for c in s.cookies))
        s.close()
    lat: list[float] = []
    lock = threading.Lock()
    per = math.ceil(total / clients)
    errors: list[str] = []
    sys.setswitchinterval(0.001)  # the load generator's threads must not convoy either

    def worker(cookie: str, path: str) -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        headers = {"Cookie": cookie, "Accept": "application/json"}
        conn.request("GET", path, headers=headers)  # warm-up
        conn.getresponse().read()
        mine = []
        for _ in range(per):
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            mine.append((time.perf_counter() - t0) * 1000)
            if r.status != 200:
                errors.append(f"{path}: {r.status}")
        conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(c, paths[i % len(paths)]))
               for i, c in enumerate(cookies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return lat


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_bench(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.core import servers
    from rivermon.web.aggregates import Aggregator
    from rivermon.web.users import UserError, UserStore

    work = Path(cfg.var) / "bench-web"
    work.mkdir(parents=True, exist_ok=True)
    started = []
    influx_url = args.influx
    broker_url = args.broker
    if influx_url is None:
        srv = servers.influxd(work / "influxd").start(timeout=60)
        started.append(srv)
        influx_url = srv.url
    if broker_url is None:
        srv = servers.mosquitto(work / "mosquitto").start()
        started.append(srv)
        broker_url = f"mqtt://127.0.0.1:{srv.port}"
    client = InfluxClient(influx_url, DB, timeout=600)
    web = None
    try:
        end = int(time.time()) // 60 * 60
        nodes = len(load_topology().creeks[0].nodes)
        expected = nodes * args.days * 1440
        have = _loaded(client) if args.keep else 0
        if have < expected * 0.99:
            print(f"loading {args.days} days of 1-minute data for {nodes} nodes "
                  f"({expected:,} readings) into {influx_url}/{DB} ...", flush=True)
            client.drop_database()
            client.ensure_database()
            points, secs = load(client, args.days, end)
            print(f"loaded {points:,} readings in {secs:.0f} s ({points / secs:,.0f}/s)", flush=True)
        else:
            print(f"reusing {have:,} readings in {influx_url}/{DB}", flush=True)
        var = work / "var"
        users = UserStore(var / "web.sqlite")
        try:
            users.add("bench", "viewer", PASSWORD)
        except UserError:
            pass
        agg_cfg = cfg.replace(web_agg_backfill_days=args.days + 2, var=str(var))
        agg = Aggregator(client, users, agg_cfg)
        t0 = time.monotonic()
        written = agg.run_once()
        print(f"hourly aggregates: {written:,} points in {time.monotonic() - t0:.1f} s", flush=True)

        port = servers.free_port()
        env = {**os.environ, "RIVERMON_WEB_PORT": str(port), "RIVERMON_VAR": str(var),
               "RIVERMON_INFLUX": influx_url, "RIVERMON_INFLUX_DB": DB, "RIVERMON_BROKER": broker_url,
               "RIVERMON_WEB_AGG_BACKFILL_DAYS": str(args.days + 2), "RIVERMON_LOG_LEVEL": "WARNING",
               # requests (unlike browsers) never sends a Secure cookie over http://127.0.0.1.
               "RIVERMON_WEB_COOKIE_SECURE": "false"}
        log = open(work / "web.log", "ab")
        web = subprocess.Popen([sys.executable, "-m", "rivermon.cli", "web"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_up(base + "/healthz", 30)
        except RuntimeError:
            tail = (work / "web.log").read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError("the panel did not become healthy; its log ends:\n" + "\n".join(tail)) from None
        # Each client follows one segment's one-year DO trend (9 different charts at once).
        segs = [s.id for s in load_topology().creeks[0].segments]
        years = [f"/api/series?segment={s}&field=do_mg_l&start={end - 365 * 86400}&end={end}"
                 for s in segs]
        probe = _login(base)
        t0 = time.perf_counter()
        body = probe.get(base + years[0].replace("do_mg_l", "turbidity_ntu"), timeout=60).json()
        cold = (time.perf_counter() - t0) * 1000
        probe.close()
        print(f"one-year trend: {body['interval_s'] // 3600} h steps from {body['source']}, "
              f"{sum(len(s['points']) for s in body['series'])} points; uncached, alone: {cold:.0f} ms",
              flush=True)
        results = {}
        for name, paths in (("segments", ["/api/segments"]), ("series_1y", years)):
            results[name] = measure(base, paths, args.clients, args.requests)
        print(f"\nrivermon bench web: {args.days} days x {nodes} nodes at 1-minute, "
              f"{args.clients} concurrent clients, {args.requests} requests each endpoint")
        print(f"{'endpoint':<28} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'limit p95':>10}  result")
        ok = True
        for name, lat in results.items():
            p95 = _pct(lat, 95)
            passed = p95 <= LIMITS_MS[name]
            ok &= passed
            label = "GET /api/segments" if name == "segments" else "GET /api/series (1 year)"
            print(f"{label:<28} {_pct(lat, 50):8.1f} {p95:8.1f} {_pct(lat, 99):8.1f} "
                  f"{LIMITS_MS[name]:10.0f}  {'PASS' if passed else 'FAIL'}")
        return 0 if ok else 1
    finally:
        if web is not None:
            web.terminate()
            try:
                web.wait(15)
            except subprocess.TimeoutExpired:
                web.kill()
        client.close()
        for srv in reversed(started):
            srv.stop()


def _wait_up(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the panel did not become healthy at {url}")

"""``rivermon bench sim``: how fast the simulator writes a week offline and publishes on a broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rivermon.core.config import Config

WEEK_CSV_LIMIT_S = 10.0       # brief: a simulated week of the creek in a few seconds
WEEK_PUBLISH_LIMIT_S = 60.0   # issue 4: a simulated week published in well under a minute


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", *args],
                          capture_output=True, text=True, timeout=900)


def bench_csv(days: int) -> dict[str, float]:
    """Time an offline run of ``days`` of the normal week."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "week.csv"
        t0 = time.perf_counter()
        p = _cli("--scenario", "normal-week", "--seed", "1", "--duration", f"{days}d",
                 "--start", "2026-07-01T00:00:00+08:00", "--csv", str(out))
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-2000:])
        stats = json.loads(p.stderr.strip().splitlines()[-1])
    return {"days": days, "rows": stats["rows"], "run_s": stats["seconds"], "process_s": round(wall, 2)}


def bench_publish(broker: str | None, days: float, copies: int) -> dict[str, float]:
    """Time an accelerated run on a broker and count what a subscriber received."""
    from rivermon.core import servers
    from rivermon.core.mqtt import make_client, parse_broker_url

    srv = None
    with tempfile.TemporaryDirectory() as tmp:
        if not broker:
            srv = servers.mosquitto(Path(tmp) / "mosquitto").start()
            broker = f"mqtt://127.0.0.1:{srv.port}"
        prefix = f"bench{os.getpid()}/v1"
        received = [0]
        done = threading.Event()
        b = parse_broker_url(broker)
        sub = make_client(b, f"bench-sub-{os.getpid()}")
        sub.on_connect = lambda c, *a: (c.subscribe(f"{prefix}/+/+/telemetry", 1), done.set())
        sub.on_message = lambda *a: received.__setitem__(0, received[0] + 1)
        sub.connect(b.host, b.port)
        sub.loop_start()
        done.wait(10)
        try:
            p = _cli("--broker", broker, "--topic-prefix", prefix, "--scenario", "normal-week",
                     "--speed", "0", "--duration", f"{days * 86400:.0f}", "--copies", str(copies))
            if p.returncode != 0:
                raise RuntimeError(p.stderr[-2000:])
            stats = json.loads(p.stdout.strip().splitlines()[-1])
            deadline = time.monotonic() + 30
            while received[0] < stats["messages"] and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            sub.loop_stop()
            sub.disconnect()
            if srv:
                srv.stop()
    return {"days": days, "copies": copies, "messages": stats["messages"],
            "received": received[0], "seconds": stats["seconds"], "rate_per_s": stats["rate_per_s"]}


def run_bench(args, cfg: Config) -> int:
    """Print the figures against their limits; non-zero when one is over."""
    csv = bench_csv(7)
    print(f"offline CSV, 7 days x 20 nodes at 1 min: {csv['rows']} rows in {csv['run_s']:.2f} s "
          f"({csv['process_s']:.2f} s with start-up); limit {WEEK_CSV_LIMIT_S:g} s: "
          f"{'OK' if csv['process_s'] <= WEEK_CSV_LIMIT_S else 'OVER'}")
    pub = bench_publish(args.bench_broker, args.days, 1)
    week = pub["seconds"] / pub["days"] * 7
    print(f"accelerated publish, {pub['days']:g} d x 20 nodes: {pub['messages']} messages in "
          f"{pub['seconds']:.2f} s = {pub['rate_per_s']:.0f} msg/s, {pub['received']} received; "
          f"a week would take {week:.1f} s; limit {WEEK_PUBLISH_LIMIT_S:g} s: "
          f"{'OK' if week <= WEEK_PUBLISH_LIMIT_S else 'OVER'}")
    if args.copies > 1:
        big = bench_publish(args.bench_broker, args.days / 4, args.copies)
        print(f"accelerated publish, {args.copies} copies ({args.copies * 20} nodes, pooled clients "
              f"above 400): {big['messages']} messages in {big['seconds']:.2f} s = "
              f"{big['rate_per_s']:.0f} msg/s, {big['received']} received")
    ok = csv["process_s"] <= WEEK_CSV_LIMIT_S and week <= WEEK_PUBLISH_LIMIT_S
    return 0 if ok else 1

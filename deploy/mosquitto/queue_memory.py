"""Benchmark: how much broker memory a queued reading costs (sizing the 1,000,000-message queue).

    .venv/bin/python deploy/mosquitto/queue_memory.py [N]      # N queued messages, default 200000

Starts a loopback Mosquitto with rivermon's queue settings (rivermon.core.servers), registers a
persistent MQTT 5 subscriber like the ingestor and disconnects it, publishes N one-reading
telemetry messages at QoS 1, and prints the broker's resident memory growth per queued message
and the projection for MAX_QUEUED_MESSAGES, against a limit of 1 GiB for the full queue.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from rivermon.core import servers
from rivermon.core.mqtt import connect_properties, make_client

LIMIT_FULL_QUEUE_MIB = 1024


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(n: int) -> int:
    data = Path(tempfile.mkdtemp(prefix="rivermon-qmem-"))
    srv = servers.mosquitto(data).start()
    try:
        url = f"mqtt://127.0.0.1:{srv.port}"
        sub = make_client(url, "qmem-ingest", protocol="5")
        subscribed = threading.Event()
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.connect("127.0.0.1", srv.port, clean_start=False, properties=connect_properties(86400))
        sub.loop_start()
        sub.subscribe("rivermon/v1/+/+/telemetry", qos=1)
        subscribed.wait(10)
        sub.disconnect()
        sub.loop_stop()
        time.sleep(0.5)
        before = rss_mib(srv.proc.pid)
        pub = make_client(url, "qmem-node", protocol="5")
        pub.connect("127.0.0.1", srv.port)
        pub.loop_start()
        t0 = time.monotonic()
        payload = b""
        for i in range(n):
            payload = json.dumps({"ts": 1764201600 + i, "seq": i, "do_mg_l": 5.83,
                                  "turbidity_ntu": 12.4, "temp_c": 27.1, "battery_v": 3.91}).encode()
            info = pub.publish(f"rivermon/v1/huanglong/hl{i % 20}-s1/telemetry", payload, qos=1)
            if i % 500 == 499 or i == n - 1:
                info.wait_for_publish(60)
        elapsed = time.monotonic() - t0
        pub.disconnect()
        pub.loop_stop()
        time.sleep(1)
        after = rss_mib(srv.proc.pid)
    finally:
        srv.stop()
        shutil.rmtree(data, ignore_errors=True)
    per_msg = (after - before) * 1024 * 1024 / n
    full = per_msg * servers.MAX_QUEUED_MESSAGES / 1024 / 1024
    ok = full <= LIMIT_FULL_QUEUE_MIB
    print(f"queued {n} readings ({len(payload)} B payload) in {elapsed:.1f} s; broker RSS "
          f"{before:.1f} -> {after:.1f} MiB = {per_msg:.0f} B per queued message")
    print(f"full queue of {servers.MAX_QUEUED_MESSAGES:,} messages: ~{full:.0f} MiB "
          f"(limit {LIMIT_FULL_QUEUE_MIB} MiB) {'OK' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))

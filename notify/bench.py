"""``rivermon bench notify``: alert events through a real broker to a local receiver.

Two figures against their limits: the latency from publishing an alert event to the WeCom
receiver having it (alerts trickling in, as from the model), and the throughput of a burst
(every event durably stored, routed and delivered to a WeCom and a webhook target).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rivermon.core import servers
from rivermon.core.alerts import Alert, publish_alert
from rivermon.core.config import Config, load_config
from rivermon.core.mqtt import make_client
from rivermon.notify.receiver import Receiver
from rivermon.notify.service import NotifyService

LIMIT_P95_LATENCY_S = 1.0
LIMIT_BURST_ALERTS_S = 100.0


def bench_notify(args: argparse.Namespace, cfg: Config) -> int:
    """Start a broker, a receiver and the notifier; print latency and burst throughput."""
    logging.getLogger("rivermon.notify").setLevel(logging.WARNING)  # one line per delivery otherwise
    with tempfile.TemporaryDirectory() as d:
        broker = servers.mosquitto(Path(d) / "mosquitto").start()
        rx = Receiver().start()
        routes = Path(d) / "routes.toml"
        routes.write_text(f'[targets.w]\ntype = "wecom"\nurl = "{rx.url("/wecom")}"\n'
                          f'[targets.h]\ntype = "webhook"\nurl = "{rx.url("/hook")}"\n'
                          '[[routes]]\ntargets = ["w", "h"]\n', encoding="utf-8")
        url = f"mqtt://127.0.0.1:{broker.port}"
        ncfg = load_config(env={}, overrides={
            "broker": url, "var": str(Path(d) / "var"), "notify_routes": str(routes),
            "notify_remind_s": 0, "notify_escalate_s": 0, "topic_prefix": cfg.topic_prefix,
            "notify_client_id": f"bench-{uuid.uuid4().hex[:6]}"})
        svc = NotifyService(ncfg).start()
        pub = make_client(url, f"bench-pub-{uuid.uuid4().hex[:6]}")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        try:
            if not svc.listener.subscribed.wait(10):
                raise RuntimeError("the notifier did not subscribe")
            latencies = _trickle(pub, ncfg.topic_prefix, rx, args.trickle)
            rate = _burst(pub, ncfg.topic_prefix, rx, args.alerts)
        finally:
            pub.loop_stop()
            pub.disconnect()
            svc.stop()
            rx.stop()
            broker.stop()
    p50 = statistics.median(latencies)
    p95 = sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)]
    ok_lat, ok_rate = p95 <= LIMIT_P95_LATENCY_S, rate >= LIMIT_BURST_ALERTS_S
    print("notify: broker -> outbox (fsync) -> route -> WeCom receiver + webhook receiver")
    print(f"  latency, {args.trickle} alerts at 10/s   p50 {p50 * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"
          f"   limit p95 <= {LIMIT_P95_LATENCY_S * 1000:.0f} ms   {'PASS' if ok_lat else 'FAIL'}")
    print(f"  burst of {args.alerts} alerts        {rate:9.1f} alerts/s delivered to both targets"
          f"   limit >= {LIMIT_BURST_ALERTS_S:.0f}   {'PASS' if ok_rate else 'FAIL'}")
    return 0 if ok_lat and ok_rate else 1


def _alert(i: int) -> Alert:
    now = time.time()
    return Alert(f"a-bench-{uuid.uuid4().hex[:8]}-{i}", "huanglong", f"hl-{1 + i % 7}", None,
                 "discharge", "critical", now, summary={"zh": "基准测试告警", "en": "bench alert"},
                 updated=now)


def _trickle(pub, prefix: str, rx: Receiver, n: int) -> list[float]:
    sent: dict[str, float] = {}
    for i in range(n):
        a = _alert(i)
        sent[a.id] = time.time()
        publish_alert(pub, prefix, a).wait_for_publish(5)
        time.sleep(0.1)
    _wait(rx, "/wecom", n)
    got = {r.content().split("/alerts/")[-1].rstrip(")").strip(): r.at for r in rx.accepted("/wecom")}
    return [got[k] - t for k, t in sent.items()]


def _burst(pub, prefix: str, rx: Receiver, n: int) -> float:
    before_w, before_h = len(rx.accepted("/wecom")), len(rx.accepted("/hook"))
    t0 = time.time()
    infos = [publish_alert(pub, prefix, _alert(i)) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    _wait(rx, "/wecom", before_w + n, 120)
    _wait(rx, "/hook", before_h + n, 120)
    return n / (time.time() - t0)


def _wait(rx: Receiver, path: str, n: int, timeout: float = 30) -> None:
    if not rx.wait_for(lambda got: len([r for r in got if r.path == path]) >= n, timeout):
        raise RuntimeError(f"only {len(rx.accepted(path))} of {n} messages reached {path}")

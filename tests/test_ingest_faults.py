"""Faults mid-stream: after each, every published reading is in InfluxDB exactly once.

Each test streams small one-reading messages from a paho publisher with a persistent session
(the ground truth is what it published), injects one fault, and counts InfluxDB per node and
timestamp: none missing, none twice.
"""

from __future__ import annotations

import time

import pytest

from rivermon.core import servers
from rivermon.core.influx import InfluxClient
from rivermon.core.servers import free_port
from rivermon.ingest.testing import metric_value as _metric, readyz_ok as _ready
from rivermon.ingest.testing import (Publisher, Stream, assert_exactly_once, ingest_argv,
                                     telemetry_points, wait_until)

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

NODES = ["hl1-s1", "hl2-s1", "hl3-s1", "stray-7"]


def _start(service, broker, influx_url, db, prefix, var, **settings):
    port = settings.pop("port", None) or free_port()
    svc = service(*ingest_argv(broker, influx_url, db, prefix, var, ingest_metrics_port=port,
                               ingest_batch_ms=100, **settings))
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: _ready(base), 20), svc.log()[-3000:]
    return svc, base, port


def _finish(stream: Stream, pub: Publisher, influx: InfluxClient, timeout: float = 40) -> None:
    stream.join(120)
    assert pub.wait_all(60), "the broker did not acknowledge every published message"
    wait_until(lambda: len(telemetry_points(influx)) >= len(stream.sent), timeout, 0.25)
    time.sleep(0.5)  # anything extra (a duplicate) would land by now
    assert_exactly_once(telemetry_points(influx), stream.sent)


def test_kill_9_of_the_ingestor_mid_stream_and_restart(service, broker_url, influx, prefix, tmp_path):
    var = tmp_path / "var"
    svc, base, port = _start(service, broker_url, influx.url, influx.database, prefix, var)
    pub = Publisher(broker_url)
    stream = Stream(pub, prefix, NODES, count=2400, rate=600)
    stream.start()
    assert wait_until(lambda: stream.progress > 800, 10)
    svc.kill9()
    assert wait_until(lambda: stream.progress > 1500, 10)  # published while nobody ingests
    _start(service, broker_url, influx.url, influx.database, prefix, var, port=port)
    _finish(stream, pub, influx)
    pub.close()


def test_influxdb_stopped_30_s_mid_stream_and_the_spool_filled_to_its_bound(service, broker_url, prefix, tmp_path):
    srv = servers.influxd(tmp_path / "influxd").start(timeout=60)
    influx = InfluxClient(srv.url, "outage")
    try:
        svc, base, _ = _start(service, broker_url, srv.url, "outage", prefix, tmp_path / "var",
                              ingest_spool_max_mb=1)
        pub = Publisher(broker_url)
        stream = Stream(pub, prefix, NODES, count=1800, rate=50)  # 36 s
        stream.start()
        assert wait_until(lambda: len(telemetry_points(influx)) > 50, 10)
        srv.stop()
        down_at = time.monotonic()
        # While InfluxDB is down the ingestor keeps taking messages into its spool.
        assert wait_until(lambda: (_metric(base, "rivermon_ingest_spool_bytes") or 0) > 20_000, 15)
        assert _metric(base, "rivermon_ingest_influx_healthy") == 0
        assert _ready(base)
        acks = _metric(base, "rivermon_ingest_acks_total")
        assert wait_until(lambda: _metric(base, "rivermon_ingest_acks_total") > acks + 200, 10)
        # A burst of backlogs fills the 1 MiB spool: acknowledgements stop, nothing is dropped.
        burst_ts = int(stream.start_ts * 1000) - 10_000_000
        burst = [("burst-1", burst_ts + i * 1000) for i in range(12_000)]
        for i in range(0, len(burst), 100):
            pub.publish(f"{prefix}/huanglong/burst-1/telemetry",
                        [{"ts": ts / 1000, "do_mg_l": 6.0} for _, ts in burst[i:i + 100]])
        assert wait_until(lambda: _metric(base, "rivermon_ingest_spool_full") == 1, 15)
        assert not _ready(base)
        held = _metric(base, "rivermon_ingest_acks_total")
        time.sleep(2)
        assert _metric(base, "rivermon_ingest_acks_total") == held
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        srv.start(timeout=60)
        stream.sent += burst
        _finish(stream, pub, influx, timeout=60)
        assert _metric(base, "rivermon_ingest_spool_full") == 0 and _ready(base)
        assert wait_until(lambda: _metric(base, "rivermon_ingest_spool_bytes") == 0, 10)
        assert _metric(base, "rivermon_ingest_influx_healthy") == 1
        pub.close()
    finally:
        influx.close()
        srv.stop()


def test_mosquitto_restarted_mid_stream_with_persistence(service, influx, prefix, tmp_path):
    broker = servers.mosquitto(tmp_path / "mosquitto").start()
    url = f"mqtt://127.0.0.1:{broker.port}"
    try:
        svc, base, _ = _start(service, url, influx.url, influx.database, prefix, tmp_path / "var")
        pub = Publisher(url)
        stream = Stream(pub, prefix, NODES, count=1500, rate=300)  # 5 s
        stream.start()
        assert wait_until(lambda: stream.progress > 600, 10)
        broker.stop()
        time.sleep(1.0)
        broker.start()
        _finish(stream, pub, influx)
        assert (_metric(base, "rivermon_ingest_connects_total") or 0) >= 2
        pub.close()
    finally:
        broker.stop()


def test_two_ingestors_share_the_stream_and_one_is_killed(service, broker_url, influx, prefix, tmp_path):
    var = tmp_path / "var"
    group = dict(ingest_share_group="g1")
    a, base_a, port_a = _start(service, broker_url, influx.url, influx.database, prefix, var,
                               ingest_client_id="ing-a", **group)
    b, base_b, _ = _start(service, broker_url, influx.url, influx.database, prefix, var,
                          ingest_client_id="ing-b", **group)
    pub = Publisher(broker_url)
    stream = Stream(pub, prefix, NODES, count=2400, rate=600)
    stream.start()
    assert wait_until(lambda: stream.progress > 800, 10)
    a_before = _metric(base_a, "rivermon_ingest_readings_total")
    a.kill9()
    assert wait_until(lambda: stream.progress > 1600, 10)
    # The survivor keeps its share flowing while the other is down.
    b_mid = _metric(base_b, "rivermon_ingest_readings_total")
    assert b_mid and b_mid > 0
    _start(service, broker_url, influx.url, influx.database, prefix, var,
           ingest_client_id="ing-a", port=port_a, **group)
    _finish(stream, pub, influx)
    b_total = _metric(base_b, "rivermon_ingest_readings_total")
    assert a_before and a_before > 0 and b_total < len(stream.sent)
    pub.close()


def test_a_share_group_member_leaves_without_losing_its_share(service, broker_url, influx, prefix, tmp_path):
    var = tmp_path / "var"
    group = dict(ingest_share_group="g2")
    a, _, port_a = _start(service, broker_url, influx.url, influx.database, prefix, var,
                          ingest_client_id="ing-a", **group)
    _start(service, broker_url, influx.url, influx.database, prefix, var,
           ingest_client_id="ing-b", **group)
    pub = Publisher(broker_url)
    stream = Stream(pub, prefix, NODES, count=1500, rate=500)
    stream.start()
    assert wait_until(lambda: stream.progress > 400, 10)
    a.stop()  # a clean stop: the broker keeps routing a's share to its session
    assert wait_until(lambda: stream.progress > 1000, 10)
    leave = service(*ingest_argv(broker_url, influx.url, influx.database, prefix, var,
                                 ingest_client_id="ing-a", ingest_metrics_port=port_a,
                                 ingest_batch_ms=100, **group), "--leave")
    assert wait_until(lambda: leave.proc.poll() is not None, 40), leave.log()[-3000:]
    assert leave.proc.returncode == 0, leave.log()[-3000:]
    # a's session is gone: whatever comes next goes to b alone, and nothing waits for a.
    late = Stream(pub, prefix, ["late-1"], count=100, rate=200, start_ts=stream.start_ts - 86400)
    late.start()
    late.join(10)
    stream.join(30)
    stream.sent += late.sent
    _finish(stream, pub, influx)
    pub.close()

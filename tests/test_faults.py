"""One simulated stream through real ingest and detect processes, with every fault in turn.

The simulator runs in-process (``rivermon.sim.Simulation``) and a QoS 1 publisher with a
persistent session puts every message it produces on the wire at a fixed accelerated rate
(60 simulated seconds per step, ``STEPS_PER_S`` steps a second), so the set of published
readings is known exactly: the ground truth every count below compares against. While the
stream runs:

1. ``kill -9`` of the ingestor, and a restart;
2. Mosquitto restarted (persistence on);
3. InfluxDB stopped for 60 s, and while it is down: a 10-minute backlog from 30 more nodes at
   once (backlog arrays, nodes the topology does not know: stored as ``unassigned``) fills the
   ingestor's 1 MiB spool to its bound (acknowledgements stop, ``/readyz`` 503), duplicates and
   out-of-order readings are sent again; then InfluxDB starts again;
4. a discharge is injected into the simulator; once its alert is open, ``kill -9`` of the
   model process, and a restart.

After each fault: every reading published so far is in InfluxDB exactly once per (node, ts)
(none missing, none twice, nothing unexpected), the ingestor answers ``/readyz`` 200 again
without anyone touching it, and no alert is lost (every alert in the store was published on the
alerts topic) or duplicated (one alert for the discharge, before and after the model's kill).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rivermon.core import servers
from rivermon.core.alerts import AlertStore
from rivermon.core.influx import InfluxClient
from rivermon.core.mqtt import make_client, parse_broker_url
from rivermon.ingest.testing import Publisher, ingest_argv, telemetry_points, wait_until
from rivermon.ingest.testing import metric_value as _metric, readyz_ok as _ready
from rivermon.sim import read_truth

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

STEPS_PER_S = 4.0            # 4 simulated minutes a second: 20 nodes -> 80 readings/s
SEED = 3
OUTLET = "ol-l2"             # a large outlet: the model names hl2-s1, downstream of it
DB = "faults"
BACKLOG_NODES = 30
BACKLOG_READINGS = 600       # 10 minutes at 1 s per node: 18,000 readings, ~2 MB of spool
INFLUX_DOWN_S = 60.0


# ---- the stream ---------------------------------------------------------------------------------

class SimStream(threading.Thread):
    """Step the simulator at a fixed rate and publish what its nodes put on the wire.

    ``sent`` holds (node, ts_ms) of every reading published (the ground truth);
    ``inject()`` queues an event that the simulator starts at its next step.
    """

    def __init__(self, pub: Publisher, prefix: str, creek: Any, truth: Path, start: float):
        super().__init__(daemon=True)
        from rivermon.sim import Simulation, TruthWriter, parse_scenario

        scenario = parse_scenario({"season": "summer",
                                   "network": {"duplicate_prob": 0.03, "reorder_prob": 0.03}},
                                  creek, "faults")
        self.truth = TruthWriter(truth, creek.timezone, creek.id)
        self.sim = Simulation(creek, scenario, seed=SEED, start=start, interval_s=60.0,
                              duration=None, truth=self.truth)
        self.pub, self.prefix, self.creek = pub, prefix, creek.id
        self.node_ids = [n.id for n in creek.nodes]
        self.lock = threading.Lock()
        self.sent: list[tuple[str, int]] = []
        self.history: list[tuple[str, str]] = []  # (topic, payload) of one-reading messages
        self.injections: list[dict[str, Any]] = []
        self.steps = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def publish(self, node: str, channel: str, payload: Any, retain: bool = False) -> None:
        topic = f"{self.prefix}/{self.creek}/{node}/{channel}"
        text = json.dumps(payload, separators=(",", ":"))
        with self.lock:
            self.pub.publish(topic, text, retain=retain)
            if channel == "telemetry":
                items = payload if isinstance(payload, list) else [payload]
                self.sent += [(node, round(r["ts"] * 1000)) for r in items]
                if not isinstance(payload, list):
                    self.history.append((topic, text))

    def inject(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.injections.append(event)

    def reached(self, steps: int) -> bool:
        """True once the stream has made ``steps`` steps; raises what stopped it."""
        if self.error is not None:
            raise AssertionError("the simulated stream stopped") from self.error
        return self.steps >= steps

    def snapshot(self) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.sent)

    def run(self) -> None:
        try:
            for node in self.node_ids:  # as a node says on connecting: retained, online
                self.publish(node, "status", {"state": "online", "fw": "rivermon-sim-1.0"}, retain=True)
            t0 = time.monotonic()
            while not self.halt.is_set():
                with self.lock:
                    for event in self.injections:
                        self.sim.inject(event)
                    self.injections = []
                for m in self.sim.step():
                    if not m.will:  # a last will is the broker's to publish, not the node's
                        self.publish(m.node, m.channel, m.payload, retain=m.channel == "status")
                self.steps += 1
                ahead = t0 + self.steps / STEPS_PER_S - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        self.truth.close()


class AlertCollector:
    """A persistent-session subscriber to ``{prefix}/+/alerts`` that keeps every event."""

    def __init__(self, broker: str, prefix: str):
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = make_client(broker, f"alerts-{uuid.uuid4().hex[:8]}", "3.1.1", clean=False)
        self.client.reconnect_delay_set(1, 2)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{prefix}/+/alerts", 1)
        self.client.on_subscribe = lambda *a, **k: self.subscribed.set()
        self.client.on_message = self._on_message
        b = parse_broker_url(broker)
        self.client.connect(b.host, b.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the alert collector could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.events.append(json.loads(msg.payload))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["kind"] == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ---- probes ---------------------------------------------------------------------------------------

def _stored(influx: InfluxClient) -> list[tuple[str, int]] | None:
    try:
        return telemetry_points(influx, "seq")
    except Exception:  # InfluxDB down or restarting
        return None


def checkpoint(name: str, stream: SimStream, influx: InfluxClient, timeout: float = 60) -> int:
    """Every reading published so far is stored exactly once; returns how many were checked."""
    expected = set(stream.snapshot())
    stored: list[tuple[str, int]] = []

    def landed() -> bool:
        nonlocal stored
        stored = _stored(influx) or []
        return expected <= set(stored)

    wait_until(landed, timeout, 0.5)
    sent_now = set(stream.snapshot())
    counts = Counter(stored)
    missing = expected - set(counts)
    twice = [k for k, n in counts.items() if n > 1]
    extra = set(counts) - sent_now
    assert not missing and not twice and not extra, (
        f"after {name}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(twice)} twice "
        f"(e.g. {twice[:3]}), {len(extra)} never published, of {len(expected)} published")
    return len(expected)


def per_node_counts(influx: InfluxClient) -> dict[str, int]:
    rows = influx.rows('SELECT count("seq") FROM "telemetry" GROUP BY "node"')
    return {r["node"]: int(r["count"]) for r in rows}


def sim_start(now: float) -> float:
    """A local (UTC+8) midnight at least 20 h ago: the stream never stamps the future, and
    always covers the same hours of the day."""
    local = now + 8 * 3600 - 20 * 3600
    return local - local % 86400 - 8 * 3600


def backlog(start_ms: int) -> dict[str, list[dict[str, Any]]]:
    """A 10-minute backlog (1 s sampling) from each of 30 nodes the topology does not know."""
    return {f"bk-{k:02d}": [{"ts": (start_ms + i * 1000) / 1000, "seq": i + 1,
                             "do_mg_l": round(6.0 + 0.01 * (i % 50), 2), "turbidity_ntu": 11.5}
                            for i in range(BACKLOG_READINGS)]
            for k in range(1, BACKLOG_NODES + 1)}


# ---- the test -------------------------------------------------------------------------------------

def test_one_stream_survives_every_fault_in_turn(service, topology, prefix, tmp_path):
    broker = servers.mosquitto(tmp_path / "mosquitto").start()
    influxd = servers.influxd(tmp_path / "influxd").start(timeout=60)
    burl = f"mqtt://127.0.0.1:{broker.port}"
    influx = InfluxClient(influxd.url, DB)
    var = tmp_path / "var"
    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    ingest_args = ingest_argv(burl, influxd.url, DB, prefix, var, ingest_metrics_port=port,
                              ingest_batch_ms=100, ingest_spool_max_mb=1)
    detect_args = ["detect", "--broker", burl, "--influx", influxd.url, "--influx-db", DB,
                   "--topic-prefix", prefix, "--var", str(var), "--detect-client-id", "detect-f",
                   # The default checkpoint interval (60 s, 4 simulated hours here): the model
                   # acknowledges only what a checkpoint holds, so a kill -9 loses nothing.
                   "--detect-state-interval-s", "60"]
    pub = alerts = stream = ingest = detect = None
    survived: list[str] = []
    try:
        ingest = service(*ingest_args)
        detect = service(*detect_args)
        assert wait_until(lambda: _ready(base), 30), ingest.log()[-3000:]
        assert wait_until(lambda: "subscribed" in detect.log(), 30), detect.log()[-3000:]
        pub = Publisher(burl)
        alerts = AlertCollector(burl, prefix)
        stream = SimStream(pub, prefix, topology.creek("huanglong"), tmp_path / "truth.jsonl",
                           sim_start(time.time()))
        stream.start()

        # 1. kill -9 of the ingestor mid-stream, restarted 2 s later.
        assert wait_until(lambda: stream.reached(30), 30)
        ingest.kill9()
        time.sleep(2)
        ingest = service(*ingest_args)
        assert wait_until(lambda: _ready(base), 30), ingest.log()[-3000:]
        checkpoint("kill -9 of the ingestor", stream, influx)
        survived.append("ingestor kill -9")

        # 2. Mosquitto restarted (persistence on): sessions, subscriptions and queues survive.
        connects = _metric(base, "rivermon_ingest_connects_total") or 0
        broker.stop()
        time.sleep(1)
        broker.start()
        assert wait_until(lambda: (_metric(base, "rivermon_ingest_connects_total") or 0) > connects
                          and _ready(base), 30), ingest.log()[-3000:]
        checkpoint("Mosquitto restart", stream, influx)
        survived.append("Mosquitto restart")

        # 3. InfluxDB down for 60 s; meanwhile the backlog fills the spool, duplicates and
        #    out-of-order readings arrive.
        influxd.stop()
        down_at = time.monotonic()
        assert wait_until(lambda: _metric(base, "rivermon_ingest_influx_healthy") == 0, 15)
        acks = _metric(base, "rivermon_ingest_acks_total") or 0
        assert wait_until(lambda: (_metric(base, "rivermon_ingest_acks_total") or 0) > acks + 100, 15)
        assert _ready(base), "the ingestor keeps taking readings into its spool while InfluxDB is down"
        first_ts = min(ts for _, ts in stream.snapshot())
        for node, readings in backlog(first_ts - 3_600_000).items():
            stream.publish(node, "telemetry", readings)
        with stream.lock:
            again = random.Random(SEED).sample(stream.history, 300)
        for topic, text in again[:150]:                 # duplicates: the same payload again
            pub.publish(topic, text)
        for topic, text in reversed(again[150:]):       # old readings, newest first
            pub.publish(topic, text)
        assert wait_until(lambda: _metric(base, "rivermon_ingest_spool_full") == 1, 30), \
            "the backlog did not fill the 1 MiB spool"
        assert not _ready(base), "a full spool must make /readyz answer 503"
        held = _metric(base, "rivermon_ingest_acks_total")
        time.sleep(2)
        assert _metric(base, "rivermon_ingest_acks_total") == held, "acknowledged past the bound"
        survived.append("spool filled to its bound (acks stopped, /readyz 503)")
        time.sleep(max(0.0, INFLUX_DOWN_S - (time.monotonic() - down_at)))
        influxd.start(timeout=60)
        assert wait_until(lambda: _ready(base) and _metric(base, "rivermon_ingest_spool_full") == 0
                          and _metric(base, "rivermon_ingest_influx_healthy") == 1, 90), \
            ingest.log()[-3000:]
        checkpoint("InfluxDB down 60 s, spool full, 30-node backlog, duplicates, out of order",
                   stream, influx, timeout=90)
        counts = per_node_counts(influx)
        assert {n for n in counts if n.startswith("bk-")} == {f"bk-{k:02d}" for k in range(1, 31)}
        assert all(counts[f"bk-{k:02d}"] == BACKLOG_READINGS for k in range(1, 31)), counts
        unassigned = influx.rows("SHOW TAG VALUES FROM \"telemetry\" WITH KEY = \"segment\" "
                                 "WHERE \"node\" = 'bk-01'")
        assert [r["value"] for r in unassigned] == ["unassigned"]
        survived += ["InfluxDB stopped 60 s", "10-minute backlog from 30 nodes at once",
                     "duplicates and out-of-order readings"]

        # 4. A discharge; once its alert is open, kill -9 of the model and a restart.
        stream.inject({"kind": "discharge", "outlet": OUTLET, "duration": "2h"})
        store = AlertStore(var / "alerts.sqlite")
        try:
            assert wait_until(lambda: store.list(kind="discharge"), 60), (
                "no discharge alert:\n" + detect.log()[-3000:])
            assert wait_until(lambda: alerts.of_kind("discharge"), 10)
            (before,) = store.list(kind="discharge")
            truth = [r for r in read_truth(tmp_path / "truth.jsonl") if r["kind"] == "discharge"]
            assert len(truth) == 1 and truth[0]["outlet"] == OUTLET, truth
            assert before.state == "open" and before.start >= truth[0]["start_ts"] - 600, (
                before.to_event(), truth)
            assert OUTLET in before.evidence["outlets"], before.to_event()
            assert {e["id"] for e in alerts.of_kind("discharge")} == {before.id}
            detect.kill9()
            time.sleep(1)
            detect = service(*detect_args)
            assert wait_until(lambda: "subscribed" in detect.log(), 30), detect.log()[-3000:]
            assert wait_until(lambda: '"resumed": true' in detect.log(), 10), \
                "the model did not resume its checkpoint:\n" + detect.log()[-3000:]
            steps = stream.steps
            # An hour of simulated creek while the discharge goes on, seen by the new process.
            assert wait_until(lambda: stream.reached(steps + 60), 40)
            checkpoint("kill -9 of the model", stream, influx)
            time.sleep(2)
            after = store.list(kind="discharge")
            assert [a.id for a in after] == [before.id], [a.to_event() for a in after]
            assert after[0].state in ("open", "acknowledged", "resolved")
            assert {e["id"] for e in alerts.of_kind("discharge")} == {before.id}
            # No alert lost on the topic, none duplicated in the store.
            in_store = store.list()
            assert wait_until(lambda: {a.id for a in in_store} <= {e["id"] for e in alerts.events}, 10), (
                {a.id for a in in_store} - {e["id"] for e in alerts.events})
            # One alert per condition over the whole run (any state): the silent backlog nodes
            # have one node_offline each, however data time jumped after the outages.
            per_key = Counter((a.creek, a.segment, a.node, a.kind) for a in in_store)
            assert all(n == 1 for n in per_key.values()), [k for k, n in per_key.items() if n > 1]
            # ... and the discharge's InfluxDB point is there once, under its one id.
            rows = influx.rows("SELECT \"id\", \"state\" FROM \"alerts\" WHERE \"kind\" = 'discharge'")
            assert {r["id"] for r in rows} == {before.id}, rows
        finally:
            store.close()
        survived.append("model kill -9")

        stream.stop()
        assert stream.error is None, repr(stream.error)
        assert pub.wait_all(60)
        total = checkpoint("the end of the stream", stream, influx)
        assert influx.rows('SELECT "count", "detail" FROM "rejects"') == [], "readings were refused"
        assert _ready(base) and ingest.proc.poll() is None and detect.proc.poll() is None
        print(f"\nfaults survived: {survived}; {total} distinct readings published "
              f"({len(stream.snapshot())} with duplicates), 0 lost, 0 duplicated")
    finally:
        if stream is not None and stream.is_alive():
            stream.stop()
        for c in (alerts, pub):
            if c is not None:
                c.close()
        for svc in (detect, ingest):  # before their servers, so they stop quickly
            if svc is not None:
                svc.stop()
        influx.close()
        influxd.stop()
        broker.stop()


def test_a_silent_node_keeps_one_offline_alert_when_a_drained_backlog_moves_data_time_on(topology):
    """Found by the stream above: after an outage the queue drains hours of other nodes' data
    between two deadman ticks; the node that stays silent must keep its one node_offline."""
    import numpy as np

    from rivermon.models.engine import Engine

    eng = Engine(topology)
    t0 = 1_795_000_000.0

    def feed(node: str, ts: list[float]) -> list:
        t = np.asarray(ts, float)
        return eng.feed("huanglong", node, t, {"do_mg_l": np.full(t.size, 6.0),
                                               "turbidity_ntu": np.full(t.size, 11.0)})

    events = feed("bk-01", [t0 + 60 * i for i in range(10)])
    t = t0 + 600
    for k in range(30):
        events += feed("bk-02", [t]) + eng.tick(t)
        t += 1200 + (3 * 3600 if k == 10 else 0)  # the drain: three hours at once
    changes = [change for ep, change in events if ep.node == "bk-01" and ep.kind == "node_offline"]
    assert changes.count("opened") == 1 and "resolved" not in changes, changes

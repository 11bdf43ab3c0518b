"""Hourly aggregates: built from raw telemetry, idempotent, late data folded in, and long-span
series and compliance read from them give the same answers as raw data."""

from __future__ import annotations

import time

from rivermon.core.config import load_config
from rivermon.core.influx import line
from rivermon.web.aggregates import Aggregator
from rivermon.web.queries import AGG, PanelQueries
from rivermon.web.users import UserStore

HOUR = 3600
NOW = (int(time.time()) // HOUR) * HOUR + 1800  # half way through the current hour


def _write(influx, start, end, nodes=("hl3-s1", "hl3-s2"), step=60, value=None):
    lines = []
    for i, node in enumerate(nodes):
        t = start
        while t < end:
            do = value if value is not None else round(0.1 + (t // step % 90) * 0.1 + i, 3)  # 0.1 .. 9.0 (+i)
            lines.append(line("telemetry", {"creek": "huanglong", "segment": "hl-3", "node": node,
                                            "kind": "sensor"}, {"do_mg_l": float(do), "turbidity_ntu": 10.0}, t * 1000))
            t += step
    for k in range(0, len(lines), 5000):
        influx.write_lines(lines[k:k + 5000])


def _agg(influx, tmp_path, **settings):
    cfg = load_config(env={}, overrides={"web_agg_backfill_days": 5, "web_agg_lookback_h": 3, **settings})
    return Aggregator(influx, UserStore(tmp_path / "web.sqlite"), cfg)


def test_aggregates_match_raw(influx, tmp_path, topology):
    start = NOW - 16 * 86400
    _write(influx, start, NOW, step=300)
    agg = _agg(influx, tmp_path, web_agg_backfill_days=20)
    assert not agg.ready
    written = agg.run_once(NOW)
    assert agg.ready and agg.watermark == NOW - 1800
    assert written == 2 * (16 * 24 + 1)  # two nodes, whole hours plus the current partial one
    rows = influx.rows(f'SELECT * FROM "{AGG}" WHERE "node" = \'hl3-s1\'')
    full = [r for r in rows if r["time"] < (NOW - 1800) * 1000 and r["time"] >= (start // HOUR + 1) * HOUR * 1000]
    assert full and all(r["do_mg_l_n"] == 12 for r in full)
    bands = [k for k in rows[0] if k.startswith("do_mg_l_b_")]
    assert len(bands) == 7 and all(sum(r[b] for b in bands) == r["do_mg_l_n"] for r in rows)

    q = PanelQueries(influx, topology)
    raw = q.series("huanglong", "hl-3", "do_mg_l", start + HOUR, NOW - 1800, use_agg=False)
    fast = q.series("huanglong", "hl-3", "do_mg_l", start + HOUR, NOW - 1800, use_agg=True)
    assert raw["source"] == "telemetry" and fast["source"] == AGG and fast["interval_s"] == raw["interval_s"]
    by_node = {s["node"]: s["points"] for s in raw["series"]}
    for s in fast["series"]:
        for (t1, m1, lo1, hi1), (t2, m2, lo2, hi2) in zip(s["points"], by_node[s["node"]]):
            assert t1 == t2 and abs(m1 - m2) < 1e-6 and lo1 == lo2 and hi1 == hi2
    aligned = (start // HOUR + 1) * HOUR  # aggregates answer in whole hours
    c_raw = q.do_band_counts("huanglong", aligned, NOW + 1, use_agg=False)
    c_agg = q.do_band_counts("huanglong", aligned, NOW + 1, use_agg=True)
    assert c_raw["hl-3"] == c_agg["hl-3"] and sum(c_raw["hl-3"].values()) == 2 * (NOW - aligned) // 300


def test_rerun_is_idempotent_and_folds_in_late_data(influx, tmp_path):
    _write(influx, NOW - 6 * HOUR, NOW, nodes=("hl3-s1",), value=6.0)
    agg = _agg(influx, tmp_path)
    agg.run_once(NOW)
    before = influx.rows(f'SELECT * FROM "{AGG}"')
    agg.run_once(NOW)
    assert influx.rows(f'SELECT * FROM "{AGG}"') == before
    # A late backlog inside the look-back window: the same hour now holds a low reading.
    hour = (NOW // HOUR - 2) * HOUR
    _write(influx, hour + 30, hour + 31, nodes=("hl3-s1",), value=0.1)
    agg.run_once(NOW + 60)
    row = influx.rows(f'SELECT * FROM "{AGG}" WHERE time = {hour * 1000}ms')[0]
    assert row["do_mg_l_n"] == 61 and row["do_mg_l_min"] == 0.1 and row["do_mg_l_b_bo_severe"] == 1
    # The watermark survives a restart (kept in web.sqlite).
    assert _agg(influx, tmp_path).watermark == agg.watermark


def test_query_cache_lets_expired_answers_go_instead_of_keeping_them_until_full(monkeypatch):
    from rivermon.web import queries as q

    clock = [1000.0]
    monkeypatch.setattr(q.time, "monotonic", lambda: clock[0])
    cache = q.QueryCache(maxsize=256)
    for i in range(10):
        assert cache.get(("trend", i), 60.0, lambda i=i: [i] * 1000) == [i] * 1000
    assert len(cache._items) == 10
    clock[0] += 61.0  # all ten expire; the next answer stored sweeps them out
    assert cache.get(("segments",), 1.0, lambda: "fresh") == "fresh"
    assert list(cache._items) == [("segments",)]
    # a live answer is still served from the cache, not recomputed
    assert cache.get(("segments",), 1.0, lambda: "recomputed") == "fresh"

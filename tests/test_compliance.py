"""Compliance hours, completeness and alert times on hand-made series with known answers."""

from __future__ import annotations

import pytest

from rivermon.core.alerts import AlertStore
from rivermon.core.compliance import (DO_CLASSES, alert_summaries, black_band, classify_do,
                                      hold_intervals, merge_min, month_range, segment_compliance,
                                      typical_interval_ms)
from rivermon.core.points import telemetry_line
from rivermon.core.reading import Reading

T0 = 1794240000000  # 2026-11-10T00:00:00+08:00 in ms
MIN = 60_000
H = 3600_000


def _write(influx, topology, node, series, extra=None):
    lines = [telemetry_line(Reading("huanglong", node, T0 + m * MIN, {"do_mg_l": float(v), **(extra or {})}),
                            topology) for m, v in series]
    influx.write_lines(lines)


# hl1-s1: irregular sampling, a 120-minute gap, every class and both black-odorous bands.
HL1 = [(0, 8.0), (10, 6.5), (25, 5.5), (30, 4.0), (150, 2.5), (160, 1.0), (170, 0.1)] + \
      [(m, 7.0) for m in range(180, 360, 10)]


def test_classes_and_bands_at_their_edges():
    assert [classify_do(v) for v in (7.5, 7.49, 6.0, 5.0, 3.0, 2.0, 1.99)] == \
        ["I", "II", "II", "III", "IV", "V", "below_V"]
    assert [black_band(v) for v in (2.0, 1.99, 0.2, 0.19)] == [None, "black_light", "black_light",
                                                               "black_severe"]


def test_hold_rule_gap_counts_as_missing_not_last_value():
    times = [0, 10 * MIN, 60 * MIN]
    held = hold_intervals(times, [5.0, 4.0, 3.0], 0, 90 * MIN, gap_limit_ms=30 * MIN, interval_ms=10 * MIN)
    # 10 -> 60 is a 50-minute gap: the reading at 10 counts for one interval, then missing.
    assert held == [(0, 10 * MIN, 5.0), (10 * MIN, 20 * MIN, 4.0), (60 * MIN, 70 * MIN, 3.0)]
    assert typical_interval_ms(times) == 30 * MIN


def test_merge_takes_the_lowest_value_where_any_node_has_one():
    a = [(0, 10, 6.0), (10, 20, 6.0), (30, 40, 6.0)]
    b = [(5, 15, 4.0)]
    assert merge_min([a, b]) == [(0, 5, 6.0), (5, 15, 4.0), (15, 20, 6.0), (30, 40, 6.0)]


def test_segment_hours_on_a_hand_made_series(influx, topology):
    _write(influx, topology, "hl1-s1", HL1)
    creek = topology.creek("huanglong")
    [seg] = segment_compliance(influx, creek, T0, T0 + 6 * H, segment="hl-1")
    hours = {c: round(seg.do.classes[c] * 60, 6) for c in DO_CLASSES}  # minutes
    assert hours == {"I": 10, "II": 15 + 180, "III": 5, "IV": 10, "V": 10, "below_V": 20}
    assert round(seg.do.black_light_h * 60, 6) == 10
    assert round(seg.do.black_severe_h * 60, 6) == 10
    assert round(seg.do.covered_h * 60, 6) == 250
    assert round(seg.do.missing_h * 60, 6) == 110
    mean = (8 * 10 + 6.5 * 15 + 5.5 * 5 + 4 * 10 + 2.5 * 10 + 1 * 10 + 0.1 * 10 + 7 * 180) / 250
    assert seg.do.mean_do == pytest.approx(mean)
    assert seg.do.min_do == pytest.approx(0.1)
    sensor = next(n for n in seg.nodes if n.node == "hl1-s1")
    assert (sensor.interval_s, sensor.received, sensor.expected) == (600.0, 25, 36)
    assert sensor.interval_known
    # The aerator sent nothing: the creek's typical interval is borrowed to expect readings.
    aerator = next(n for n in seg.nodes if n.node == "hl1-a1")
    assert (aerator.received, aerator.expected, aerator.interval_known) == (0, 36, False)
    assert seg.completeness == pytest.approx(25 / 72)


def test_segment_takes_its_worst_node_and_readings_just_outside_the_period(influx, topology):
    # hl3-s1 reads 6.5 every 10 min from 5 min before the period; hl3-s2 reads 4.0 for 30 min.
    _write(influx, topology, "hl3-s1", [(m, 6.5) for m in range(-5, 60, 10)])
    _write(influx, topology, "hl3-s2", [(m, 4.0) for m in range(0, 30, 10)])
    [seg] = segment_compliance(influx, topology.creek("huanglong"), T0, T0 + H, segment="hl-3")
    assert round(seg.do.classes["IV"] * 60, 6) == 30
    assert round(seg.do.classes["II"] * 60, 6) == 30
    assert round(seg.do.covered_h, 6) == 1.0
    s1 = next(n for n in seg.nodes if n.node == "hl3-s1")
    assert round(s1.do.classes["II"], 6) == 1.0  # the reading at -5 min covers [0, 5)


def test_every_segment_in_flow_order_and_unknown_segment_refused(influx, topology):
    creek = topology.creek("huanglong")
    result = segment_compliance(influx, creek, T0, T0 + H)
    assert [s.segment for s in result] == [s.id for s in creek.flow_order()]
    assert all(s.do.covered_h == 0 and s.do.missing_h == 1.0 for s in result)
    with pytest.raises(ValueError, match="segment 'hl-99' is not in creek"):
        segment_compliance(influx, creek, T0, T0 + H, segment="hl-99")


def test_alert_counts_and_handling_times(tmp_path):
    s0 = T0 / 1000
    with AlertStore(tmp_path / "alerts.sqlite") as store:
        a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", s0,
                                    {"zh": "疑似排污", "en": "Suspected discharge"})
        store.acknowledge(a.id, "li", at=s0 + 600)
        store.resolve(a.id, "li", at=s0 + 3600)
        b, _ = store.open_or_update("huanglong", "hl-3", "hl3-s2", "sensor_stuck", "warning", s0 + 100,
                                    {"zh": "卡值", "en": "stuck"})
        store.resolve(b.id, "auto", at=s0 + 1900)
        store.open_or_update("huanglong", "hl-3", "hl3-s1", "low_do", "warning", s0 + 200,
                             {"zh": "低氧", "en": "low"})
        store.open_or_update("huanglong", "", None, "rain", "info", s0 + 300, {"zh": "雨", "en": "rain"})
        store.open_or_update("huanglong", "hl-3", "hl3-s2", "low_do", "warning", s0 - 1, {"zh": "x", "en": "x"})
        sums = alert_summaries(store, "huanglong", T0, T0 + H)
    hl3 = sums["hl-3"]
    assert hl3.by_kind == {"discharge": 1, "sensor_stuck": 1, "low_do": 1}
    assert (hl3.total, hl3.acknowledged, hl3.resolved, hl3.auto_resolved, hl3.still_open) == (3, 1, 2, 1, 1)
    assert hl3.ack_median_s == 600
    assert hl3.resolve_median_s == (3600 + 1800) / 2
    assert sums[""].by_kind == {"rain": 1}


def test_month_is_the_local_month():
    start, end = month_range("2026-11", "Asia/Shanghai")
    assert start == 1793462400000  # 2026-11-01T00:00:00+08:00
    assert (end - start) == 30 * 24 * H
    with pytest.raises(ValueError, match="must look like 2026-11"):
        month_range("November")
    assert month_range("2026-12")[1] - month_range("2026-12")[0] == 31 * 24 * H


def test_series_are_read_in_pages_with_the_same_answer(influx, topology, monkeypatch):
    from rivermon.core import compliance

    _write(influx, topology, "hl1-s1", HL1)
    creek = topology.creek("huanglong")
    [whole] = segment_compliance(influx, creek, T0, T0 + 6 * H, segment="hl-1")
    monkeypatch.setattr(compliance, "PAGE_ROWS", 4)
    times, _ = compliance.fetch_series(influx, "huanglong", "hl1-s1", "do_mg_l", T0, T0 + 6 * H)
    assert len(times) == len(HL1) and times == sorted(set(times))
    [paged] = segment_compliance(influx, creek, T0, T0 + 6 * H, segment="hl-1")
    assert paged.as_dict() == whole.as_dict()

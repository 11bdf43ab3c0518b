"""The evaluation harness: scoring conventions, baselines, tables and targets."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rivermon.models import baselines, inject
from rivermon.models.datasets import Dataset
from rivermon.models.evaluate import evaluate, print_table, targets
from rivermon.models.replay import Series
from rivermon.models.scoring import Alert, Event, PointSet, events_from_labels, score

T0 = 1795708800.0
DAY = 86400.0


def test_event_and_point_scores_follow_the_stated_conventions():
    events = [Event("sensor_stuck", 1000.0, 2000.0, node="a"), Event("sensor_stuck", 5000.0, 6000.0, node="a")]
    alerts = [Alert("sensor_stuck", 1900.0, 2500.0, 1950.0, "a"),      # overlaps the first
              Alert("sensor_stuck", 2600.0, 2700.0, 2600.0, "a"),      # within tolerance of the first
              Alert("sensor_stuck", 9000.0, 9100.0, 9000.0, "a"),      # false
              Alert("sensor_spike", 5500.0, 5500.0, 5500.0, "a")]      # another kind: not an answer
    row = score("sensor_stuck", "model", events, alerts, tol=600.0, node_days=2.0, seg_of={}, generic=False)
    assert (row.events, row.caught, row.alerts, row.true_alerts) == (2, 1, 3, 2)
    assert row.recall == 0.5 and row.precision == pytest.approx(2 / 3)
    assert row.delays == [950.0]
    assert row.false_alerts == 1 and row.false_per_node_day == 0.5
    t = np.arange(0.0, 10000.0, 100.0)
    pts = PointSet({"a": t})
    f1 = pts.f1(events, [alerts[0]])
    tp, fp, fn = 1, 5, 10 + 11 - 1  # readings 1900-2000 | 2100-2500 | the rest of both events
    assert f1 == pytest.approx(2 * 2 / (2 * 2 + 5 + 18), rel=0.2)
    labels = np.zeros(t.size, bool)
    labels[10:15] = labels[17:19] = labels[60:62] = True
    evs = events_from_labels(t, labels, "a", max_gap_s=300.0)
    assert [(e.start, e.end) for e in evs] == [(1000.0, 1800.0), (6000.0, 6100.0)]


def test_baselines_flag_the_obvious():
    t = T0 + np.arange(0, 2 * DAY, 60.0)
    rng = np.random.default_rng(1)
    x = 10 + rng.normal(0, 0.1, t.size)
    x[2000:2010] += 5
    s = [Series("c", "n", t, {"turbidity_ntu": x})]
    th = baselines.fixed_threshold(s, None)
    rz = baselines.rolling_robust_z(s)
    for alerts in (th, rz):
        assert any(a.start <= t[2005] <= a.end for a in alerts)


def test_evaluate_prints_one_table_with_the_model_and_both_baselines(topology):
    creek = topology.creeks[0]
    rng = np.random.default_rng(3)
    t = T0 + np.arange(0, 2 * DAY, 60.0)
    series = inject.creek_series(creek, t, rng)
    tr = inject.discharge(creek, series, t, "ol-l3", T0 + 1.5 * DAY)
    stuck_at = T0 + 1.2 * DAY
    series["hl7-s1"]["turbidity_ntu"] = inject.stuck(t, series["hl7-s1"]["turbidity_ntu"], stuck_at, stuck_at + 6 * 3600)
    events = [Event("discharge", tr.start, tr.end, nodes=("hl3-s1", "hl3-s2", "hl4-s1"), outlet="ol-l3",
                    first_arrival=tr.start + 400),
              Event("sensor_stuck", stuck_at, stuck_at + 6 * 3600, node="hl7-s1")]
    ds = Dataset("sim:synthetic", [Series(creek.id, n, t, c) for n, c in series.items()], events,
                 topology=topology, kinds=("discharge", "sensor_stuck"), note="test")
    res = evaluate(ds)
    out = io.StringIO()
    print_table(res, out)
    text = out.getvalue()
    assert "event tolerance ±30 min" in text
    for method in ("| model |", "| threshold |", "| robust-z |"):
        assert text.count(method) == 3  # discharge, sensor_stuck, any
    by = {(r.kind, r.method): r for r in res["rows"]}
    assert by[("discharge", "model")].caught == 1 and by[("sensor_stuck", "model")].caught == 1
    assert by[("any", "model")].caught == 2
    assert res["extra"]["outlet_named"] == 1
    tg = {what: ok for what, _, ok in targets([res])}
    assert tg["sim discharge event F1 >= 0.9"] is True
    assert tg["sim right outlet named (first) for >= 80 % of discharges"] is True
    assert res["extra"]["outlet_named_top2"] == 1


def test_an_outlet_is_judged_on_the_alert_at_the_plume_not_on_an_earlier_one_elsewhere(topology):
    from rivermon.models.evaluate import _discharge_extra

    # an ol-l3 discharge is followed from hl3-s1; 19 min later ol-s10 opens above hl7-s1
    first = Event("discharge", T0, T0 + 2700, nodes=("hl3-s1", "hl3-s2", "hl4-s1"), outlet="ol-l3")
    second = Event("discharge", T0 + 1140, T0 + 3000, nodes=("hl7-s1",), outlet="ol-s10")
    at_hl3 = Alert("discharge", T0 + 500, T0 + 6000, T0 + 500, node="hl3-s1", segment="hl-3",
                   evidence={"outlets": ["ol-l3"]})
    at_hl7 = Alert("discharge", T0 + 1600, T0 + 5000, T0 + 1600, node="hl7-s1", segment="hl-7",
                   evidence={"outlets": ["ol-s10", "ol-s9"]})
    ds = Dataset("sim:two", [], [first, second], topology=topology, kinds=("discharge",))
    extra = _discharge_extra(ds, [at_hl3, at_hl7])
    # the hl3-s1 alert overlaps the second discharge in time but never sees its water
    assert extra["caught"] == 2 and extra["outlet_named"] == 2

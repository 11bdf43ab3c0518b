"""The simulated creek's physics, scenarios, truth and offline CSV (no broker needed)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rivermon.core.reading import validate_readings
from rivermon.sim.engine import Simulation
from rivermon.sim.physics import do_saturation
from rivermon.sim.scenario import ScenarioError, load_scenario, parse_scenario, scenario_names
from rivermon.sim.sun import sunrise_local_hours
from rivermon.sim.truth import TruthWriter

START = 1782835200.0  # 2026-07-01T00:00:00+08:00, local midnight
DAY = 86400.0
PHYSICAL = {"do_mg_l": (0.0, 20.0), "turbidity_ntu": (0.0, 1500.0), "temp_c": (10.0, 40.0),
            "battery_v": (3.0, 4.3), "rssi_dbm": (-120.0, -30.0), "power_w": (0.0, 3200.0)}


def _sim(creek, data: dict, seed: int = 7, interval: float = 60.0, duration: float = DAY,
         truth: TruthWriter | None = None) -> Simulation:
    scenario = parse_scenario({"season": "summer", **data}, creek)
    return Simulation(creek, scenario, seed=seed, start=START, interval_s=interval,
                      duration=duration, truth=truth)


def _collect(sim: Simulation, field: str = "do_mg_l") -> tuple[list, dict[str, np.ndarray], np.ndarray]:
    """All messages, and the true value of ``field`` at each sensor per step (and the times)."""
    msgs, true_do, times = [], [], []
    for batch in sim.run():
        msgs += batch
        true_do.append(sim.last_true[field].copy())
        times.append(sim.t)
    arr = np.array(true_do)
    return msgs, {n.id: arr[:, i] for i, n in enumerate(sim.sensors)}, np.array(times)


def test_do_saturation_matches_benson_krause():
    assert do_saturation(25.0) == pytest.approx(8.26, abs=0.02)
    assert do_saturation(30.0) == pytest.approx(7.56, abs=0.02)
    assert do_saturation(20.0) == pytest.approx(9.09, abs=0.02)


def test_a_month_stays_within_physical_and_contract_ranges(topology):
    creek = topology.creek("huanglong")
    scenario = load_scenario("month", creek)
    sim = Simulation(creek, scenario, seed=11, start=START, interval_s=600.0, duration=30 * DAY)
    readings = 0
    seen_fields: set[str] = set()
    for batch in sim.run():
        for m in batch:
            if m.channel != "telemetry":
                continue
            items = m.payload if isinstance(m.payload, list) else [m.payload]
            checked = validate_readings(creek.id, m.node, m.payload, now=START + 40 * DAY)
            assert not checked.rejections, (m.node, checked.rejections[:1])
            for r in items:
                readings += 1
                for name, value in r.items():
                    seen_fields.add(name)
                    if name in PHYSICAL:
                        lo, hi = PHYSICAL[name]
                        assert lo <= value <= hi, (m.node, name, value, r["ts"])
    assert readings >= 30 * 144 * len(creek.nodes) * 0.95
    assert {"do_mg_l", "turbidity_ntu", "temp_c", "battery_v", "aerator_on", "power_w"} <= seen_fields


def test_normal_days_swing_by_mg_per_l_with_the_minimum_at_first_light(topology):
    creek = topology.creek("huanglong")
    sim = _sim(creek, {}, duration=3 * DAY)
    _, true_do, times = _collect(sim)
    sunrise = sunrise_local_hours(200)  # the summer season borrows July's sun
    local_h = ((times / 3600.0) + 8) % 24
    day = ((times - START) // DAY).astype(int)
    swings = []
    for node, series in true_do.items():
        for d in range(3):
            m = day == d
            low, high = series[m].min(), series[m].max()
            swings.append(high - low)
            assert high - low >= 1.5, (node, d, low, high)
            assert 3.5 <= low and high <= 10.5, (node, d, low, high)
            t_min = local_h[m][np.argmin(series[m])]
            # The minimum comes at the end of the night, as the sun rises (not in the day).
            assert sunrise - 3.0 <= t_min <= sunrise + 1.0, (node, d, t_min, sunrise)
    assert np.mean(swings) >= 2.5


def test_discharge_lowers_do_downstream_only_and_later_further_down(topology):
    creek = topology.creek("huanglong")
    event = {"events": [{"kind": "discharge", "outlet": "ol-l2", "at": "14h", "duration": "90m"}]}
    truth = TruthWriter(None, creek.timezone, creek.id)
    _, with_event, times = _collect(_sim(creek, event, truth=truth))
    _, without, _ = _collect(_sim(creek, {}))
    rec = truth.records[0]
    assert rec["kind"] == "discharge" and rec["outlet"] == "ol-l2" and rec["segment"] == "hl-2"
    downstream = rec["params"]["nodes"]
    assert downstream[:3] == ["hl2-s1", "hl3-s1", "hl3-s2"]
    assert "hl1-s1" not in downstream and "hlb1-s1" not in downstream
    onsets = {}
    for node in with_event:
        diff = with_event[node] - without[node]
        if node in downstream:
            assert diff.min() < -1.0, (node, diff.min())
            onsets[node] = times[np.argmax(diff < -0.3)]
        else:
            assert np.abs(diff).max() < 0.1, (node, np.abs(diff).max())  # below probe accuracy
    order = [onsets[n] for n in downstream]
    assert order == sorted(order), onsets
    assert onsets["hl2-s1"] - (START + 14 * 3600) < 30 * 60  # the nearest node within half an hour
    # The truth's arrival times are when the turbidity excess first passes 1 NTU.
    _, turb_with, _ = _collect(_sim(creek, event), "turbidity_ntu")
    _, turb_without, _ = _collect(_sim(creek, {}), "turbidity_ntu")
    for node, arrival in rec["params"]["arrival_s"].items():
        seen = times[np.argmax(turb_with[node] - turb_without[node] > 1.0)] - rec["start_ts"]
        assert abs(seen - arrival) <= 180, (node, seen, arrival)


def test_aerator_obeys_commands_and_a_stopped_one_reports_on_without_power(topology):
    creek = topology.creek("huanglong")
    sim = _sim(creek, {"events": [{"kind": "aerator_failure", "node": "hl2-a1", "mode": "stopped",
                                   "at": "2h"}]}, duration=4 * 3600)

    def last(node: str) -> dict:
        for _ in range(3):
            batch = sim.step()
        return [m.payload for m in batch if m.node == node and m.channel == "telemetry"][-1]

    sim.command("hl3-a1", True, "test")
    r = last("hl3-a1")
    assert r["aerator_on"] is True and r["power_w"] > 1500
    sim.command("hl3-a1", False, "test")
    r = last("hl3-a1")
    assert r["aerator_on"] is False and r["power_w"] < 10
    sim.command("hl3-a1", None)  # back to the local timer: 00:03 is night, micro-pore runs
    assert last("hl3-a1")["aerator_on"] is True
    while sim.t < START + 2.5 * 3600:
        sim.step()
    sim.command("hl2-a1", True, "test")
    r = last("hl2-a1")
    assert r["aerator_on"] is True and r["power_w"] < 10


def test_scenario_errors_name_the_key(topology, tmp_path):
    creek = topology.creek("huanglong")
    with pytest.raises(ScenarioError, match=r"events\[0\].outlet: 'ol-x9' is not an outlet"):
        parse_scenario({"events": [{"kind": "discharge", "outlet": "ol-x9", "at": "1h",
                                    "duration": "1h"}]}, creek)
    with pytest.raises(ScenarioError, match=r"events\[0\].kind: 'flood' is not one of"):
        parse_scenario({"events": [{"kind": "flood", "at": "1h"}]}, creek)
    with pytest.raises(ScenarioError, match=r"events\[0\].node: 'hl1-a1' is an aerator"):
        parse_scenario({"events": [{"kind": "stuck", "node": "hl1-a1", "at": "1h",
                                    "duration": "1h"}]}, creek)
    with pytest.raises(ScenarioError, match=r"coefficients: unknown coefficient"):
        parse_scenario({"coefficients": {"warp_factor": 9}}, creek)
    bad = tmp_path / "bad.toml"
    bad.write_text("duration = [", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(str(bad), creek)
    with pytest.raises(ScenarioError, match="neither a file nor a shipped scenario"):
        load_scenario("no-such-scenario", creek)


def test_every_shipped_scenario_loads_and_runs(topology):
    creek = topology.creek("huanglong")
    names = scenario_names()
    for required in ("normal-week", "discharge-large-outlets", "rainstorm", "fouled-do-probe",
                     "stuck-turbidity", "aerator-failure", "node-dies", "radio-outage", "relapse"):
        assert required in names
    for name in names:
        sc = load_scenario(name, creek)
        sim = Simulation(creek, sc, seed=1, start=START, interval_s=600.0, duration=6 * 3600,
                         spinup_s=3600)
        assert sum(len(b) for b in sim.run()) > 0, name


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rivermon.cli", "sim", *args],
                          capture_output=True, text=True, timeout=120)


def test_csv_same_seed_identical_and_faults_visible_in_file_order(tmp_path: Path):
    outs = []
    for i, (seed, duration) in enumerate((("3", "1d8h"), ("3", "1d8h"), ("4", "6h"))):
        csv_path, truth = tmp_path / f"r{i}.csv", tmp_path / f"r{i}.jsonl"
        p = _run_cli("--scenario", "radio-outage", "--seed", seed, "--duration", duration,
                     "--start", "2026-07-01T00:00:00+08:00", "--csv", str(csv_path),
                     "--truth", str(truth))
        assert p.returncode == 0, p.stderr
        outs.append((csv_path.read_bytes(), truth.read_bytes()))
    assert outs[0] == outs[1]
    assert not outs[0][0].startswith(outs[2][0][:200_000])  # another seed, another run
    rows = list(csv.DictReader(outs[0][0].decode().splitlines()))
    assert list(rows[0])[:2] == ["time", "node"]
    truth = [json.loads(x) for x in outs[0][1].decode().splitlines()]
    backlog = [t for t in truth if t["kind"] == "net_backlog"]
    assert len(backlog) == 1 and backlog[0]["node"] == "hl6-s1"
    s, e = backlog[0]["start_ts"], backlog[0]["end_ts"]
    times = [float(r["time"]) for r in rows if r["node"] == "hl6-s1"]
    first_kept = next(i for i, r in enumerate(rows) if r["node"] == "hl6-s1" and s <= float(r["time"]) < e)
    assert max(float(r["time"]) for r in rows[:first_kept]) >= e - 120, \
        "the backlog must arrive when the link returns, after other nodes' later readings"
    kept = [t for t in times if s <= t < e]
    assert len(kept) == pytest.approx((e - s) / 60, abs=2)  # nothing lost, delivered late


def test_csv_refuses_bad_arguments_clearly(tmp_path: Path):
    p = _run_cli("--scenario", "normal-week", "--duration", "soon", "--csv", str(tmp_path / "x.csv"))
    assert p.returncode == 2 and "--duration: 'soon' is not a duration" in p.stderr
    p = _run_cli("--scenario", "nope", "--csv", str(tmp_path / "x.csv"))
    assert p.returncode == 2 and "neither a file nor a shipped scenario" in p.stderr


def test_every_coefficient_is_documented_with_its_default():
    from dataclasses import fields

    from rivermon.sim.physics import Coefficients

    doc = (Path(__file__).resolve().parent.parent / "docs" / "simulator.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
            for line in doc.splitlines() if line.startswith("| `")}
    for f in fields(Coefficients):
        assert f.name in rows, f"docs/simulator.md has no row for coefficient {f.name}"
        assert float(rows[f.name]) == pytest.approx(getattr(Coefficients(), f.name)), f.name


def test_copies_topology_loads_with_one_creek_per_copy(topology, tmp_path: Path):
    from rivermon.core.topology import load_topology
    from rivermon.sim.copies import write_copies_topology

    out = tmp_path / "copies.toml"
    write_copies_topology(topology, 3, out)
    t = load_topology(out)
    assert [c.id for c in t.creeks] == ["huanglong", "huanglong-2", "huanglong-3"]
    assert all(len(c.nodes) == len(topology.creeks[0].nodes) for c in t.creeks)


def test_a_branch_discharge_reaches_the_main_channel_only_below_the_confluence(topology):
    creek = topology.creek("huanglong")
    event = {"events": [{"kind": "discharge", "outlet": "ol-s12", "at": "2h", "duration": "2h",
                         "flow_m3_s": 0.02}]}
    truth = TruthWriter(None, creek.timezone, creek.id)
    _, with_event, _ = _collect(_sim(creek, event, truth=truth, duration=10 * 3600))
    _, without, _ = _collect(_sim(creek, {}, duration=10 * 3600))
    params = truth.records[0]["params"]
    assert params["downstream_nodes"] == ["hlb2-s1", "hl5-s1", "hl6-s1", "hl7-s1"]
    for node in with_event:
        drop = (without[node] - with_event[node]).max()
        if node in ("hlb2-s1", "hl5-s1"):
            assert drop > 0.5, (node, drop)
        elif node not in params["downstream_nodes"]:
            assert drop < 0.1, (node, drop)  # hl4-s1 sits just above the confluence

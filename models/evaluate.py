"""``rivermon eval``: one table per data set, the model beside two baselines, targets checked.

See :mod:`rivermon.models.scoring` for the conventions (tolerance, point-wise, delay, false
alerts); every table repeats the tolerance it used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rivermon.core.config import Config
from rivermon.core.progress import track
from rivermon.models import baselines, datasets
from rivermon.models.datasets import Dataset
from rivermon.models.replay import run
from rivermon.models.scoring import Alert, PointSet, Row, began_with, place_ok, score

METHODS = ("model", "threshold", "robust-z")
SIM_TARGETS = {"discharge": 0.9, "sensor_stuck": 0.9, "sensor_spike": 0.9, "node_offline": 0.9,
               "sensor_drift": 0.8, "aerator_fault": 0.8}


def model_alerts(ds: Dataset) -> list[Alert]:
    eps = run(ds.series, ds.topology, ds.params)
    return [Alert(e.kind, e.start, e.end if e.end is not None else e.last, e.detected,
                  e.node or None, e.segment or None, e.evidence) for e in eps]


def method_alerts(ds: Dataset) -> dict[str, list[Alert]]:
    ignore = tuple(ds.params.ignore_fields)
    tune = ds.eval_from
    out = {"model": model_alerts(ds),
           "threshold": baselines.fixed_threshold(ds.series, tune, ignore=ignore, seg_of=ds.seg_of),
           "robust-z": baselines.rolling_robust_z(ds.series, ignore=ignore, seg_of=ds.seg_of)}
    if ds.eval_from is not None:
        out = {k: [a for a in v if a.end >= ds.eval_from] for k, v in out.items()}
    return out


def evaluate(ds: Dataset) -> dict[str, Any]:
    """All rows of one data set, plus discharge outlet accuracy and arrival delays."""
    t0 = time.perf_counter()
    alerts = method_alerts(ds)
    elapsed = time.perf_counter() - t0
    points = PointSet({s.node: s.t for s in ds.series}, ds.labels, ds.eval_from)
    rows: list[Row] = []
    kinds = list(ds.kinds) + ([] if ds.kinds == ("anomaly",) else ["any"])
    for kind in kinds:
        for m in METHODS:
            generic = m != "model"
            rows.append(score(kind, m, ds.events, alerts[m], ds.tolerance_s, ds.node_days,
                              ds.seg_of, generic, points))
    extra = _discharge_extra(ds, alerts["model"])
    model_kinds: dict[str, int] = {}
    for a in alerts["model"]:
        model_kinds[a.kind] = model_kinds.get(a.kind, 0) + 1
    return {"dataset": ds, "rows": rows, "extra": extra, "seconds": elapsed,
            "readings": sum(int(s.t.size) for s in ds.series), "model_kinds": model_kinds}


def _discharge_extra(ds: Dataset, alerts: list[Alert]) -> dict[str, Any]:
    named = named2 = total = 0
    arrival_delays = []
    for ev in ds.events:
        if ev.kind != "discharge" or not ev.scored:
            continue
        # the same alerts the event score matched (time AND place): an earlier discharge's alert
        # at a node this plume never reaches says nothing about this one's outlet
        hits = [a for a in alerts if a.kind == "discharge" and a.start <= ev.end + ds.tolerance_s
                and a.end >= ev.start - ds.tolerance_s and place_ok(ev, a, ds.seg_of)]
        if not hits:
            continue
        total += 1
        first = min(began_with(ev, hits, ds.tolerance_s), key=lambda a: a.detected)
        outs = first.evidence.get("outlets") or [None]
        if ev.outlet and outs[0] == ev.outlet:
            named += 1
        if ev.outlet and ev.outlet in (outs[:2] if first.evidence.get("outlet_ambiguous") else outs[:1]):
            named2 += 1
        if ev.first_arrival is not None:
            arrival_delays.append(max(0.0, first.detected - ev.first_arrival))
    return {"caught": total, "outlet_named": named, "outlet_named_top2": named2,
            "arrival_delays": arrival_delays}


# ---- printing -------------------------------------------------------------------------------

def _f(x: float | None, nd: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _min(x: float | None) -> str:
    return "-" if x is None else f"{x / 60:.1f}"


def print_table(res: dict[str, Any], out=sys.stdout) -> None:
    ds: Dataset = res["dataset"]
    print(f"\n### {ds.name}  ({res['readings']:,} readings, {len(ds.series)} nodes, "
          f"{ds.node_days:.1f} node-days; event tolerance ±{ds.tolerance_s / 60:.0f} min; "
          f"{ds.note}; {res['seconds']:.1f} s)", file=out)
    print("| kind | method | events | caught | alerts | P | R | F1 | point F1 | delay med (min) | "
          "delay p90 (min) | false/node-day |", file=out)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", file=out)
    for r in res["rows"]:
        print(f"| {r.kind} | {r.method} | {r.events} | {r.caught} | {r.alerts} | {_f(r.precision)} | "
              f"{_f(r.recall)} | {_f(r.f1)} | {_f(r.point_f1)} | {_min(r.delay_median)} | "
              f"{_min(r.delay_p90)} | {_f(r.false_per_node_day, 3)} |", file=out)
    ex = res["extra"]
    if ex["caught"]:
        ad = sorted(ex["arrival_delays"])
        med = ad[len(ad) // 2] if ad else None
        print(f"discharge: right outlet named first for {ex['outlet_named']}/{ex['caught']} caught, "
              f"first or one of two (ambiguous) for {ex.get('outlet_named_top2', 0)}/{ex['caught']}; "
              f"median delay from first arrival at a sensor {_min(med)} min", file=out)
    print("model alert kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(res["model_kinds"].items())),
          file=out)


def _agg(results: list[dict[str, Any]], kind: str, method: str) -> Row:
    rows = [r for res in results for r in res["rows"] if r.kind == kind and r.method == method]
    out = Row(kind, method, 0, 0, 0, 0, None, [], 0, 0.0)
    for r in rows:
        out.events += r.events
        out.caught += r.caught
        out.alerts += r.alerts
        out.true_alerts += r.true_alerts
        out.delays += r.delays
        out.false_alerts += r.false_alerts
        out.node_days += r.node_days
    return out


def targets(results: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """Every target of the issue with its figure and PASS/FAIL (None: not measurable here)."""
    out: list[tuple[str, str, bool | None]] = []
    sims = [r for r in results if r["dataset"].name.startswith("sim:")]
    if sims:
        for kind, goal in SIM_TARGETS.items():
            row = _agg(sims, kind, "model")
            if row.events == 0:
                out.append((f"sim {kind} event F1 >= {goal}", "no such events in the scenarios run", None))
                continue
            f1 = row.f1 or 0.0
            out.append((f"sim {kind} event F1 >= {goal}", f"{f1:.2f} ({row.caught}/{row.events} caught, "
                        f"{row.true_alerts}/{row.alerts} alerts true)", f1 >= goal))
        named = sum(r["extra"]["outlet_named"] for r in sims)
        caught = sum(r["extra"]["caught"] for r in sims)
        events = _agg(sims, "discharge", "model").events
        if events:
            share = named / events
            out.append(("sim right outlet named (first) for >= 80 % of discharges",
                        f"{named}/{events} = {share:.0%}", share >= 0.8))
            named2 = sum(r["extra"].get("outlet_named_top2", 0) for r in sims)
            out.append(("sim right outlet named (first, or one of the two an alert names when it says "
                        "two same-size outlets on one reach cannot be told apart) for >= 80 %",
                        f"{named2}/{events} = {named2 / events:.0%}", named2 / events >= 0.8))
        ad = sorted(d for r in sims for d in r["extra"]["arrival_delays"])
        if ad:
            med = ad[len(ad) // 2]
            out.append(("sim discharge median delay <= 10 min (from first arrival at a sensor)",
                        f"{med / 60:.1f} min (from outlet opening: "
                        f"{_f((_agg(sims, 'discharge', 'model').delay_median or 0) / 60, 1)} min)",
                        med <= 600))
        nw = [r for r in sims if r["dataset"].name == "sim:normal-week"]
        if nw:
            row = _agg(nw, "any", "model")
            rate = (sum(1 for _ in range(row.false_alerts)) / row.node_days) if row.node_days else 0.0
            out.append(("sim normal week <= 0.05 false alerts per node-day",
                        f"{rate:.3f} ({row.false_alerts} alerts over {row.node_days:.0f} node-days)",
                        rate <= 0.05))
    for res in results:
        ds = res["dataset"]
        if ds.name.startswith("sim:"):
            continue
        kind = "anomaly" if ds.kinds == ("anomaly",) else "any"
        by = {r.method: r for r in res["rows"] if r.kind == kind}
        m, th, rz = by["model"], by["threshold"], by["robust-z"]
        ok = (m.f1 or 0) > (th.f1 or 0) and (m.f1 or 0) > (rz.f1 or 0)
        out.append((f"{ds.name}: model beats both baselines (event F1)",
                    f"{_f(m.f1)} vs threshold {_f(th.f1)}, robust-z {_f(rz.f1)}", ok))
        okp = (m.point_f1 or 0) > (th.point_f1 or 0) and (m.point_f1 or 0) > (rz.point_f1 or 0)
        out.append((f"{ds.name}: model beats both baselines (point F1)",
                    f"{_f(m.point_f1)} vs threshold {_f(th.point_f1)}, robust-z {_f(rz.point_f1)}", okp))
        if ds.name.startswith("gecco"):
            out.append(("gecco2018 second half point-wise F1 >= 0.7", _f(m.point_f1), (m.point_f1 or 0) >= 0.7))
    return out


def _plain(o: Any) -> Any:
    """numpy scalars as plain JSON values."""
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def load(names: list[str], args: argparse.Namespace) -> list[Dataset]:
    data = Path(args.data_dir) if args.data_dir else datasets.shared_data_dir()
    out: list[Dataset] = []
    for name in names:
        if name == "sim":
            scen = datasets.scenario_names()
            if args.quick:
                scen = [s for s in scen if s in ("normal-week", "discharge-large-outlets", "stuck-turbidity")]
            else:
                scen = [s for s in scen if s != "demo"]
            wd = datasets.sim_workdir()
            for s in scen:
                print(f"running simulator scenario {s} ...", file=sys.stderr)
                out.append(datasets.simulator(s, args.seed, wd))
        elif name == "leigh":
            out += [datasets.leigh(data, "sandy"), datasets.leigh(data, "pioneer")]
        elif name == "gecco":
            out.append(datasets.gecco(data))
        elif name == "neon":
            out.append(datasets.neon(data, args.seed))
        else:
            raise ValueError(f"unknown data set {name!r}: use sim, leigh, gecco, neon or all")
    return out


def main(args: argparse.Namespace, cfg: Config) -> int:
    names = ["sim", "leigh", "gecco", "neon"] if args.datasets == "all" else \
        [n.strip() for n in args.datasets.split(",") if n.strip()]
    results = []
    print(f"# rivermon eval (seed {args.seed})")
    loaded = load(names, args)
    # a bar on a terminal, plain progress lines on stderr otherwise (the tables go to stdout)
    for ds in track(loaded, total=len(loaded), desc="eval", unit="data sets"):
        res = evaluate(ds)
        print_table(res)
        results.append(res)
        sys.stdout.flush()
    tg = targets(results)
    print("\n## Targets")
    for what, fig, ok in tg:
        print(f"- {'PASS' if ok else ('FAIL' if ok is False else 'n/a ')}  {what}: {fig}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"targets": [{"target": w, "figure": f, "pass": o} for w, f, o in tg],
             "tables": [{"dataset": r["dataset"].name, "rows": [
                 {"kind": x.kind, "method": x.method, "events": x.events, "caught": x.caught,
                  "alerts": x.alerts, "precision": x.precision, "recall": x.recall, "f1": x.f1,
                  "point_f1": x.point_f1, "delay_median_s": x.delay_median, "delay_p90_s": x.delay_p90,
                  "false_per_node_day": x.false_per_node_day} for x in r["rows"]]} for r in results]},
            indent=1, default=_plain))
    return 0

"""Operations commands for the river-chief office: ``report``, ``workorders``, ``backfill``.

The logic lives in ``rivermon.core`` (:mod:`~rivermon.core.compliance`,
:mod:`~rivermon.core.report`, :mod:`~rivermon.core.workorders`,
:mod:`~rivermon.core.backfill`) so the panel serves the same figures; this module parses
flags, opens InfluxDB and the alert store, shows progress on stderr and writes the output.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from rivermon.core.config import Config

CSV_ENCODING = "utf-8-sig"  # a BOM, so a spreadsheet opens the Chinese text correctly


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="monthly compliance report per segment (CSV or HTML)",
                       description="Hours in each GB 3838-2002 DO class, black-odorous DO hours, data "
                                   "completeness, alerts by kind and handling times, per segment, "
                                   "for one local month of the creek's time zone.")
    p.add_argument("--month", required=True, help="the month, YYYY-MM (local time of the creek)")
    p.add_argument("--segment", help="only this segment (default: every segment)")
    p.add_argument("--format", choices=("csv", "html", "json"),
                   help="default: from --out's suffix, else csv")
    p.add_argument("--out", help="output file (default: standard output)")
    _creek_flag(p)
    p.add_argument("--gap-limit-min", type=float, default=30.0,
                   help="a gap between readings longer than this counts as missing [default: 30]")
    p.add_argument("--alerts-db", help="alert store (default: VAR/alerts.sqlite)")
    p.set_defaults(func=run_report)

    w = sub.add_parser("workorders", parents=[common], help="alerts as work orders for the patrol (CSV or JSON)",
                       description="One row per alert that started in [--start, --end): location by "
                                   "segment and chainage, time, kind, evidence, handler, notes, result.")
    w.add_argument("--start", help="from this time: YYYY-MM-DD (local), RFC 3339 or Unix seconds")
    w.add_argument("--end", help="until this time (exclusive), same forms")
    w.add_argument("--segment", help="only this segment")
    w.add_argument("--kind", help="only this alert kind")
    w.add_argument("--state", choices=("open", "acknowledged", "resolved"), help="only this state")
    w.add_argument("--format", choices=("csv", "json"), help="default: from --out's suffix, else csv")
    w.add_argument("--out", help="output file (default: standard output)")
    _creek_flag(w)
    w.add_argument("--alerts-db", help="alert store (default: VAR/alerts.sqlite)")
    w.set_defaults(func=run_workorders)

    b = sub.add_parser("backfill", parents=[common], help="load historical readings from a replay CSV",
                       description="Load readings in the replay CSV format (time,node,<measurements>) "
                                   "into InfluxDB through the live validation and point layout; "
                                   "idempotent. Refused rows and fields go to a rejects CSV.")
    b.add_argument("file", metavar="FILE.csv", help="the CSV to load")
    _creek_flag(b)
    b.add_argument("--rejects", help="where to write refused rows (default: FILE.rejects.csv)")
    b.add_argument("--batch", type=int, default=5000, help="lines per InfluxDB write [default: 5000]")
    b.set_defaults(func=run_backfill)


def _creek_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--creek", help="creek id (default: the topology's first creek)")


# ---- shared plumbing ---------------------------------------------------------------------------

def _creek(cfg: Config, creek_id: str | None) -> tuple[Any, Any]:
    from rivermon.core.topology import load_topology

    topology = load_topology(cfg.topology or None)
    creek = topology.creek(creek_id) if creek_id else topology.creeks[0]
    if creek is None:
        raise ValueError(f"creek {creek_id!r} is not in the topology "
                         f"(known: {', '.join(c.id for c in topology.creeks)})")
    return topology, creek


def _format(explicit: str | None, out: str | None, choices: tuple[str, ...]) -> str:
    if explicit:
        return explicit
    suffix = Path(out).suffix.lower().lstrip(".") if out else ""
    if suffix == "htm":
        suffix = "html"
    return suffix if suffix in choices else choices[0]


def _emit(text: str, out: str | None, encoding: str = "utf-8") -> None:
    if out:
        Path(out).write_text(text, encoding=encoding, newline="")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _alert_store(cfg: Config, path: str | None, tz: str) -> Any:
    """The alert store, or None when there is none (never creates an empty one)."""
    from rivermon.core.alerts import AlertStore

    db = Path(path) if path else cfg.var_path / "alerts.sqlite"
    if not db.exists():
        if path:
            raise ValueError(f"alert store {db} does not exist")
        print(f"note: no alert store at {db}; alert figures are zero "
              f"(pass --alerts-db or --var)", file=sys.stderr)
        return None
    return AlertStore(db, tz=tz)


def _influx_errors(func: Callable[[argparse.Namespace, Config], int]) -> Callable[[argparse.Namespace, Config], int]:
    """InfluxDB failures end the command with a sentence and status 1, not a traceback."""
    @functools.wraps(func)
    def run(args: argparse.Namespace, cfg: Config) -> int:
        from rivermon.core.influx import InfluxError

        try:
            return func(args, cfg)
        except InfluxError as exc:
            print(f"rivermon {args.command}: {exc}", file=sys.stderr)
            return 1
    return run


def parse_when(text: str, tz: str) -> float:
    """``YYYY-MM-DD`` (local midnight), RFC 3339 (local when without offset) or Unix seconds."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"time {text!r} is not YYYY-MM-DD, RFC 3339 or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return dt.timestamp()


# ---- report --------------------------------------------------------------------------------

@_influx_errors
def run_report(args: argparse.Namespace, cfg: Config) -> int:
    """``rivermon report --month YYYY-MM``."""
    from rivermon.core.influx import InfluxClient
    from rivermon.core.progress import progress
    from rivermon.core.report import month_period, month_report

    fmt = _format(args.format, args.out, ("csv", "html", "json"))
    if args.gap_limit_min <= 0:
        raise ValueError(f"--gap-limit-min must be positive, got {args.gap_limit_min:g}")
    _, creek = _creek(cfg, args.creek)
    month_period(args.month, creek.timezone)  # refuse a bad or future month before any work
    if args.segment is not None and args.segment not in {s.id for s in creek.segments}:
        raise ValueError(f"segment {args.segment!r} is not in creek {creek.id!r} "
                         f"(known: {', '.join(s.id for s in creek.segments)})")
    total = sum(len(creek.nodes_in(s.id)) for s in creek.segments if args.segment in (None, s.id))
    store = _alert_store(cfg, args.alerts_db, creek.timezone)
    client = InfluxClient(cfg.influx, cfg.influx_db)
    try:
        with progress(total=total, desc=f"report {args.month}", unit="nodes") as bar:
            report = month_report(client, creek, args.month, store, segment=args.segment,
                                  gap_limit_s=args.gap_limit_min * 60, on_node=lambda _n: bar.update(1))
    finally:
        client.close()
        if store is not None:
            store.close()
    if fmt == "csv":
        _emit(report.csv(), args.out, CSV_ENCODING if args.out else "utf-8")
    elif fmt == "json":
        _emit(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n", args.out)
    else:
        _emit(report.html(), args.out)
    return 0


# ---- work orders ------------------------------------------------------------------------------

def run_workorders(args: argparse.Namespace, cfg: Config) -> int:
    """``rivermon workorders [--start] [--end]``."""
    from rivermon.core.alerts import format_time
    from rivermon.core.progress import track
    from rivermon.core.workorders import workorder_row, workorders_csv, workorders_json

    fmt = _format(args.format, args.out, ("csv", "json"))
    _, creek = _creek(cfg, args.creek)
    tz = creek.timezone
    since = parse_when(args.start, tz) if args.start else None
    until = parse_when(args.end, tz) if args.end else None
    if since is not None and until is not None and until <= since:
        raise ValueError(f"--end ({args.end}) must be after --start ({args.start})")
    store = _alert_store(cfg, args.alerts_db, tz)
    alerts = []
    if store is not None:
        try:
            alerts = store.list(state=args.state, segment=args.segment, kind=args.kind,
                                since=since, until=until, creek=creek.id)
        finally:
            store.close()
    alerts.sort(key=lambda a: (a.start, a.id))
    rows = [workorder_row(a, creek, tz) for a in track(alerts, desc="workorders", unit="alerts")]
    if fmt == "csv":
        _emit(workorders_csv(rows), args.out, CSV_ENCODING if args.out else "utf-8")
    else:
        meta = {"creek": creek.id, "creek_name": creek.name.as_dict(),
                "start": format_time(since, tz), "end": format_time(until, tz)}
        _emit(workorders_json(rows, meta) + "\n", args.out)
    return 0


# ---- backfill --------------------------------------------------------------------------------

@_influx_errors
def run_backfill(args: argparse.Namespace, cfg: Config) -> int:
    """``rivermon backfill FILE.csv``: validate, write idempotently, report refusals."""
    from rivermon.core.backfill import RejectsWriter, backfill, count_data_lines
    from rivermon.core.influx import InfluxClient
    from rivermon.core.progress import progress

    path = Path(args.file)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    topology, creek = _creek(cfg, args.creek)
    rejects = Path(args.rejects) if args.rejects else path.with_name(path.stem + ".rejects.csv")
    client = InfluxClient(cfg.influx, cfg.influx_db)
    try:
        with RejectsWriter(rejects) as writer, \
                progress(total=count_data_lines(path), desc=f"backfill {path.name}", unit="rows") as bar:
            result = backfill(client, topology, creek.id, path, batch_lines=args.batch,
                              on_rows=bar.update, on_reject=writer)
    finally:
        client.close()
    print(f"backfill {path}: {result.rows} rows read, {result.written} readings stored in "
          f"{cfg.influx_db} (creek {creek.id}), {result.rows_refused} rows refused, "
          f"{result.refusals} refusals in all", file=sys.stderr)
    if result.refusals:
        for reason, n in sorted(result.by_reason.items()):
            print(f"  {reason}: {n}", file=sys.stderr)
        for r in sorted(result.examples.values(), key=lambda r: (r.line, r.field)):
            where = f"line {r.line}" + (f", field {r.field}" if r.field else "")
            print(f"  e.g. {where}: {r.detail}", file=sys.stderr)
    print(f"refused rows and fields: {rejects}", file=sys.stderr)
    return 0


# ---- benchmark --------------------------------------------------------------------------------

# Limits for a month of 1-minute readings from every node of the shipped creek (864,000 rows)
# on the 2-core development machine: an office must be able to load a year in minutes and print
# a month's report while it waits.
BENCH_BACKFILL_MIN_ROWS_S = 15_000.0
BENCH_REPORT_MAX_S = 30.0


def register_bench(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ops", parents=[common],
                       help="backfill rows/s and monthly report time on a simulated month")
    p.add_argument("--days", type=int, default=30, help="days of readings (November 2026 onwards)")
    p.add_argument("--interval-s", type=int, default=60, help="sampling interval of every node")
    p.add_argument("--keep", action="store_true", help="keep the benchmark database and CSV")
    p.set_defaults(func=run_bench)


def _bench_csv(path: Path, creek: Any, days: int, interval_s: int, start_s: int) -> int:
    """Readings of every node of the creek, a diurnal DO cycle, as a replay CSV."""
    import math

    rows = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,node,seq,do_mg_l,turbidity_ntu,temp_c,aerator_on,power_w\n")
        for k in range(days * 86400 // interval_s):
            ts = start_s + k * interval_s
            phase = math.sin(2 * math.pi * ((ts + 8 * 3600) % 86400) / 86400 - math.pi / 2)
            for i, n in enumerate(creek.nodes):
                if n.kind == "sensor":
                    do = max(0.05, 5.0 + 3.0 * phase - 0.4 * i)
                    f.write(f"{ts},{n.id},{k},{do:.2f},{10 + i},{27.5},,\n")
                else:
                    f.write(f"{ts},{n.id},{k},,,,{'true' if phase < 0 else 'false'},{n.rated_w if phase < 0 else 0}\n")
                rows += 1
    return rows


def run_bench(args: argparse.Namespace, cfg: Config) -> int:
    """Print backfill throughput and report time against their limits."""
    import tempfile
    import time

    from rivermon.core.backfill import backfill
    from rivermon.core.compliance import segment_compliance
    from rivermon.core.influx import InfluxClient

    topology, creek = _creek(cfg, None)
    start_s = 1793462400  # 2026-11-01T00:00:00+08:00
    client = InfluxClient(cfg.influx, f"{cfg.influx_db}_bench_ops", timeout=120)
    tmp = Path(tempfile.mkdtemp(prefix="rivermon-bench-ops-"))
    try:
        csv_path = tmp / "month.csv"
        rows = _bench_csv(csv_path, creek, args.days, args.interval_s, start_s)
        t0 = time.perf_counter()
        result = backfill(client, topology, creek.id, csv_path, now=start_s + 400 * 86400)
        t_backfill = time.perf_counter() - t0
        t0 = time.perf_counter()
        segment_compliance(client, creek, start_s * 1000, (start_s + args.days * 86400) * 1000)
        t_report = time.perf_counter() - t0
    finally:
        if not args.keep:
            client.drop_database()
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
        client.close()
    rate = result.written / t_backfill
    ok_b, ok_r = rate >= BENCH_BACKFILL_MIN_ROWS_S, t_report <= BENCH_REPORT_MAX_S
    print(f"backfill: {rows} rows, {result.written} stored, {result.refusals} refused, "
          f"{t_backfill:.1f} s = {rate:,.0f} rows/s (limit >= {BENCH_BACKFILL_MIN_ROWS_S:,.0f}) "
          f"{'OK' if ok_b else 'SLOW'}")
    print(f"report: {len(creek.nodes)} nodes, {args.days} days at {args.interval_s} s: {t_report:.1f} s "
          f"(limit <= {BENCH_REPORT_MAX_S:.0f} s) {'OK' if ok_r else 'SLOW'}")
    return 0 if ok_b and ok_r else 1

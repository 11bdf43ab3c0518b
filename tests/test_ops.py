"""`rivermon report`, `workorders`, `backfill` and progress output, on the real InfluxDB."""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rivermon import ops
from rivermon.cli import common_parser, config_from_args
from rivermon.core.alerts import AlertStore
from rivermon.core.points import telemetry_line
from rivermon.core.progress import Progress, track
from rivermon.core.reading import Reading
from rivermon.core.report import REPORT_COLUMNS
from rivermon.core.workorders import WORKORDER_COLUMNS

MONTH_START = 1790784000  # 2026-10-01T00:00:00+08:00 (a month wholly in the past)
MONTH_DAYS = 31
DAY = 86400
STEP = 600  # 10-minute sampling
PER_NODE = MONTH_DAYS * DAY // STEP  # 4464 readings a node


def run(argv: list[str], influx, tmp_path: Path) -> int:
    """Parse and run one ops subcommand in-process, against the test's database."""
    parser = argparse.ArgumentParser(prog="rivermon")
    sub = parser.add_subparsers(dest="command", required=True)
    ops.register(sub, common_parser())
    args = parser.parse_args([*argv, "--influx", influx.url, "--influx-db", influx.database,
                              "--var", str(tmp_path / "var")])
    return args.func(args, config_from_args(args))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# ---- a small simulated month ----------------------------------------------------------------

def _simulated_month(influx, topology) -> None:
    """hl-1: one sensor at 8.0. hl-3: s1 at 6.5 with 6 h at 1.0 on day 10; s2 at 7.0 with day 20
    missing; aerator a1 reporting, aerator a2 silent. Other segments silent."""
    lines = []
    for k in range(MONTH_DAYS * DAY // STEP):
        ts = MONTH_START + k * STEP
        day, sec = divmod(k * STEP, DAY)
        s1 = 1.0 if day == 9 and sec < 6 * 3600 else 6.5
        lines.append(telemetry_line(Reading("huanglong", "hl1-s1", ts * 1000, {"do_mg_l": 8.0}, k), topology))
        lines.append(telemetry_line(Reading("huanglong", "hl3-s1", ts * 1000,
                                            {"do_mg_l": s1, "turbidity_ntu": 12.0}), topology))
        if day != 19:
            lines.append(telemetry_line(Reading("huanglong", "hl3-s2", ts * 1000, {"do_mg_l": 7.0}), topology))
        lines.append(telemetry_line(Reading("huanglong", "hl3-a1", ts * 1000,
                                            {"aerator_on": True, "power_w": 2100.0}), topology))
    # Just outside the month: must not count.
    lines.append(telemetry_line(Reading("huanglong", "hl3-s1", (MONTH_START - 3600) * 1000, {"do_mg_l": 0.1}), topology))
    for i in range(0, len(lines), 5000):
        influx.write_lines(lines[i:i + 5000])


def _alerts(var: Path) -> None:
    t = MONTH_START + 9 * DAY
    with AlertStore(var / "alerts.sqlite") as store:
        a, _ = store.open_or_update("huanglong", "hl-3", "hl3-s1", "discharge", "critical", t,
                                    {"zh": "疑似排污：溶解氧骤降", "en": "Suspected discharge"},
                                    {"outlets": ["ol-l3"], "sentence": {"zh": "溶解氧 1.0 mg/L，下游先降",
                                                                        "en": "DO 1.0 mg/L"}})
        store.acknowledge(a.id, "cleaner-li", at=t + 600)
        store.add_note(a.id, "cleaner-li", "发现油膜，已通知执法", at=t + 900)
        store.resolve(a.id, "cleaner-li", at=t + 3600)
        b, _ = store.open_or_update("huanglong", "hl-1", "hl1-s1", "sensor_stuck", "warning", t + 100,
                                    {"zh": "传感器卡值", "en": "Sensor stuck"})
        store.resolve(b.id, "auto", at=t + 1900)
        store.open_or_update("huanglong", "", None, "rain", "info", t + 200, {"zh": "降雨", "en": "Rain"})
        store.open_or_update("huanglong", "hl-3", "hl3-s2", "low_do", "warning", MONTH_START + 20 * DAY,
                             {"zh": "溶解氧偏低", "en": "Low DO"})
        store.open_or_update("huanglong", "hl-3", "hl3-s1", "low_do", "warning", MONTH_START + 32 * DAY,
                             {"zh": "十二月", "en": "December"})


@pytest.fixture
def month(influx, topology, tmp_path):
    _simulated_month(influx, topology)
    _alerts(tmp_path / "var")
    return influx


def test_report_csv_for_a_simulated_month(month, tmp_path, capsys):
    out = tmp_path / "report.csv"
    assert run(["report", "--month", "2026-10", "--out", str(out)], month, tmp_path) == 0
    rows = _csv(out)
    assert tuple(rows[0]) == REPORT_COLUMNS
    by = {r["segment"]: r for r in rows}
    hl1, hl3 = by["hl-1"], by["hl-3"]
    assert hl1["period_start"] == "2026-10-01T00:00:00+08:00" and hl1["period_h"] == "744.0"
    assert float(hl1["hours_I"]) == 744.0 and float(hl1["hours_missing"]) == 0.0
    assert float(hl3["hours_II"]) == 738.0 and float(hl3["hours_below_V"]) == 6.0
    assert float(hl3["hours_black_light"]) == 6.0 and float(hl3["hours_black_severe"]) == 0.0
    assert float(hl3["do_min_mg_l"]) == 1.0
    assert int(hl3["readings_expected"]) == 4 * PER_NODE
    assert int(hl3["readings_received"]) == PER_NODE + (PER_NODE - 144) + PER_NODE
    assert float(hl3["completeness_pct"]) == round(100 * (PER_NODE + (PER_NODE - 144) + PER_NODE) / (4 * PER_NODE), 1)
    assert (hl3["alerts_total"], hl3["alerts_by_kind"]) == ("2", "discharge=1;low_do=1")
    assert (hl3["ack_median_min"], hl3["resolve_median_min"], hl3["alerts_unresolved"]) == ("10.0", "60.0", "1")
    assert (hl1["alerts_equipment"], hl1["alerts_auto_resolved"]) == ("1", "1")
    assert by[""]["alerts_by_kind"] == "rain=1"
    assert float(by["hl-5"]["hours_missing"]) == 744.0 and by["hl-5"]["completeness_pct"] == "0.0"
    assert "report 2026-10: " in capsys.readouterr().err  # plain progress, not a tty


def test_report_html_is_printable_chinese_with_the_figures(month, tmp_path):
    out = tmp_path / "report.html"
    assert run(["report", "--month", "2026-10", "--out", str(out)], month, tmp_path) == 0
    html = out.read_text(encoding="utf-8")
    for text in ("华龙涌水质达标月报（2026年10月）", "溶解氧水质类别时长", "黑臭（溶解氧）时长",
                 "数据完整率", "告警与处置", "劣V类", "肉菜市场对出河段", "疑似排污", "738.0",
                 "2026-10-01 00:00 至 2026-11-01 00:00", "@page", "A4", "lang=\"zh-CN\""):
        assert text in html, text
    lowered = html.lower()
    assert "<script" not in lowered and "http://" not in lowered and "https://" not in lowered
    assert "<link" not in lowered and "<img" not in lowered


def test_report_of_the_current_month_ends_now_and_a_future_month_is_refused(influx, tmp_path):
    out = tmp_path / "now.csv"
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    before = time.time()
    assert run(["report", "--month", now.strftime("%Y-%m"), "--out", str(out)], influx, tmp_path) == 0
    [row] = [r for r in _csv(out) if r["segment"] == "hl-1"]
    end = datetime.fromisoformat(row["period_end"]).timestamp()
    assert before - 1 <= end <= time.time()
    nxt = (now.replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
    with pytest.raises(ValueError, match="has not started"):
        run(["report", "--month", nxt], influx, tmp_path)


def test_report_one_segment_and_bad_month(month, tmp_path, capsys):
    out = tmp_path / "hl3.csv"
    assert run(["report", "--month", "2026-10", "--segment", "hl-3", "--out", str(out)], month, tmp_path) == 0
    assert [r["segment"] for r in _csv(out)] == ["hl-3"]
    js = tmp_path / "hl3.json"
    assert run(["report", "--month", "2026-10", "--segment", "hl-3", "--out", str(js)], month, tmp_path) == 0
    doc = json.loads(js.read_text(encoding="utf-8"))
    [seg] = doc["segments"]
    assert seg["do"]["classes_h"]["II"] == 738.0 and seg["do"]["black_light_h"] == 6.0
    assert [n["node"] for n in seg["nodes"]] == ["hl3-s1", "hl3-s2", "hl3-a1", "hl3-a2"]
    with pytest.raises(ValueError, match="must look like 2026-11"):
        run(["report", "--month", "11/2026"], month, tmp_path)
    with pytest.raises(ValueError, match="segment 'hl-9' is not in creek"):
        run(["report", "--month", "2026-10", "--segment", "hl-9"], month, tmp_path)


# ---- work orders -------------------------------------------------------------------------------

def test_workorders_csv_and_json(month, tmp_path):
    out = tmp_path / "wo.csv"
    assert run(["workorders", "--start", "2026-10-01", "--end", "2026-11-01", "--out", str(out)],
               month, tmp_path) == 0
    rows = _csv(out)
    assert tuple(rows[0]) == WORKORDER_COLUMNS
    assert [r["kind"] for r in rows] == ["discharge", "sensor_stuck", "rain", "low_do"]
    d = rows[0]
    assert (d["segment_zh"], d["segment_en"]) == ("肉菜市场对出河段", "Market reach")
    assert (d["located_by"], d["outlet"], d["chainage_m"], d["bank"]) == ("outlet", "ol-l3", "215.0", "north")
    assert d["node_chainage_m"] == "235.0"
    assert d["location_zh"] == "肉菜市场对出河段（华龙涌主涌 215 米处，北岸排污口 ol-l3）"
    assert (d["kind_zh"], d["severity_zh"]) == ("疑似排污", "严重")
    assert d["evidence_zh"] == "溶解氧 1.0 mg/L，下游先降"
    assert (d["acknowledged_by"], d["resolved_by"], d["state_zh"]) == ("cleaner-li", "cleaner-li", "已解决")
    assert "发现油膜，已通知执法" in d["notes"] and d["handlers"] == "cleaner-li"
    assert (d["minutes_to_acknowledge"], d["minutes_to_resolve"]) == ("10.0", "60.0")
    assert d["start"] == "2026-10-10T00:00:00+08:00"
    s = rows[1]
    assert (s["located_by"], s["chainage_m"], s["result_zh"][:6]) == ("node", "80.0", "已解决（系统")
    assert rows[2]["location_zh"] == "华龙涌全涌" and rows[3]["state_zh"] == "待处理"

    js = tmp_path / "wo.json"
    assert run(["workorders", "--start", "2026-10-01", "--end", "2026-11-01", "--segment", "hl-3",
                "--out", str(js)], month, tmp_path) == 0
    doc = json.loads(js.read_text(encoding="utf-8"))
    assert doc["count"] == 2 and doc["start"] == "2026-10-01T00:00:00+08:00"
    first = doc["workorders"][0]
    assert list(first) == list(WORKORDER_COLUMNS)
    assert first["notes"][0]["by"] == "cleaner-li" and first["evidence_json"]["outlets"] == ["ol-l3"]
    assert first["chainage_m"] == 215.0


def test_workorders_without_an_alert_store_say_so(influx, tmp_path, capsys):
    out = tmp_path / "none.json"
    assert run(["workorders", "--out", str(out)], influx, tmp_path) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["count"] == 0
    assert "no alert store at" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not exist"):
        run(["workorders", "--alerts-db", str(tmp_path / "nope.sqlite")], influx, tmp_path)


def test_month_report_api_for_the_panel(month, topology, tmp_path):
    from rivermon.core.report import month_report

    creek = topology.creek("huanglong")
    mid = (MONTH_START + 15 * DAY) * 1000
    with AlertStore(tmp_path / "var" / "alerts.sqlite") as store:
        rep = month_report(month, creek, "2026-10", store, segment="hl-1", now_ms=mid)
    [seg] = rep.segments
    assert seg.end_ms == mid and seg.do.period_h == 15 * 24 and seg.do.classes["I"] == 15 * 24
    assert rep.label == "2026年10月" and rep.creek_wide is None
    assert rep.csv().splitlines()[1].split(",")[3] == "hl-1"
    assert "2026-10-01 00:00 至 2026-10-16 00:00" in rep.html()


def test_workorders_refuse_reversed_period(influx, tmp_path):
    with pytest.raises(ValueError, match="must be after --start"):
        run(["workorders", "--start", "2026-11-02", "--end", "2026-11-01"], influx, tmp_path)


# ---- backfill ----------------------------------------------------------------------------------

BACKFILL_CSV = """time,node,seq,do_mg_l,turbidity_ntu,aerator_on
2026-11-02T00:00:00+08:00,hl1-s1,1,6.5,12.5,
2026-11-02T00:10:00+08:00,hl1-s1,2,6.4,,
1793550000,hl1-s1,3,6.3,11,
2026-11-02T00:30:00+08:00,zz-unknown,,5.0,10,
2026-11-02T00:40:00+08:00,hl1-s1,4,99,13,
2026-11-02T00:50:00+08:00,hl1-s1,5,abc,,
,hl1-s1,6,6.0,,
2026-11-02 01:10:00,hl1-s1,7,6.0,,
2026-11-02T01:20:00+08:00,Bad Node,,6.0,,
2099-01-01T00:00:00+08:00,hl1-s1,9,6.0,,
2026-11-02T01:40:00+08:00,hl1-a1,,,,true
"""


def _counts(influx) -> dict[str, int]:
    rows = influx.rows('SELECT COUNT(*) FROM "telemetry" GROUP BY "node", "segment"')
    return {f"{r['node']}/{r['segment']}": max(v or 0 for k, v in r.items() if k.startswith("count_")) for r in rows}


def test_backfill_is_idempotent_and_refuses_bad_rows_with_reasons(influx, tmp_path, capsys):
    src = tmp_path / "history.csv"
    src.write_text(BACKFILL_CSV, encoding="utf-8")
    assert run(["backfill", str(src), "--batch", "2"], influx, tmp_path) == 0
    first = _counts(influx)
    assert first == {"hl1-s1/hl-1": 4, "zz-unknown/unassigned": 1, "hl1-a1/hl-1": 1}
    err = capsys.readouterr().err
    assert "11 rows read, 6 readings stored" in err and "5 rows refused" in err
    rejects = _csv(tmp_path / "history.rejects.csv")
    reasons = {(r["line"], r["reason"], r["field"]) for r in rejects}
    assert reasons == {("6", "field_out_of_range", "do_mg_l"), ("7", "field_wrong_type", "do_mg_l"),
                       ("7", "no_valid_measurement", ""), ("8", "ts_missing", ""),
                       ("9", "ts_invalid", ""), ("10", "node_invalid", ""), ("11", "ts_future", "")}
    assert all(r["detail"] for r in rejects)
    # The row with DO out of range keeps its turbidity.
    kept = influx.rows('SELECT "do_mg_l", "turbidity_ntu", "seq" FROM "telemetry" WHERE "node" = \'hl1-s1\'')
    assert [r["seq"] for r in kept] == [1, 2, 3, 4]
    assert kept[3]["do_mg_l"] is None and kept[3]["turbidity_ntu"] == 13.0
    types = {r["fieldKey"]: r["fieldType"] for r in influx.rows('SHOW FIELD KEYS FROM "telemetry"')}
    assert types["seq"] == "integer" and types["do_mg_l"] == "float" and types["turbidity_ntu"] == "float"
    assert types["aerator_on"] == "boolean"
    tags = influx.rows('SELECT "do_mg_l", "kind" FROM "telemetry" WHERE "node" = \'zz-unknown\'')
    assert tags[0]["kind"] == "sensor"

    assert run(["backfill", str(src), "--batch", "5000"], influx, tmp_path) == 0
    assert _counts(influx) == first


def test_backfill_through_the_rivermon_command_prints_plain_progress(influx, tmp_path):
    import subprocess
    import sys

    src = tmp_path / "history.csv"
    src.write_text(BACKFILL_CSV, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "rivermon.cli", "backfill", str(src), "--influx", influx.url,
                           "--influx-db", influx.database, "--rejects", str(tmp_path / "refused.csv")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "backfill history.csv: 11/11 rows (100%) done in " in proc.stderr
    assert "\r" not in proc.stderr and proc.stdout == ""
    assert len(_csv(tmp_path / "refused.csv")) == 7 and not (tmp_path / "history.rejects.csv").exists()
    assert _counts(influx)["hl1-s1/hl-1"] == 4


def test_backfill_refuses_a_file_without_the_replay_columns(influx, tmp_path):
    src = tmp_path / "wrong.csv"
    src.write_text("timestamp,sensor,do\n1,2,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="the header has no 'time' column"):
        run(["backfill", str(src)], influx, tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        run(["backfill", str(tmp_path / "missing.csv")], influx, tmp_path)


def test_backfill_names_the_points_influxdb_refuses(influx, tmp_path, capsys):
    # A new probe's field first arrives as a boolean, then as a number: InfluxDB refuses the
    # second (field type conflict); the rest of the batch is stored and the refusal named.
    src = tmp_path / "conflict.csv"
    src.write_text("time,node,x_flag,do_mg_l\n"
                   "2026-11-02T00:00:00+08:00,hl1-s1,true,\n"
                   "2026-11-02T00:10:00+08:00,hl1-s1,3,\n"
                   "2026-11-02T00:20:00+08:00,hl1-s1,,6.0\n", encoding="utf-8")
    assert run(["backfill", str(src), "--batch", "5000"], influx, tmp_path) == 0
    [refused] = _csv(tmp_path / "conflict.rejects.csv")
    assert (refused["line"], refused["reason"]) == ("3", "influx_refused")
    assert "conflict" in refused["detail"]
    stored = influx.rows('SELECT "x_flag", "do_mg_l" FROM "telemetry"')
    assert [(r["x_flag"], r["do_mg_l"]) for r in stored] == [(True, None), (None, 6.0)]
    assert "2 readings stored" in capsys.readouterr().err


def test_backfill_with_influxdb_down_ends_with_a_sentence(tmp_path, capsys):
    from types import SimpleNamespace

    from rivermon.core.servers import free_port

    src = tmp_path / "history.csv"
    src.write_text(BACKFILL_CSV, encoding="utf-8")
    down = SimpleNamespace(url=f"http://127.0.0.1:{free_port()}", database="nowhere")
    assert run(["backfill", str(src)], down, tmp_path) == 1
    assert "unreachable" in capsys.readouterr().err


# ---- progress -----------------------------------------------------------------------------------

class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(total=4, desc="backfill x.csv", unit="rows", stream=stream, plain_every_s=0) as bar:
        bar.update(2)
        bar.update(2)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "backfill x.csv: 2/4 rows (50%)"
    assert lines[-1].startswith("backfill x.csv: 4/4 rows (100%) done in ")
    assert list(track([1, 2, 3], desc="t", stream=io.StringIO())) == [1, 2, 3]


def test_progress_draws_a_bar_on_a_terminal():
    stream = FakeTty()
    with Progress(total=10, desc="report", unit="nodes", stream=stream) as bar:
        bar.update(10)
    assert "\r" in stream.getvalue() and "10/10" in stream.getvalue()

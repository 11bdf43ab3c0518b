"""Line protocol escaping and typing, round-tripped through the real InfluxDB."""

from __future__ import annotations

import pytest

from rivermon.core.influx import InfluxError, format_field, line

NASTY = [
    "plain",
    "with space",
    "com,ma",
    "equ=als",
    'dou"ble',
    "sin'gle",
    "华龙涌 河段",
    "a, b=c \"d\" 'e'",
    "back\\slash",
]


@pytest.mark.parametrize("value", NASTY)
def test_tag_values_and_field_keys_round_trip(influx, value):
    influx.write_lines([line("telemetry", {"creek": "huanglong", "node": value},
                             {value: 1.5, "do_mg_l": 5.0}, 1764201600000)])
    res = influx.query('SELECT * FROM "telemetry"')[0]["series"][0]
    row = dict(zip(res["columns"], res["values"][0]))
    assert row["node"] == value
    assert row[value] == 1.5


@pytest.mark.parametrize("value", ["before space\\ x", "trailing\\"])
def test_backslash_before_a_separator_still_makes_a_valid_line(influx, value):
    # InfluxDB 1.x cannot carry these exactly (it never unescapes a doubled backslash, and a
    # trailing one escapes the separator): the line must still parse, nearly unchanged.
    influx.write_lines([line("telemetry", {"node": value}, {"do_mg_l": 5.0}, 1764201600000)])
    stored = influx.rows('SELECT * FROM "telemetry"')[0]["node"]
    assert stored in (value, value.replace("\\", "\\\\"), value[:-1] + "\uff3c")


@pytest.mark.parametrize("value", NASTY + ["trailing\\", "line\nbreak", "x" * 4096])
def test_string_fields_round_trip(influx, value):
    influx.write_lines([line("rejects", {"reason": "not_json"}, {"payload": value}, 1764201600000)])
    got = influx.rows('SELECT "payload" FROM "rejects"')[0]["payload"]
    # A newline is stored as the two characters backslash-n: line protocol is line-based.
    assert got == value.replace("\n", "\\n")


def test_measurement_name_with_space_and_comma(influx):
    influx.write_lines([line("my meas,ure", {"t": "v"}, {"f": 1.0}, 1764201600000)])
    names = [v[0] for v in influx.query("SHOW MEASUREMENTS")[0]["series"][0]["values"]]
    assert names == ["my meas,ure"]


def test_field_types():
    assert format_field(5.0) == "5.0"
    assert format_field(1e-7) == "1e-07"
    assert format_field(12) == "12i"
    assert format_field(True) == "true" and format_field(False) == "false"
    assert format_field('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(TypeError):
        format_field(None)


def test_integral_float_stays_float_so_the_type_never_changes(influx):
    # A node that sends 5 and later 5.5 must not be refused for a type conflict.
    influx.write_lines([line("telemetry", {"node": "n"}, {"do_mg_l": float(5)}, 1764201600000)])
    influx.write_lines([line("telemetry", {"node": "n"}, {"do_mg_l": 5.5}, 1764201601000)])
    rows = influx.rows('SELECT "do_mg_l" FROM "telemetry"')
    assert [r["do_mg_l"] for r in rows] == [5.0, 5.5]


def test_type_conflict_is_a_400_with_influx_reason(influx):
    influx.write_lines([line("telemetry", {"node": "n"}, {"x": 1.0}, 1764201600000)])
    with pytest.raises(InfluxError) as exc:
        influx.write_lines([line("telemetry", {"node": "n"}, {"x": True}, 1764201601000)])
    assert exc.value.status == 400 and not exc.value.retryable
    assert "conflict" in exc.value.body


def test_empty_tag_values_are_left_out():
    assert line("m", {"a": "", "b": "x"}, {"f": 1.0}, 5) == "m,b=x f=1.0 5"


def test_tags_are_sorted_and_timestamp_is_ms():
    assert line("telemetry", {"node": "n", "creek": "c"}, {"do_mg_l": 5.0}, 1764201600500) == \
        "telemetry,creek=c,node=n do_mg_l=5.0 1764201600500"

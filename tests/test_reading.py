"""The contract's bad-input table, row by row, against rivermon.core.reading."""

from __future__ import annotations

import json

import pytest

from rivermon.core import reading as rd

P = "rivermon/v1"
T = f"{P}/huanglong/hl1-s1/telemetry"
NOW = 1_764_201_600.0


def tel(payload, topic: str = T) -> rd.Telemetry:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return rd.parse_telemetry(topic, raw, P, now=NOW)


def reasons(result: rd.Telemetry) -> list[str]:
    return [r.reason for r in result.rejections]


# -- whole message refused ------------------------------------------------------------------

@pytest.mark.parametrize("payload, reason", [
    (b"not json", rd.R_NOT_JSON),
    (b"\xff\xfe{}", rd.R_NOT_JSON),
    (b"", rd.R_NOT_JSON),
    (b"42", rd.R_NOT_OBJECT),
    (b'"a string"', rd.R_NOT_OBJECT),
    (b"null", rd.R_NOT_OBJECT),
    (b"[" * 100_000, rd.R_NOT_JSON),
    (b'{"ts": 1764201600, "do_mg_l": 5, "pad": "' + b"x" * (256 * 1024) + b'"}', rd.R_TOO_LARGE),
])
def test_unreadable_message_is_refused_whole_with_a_reason(payload, reason):
    result = tel(payload)
    assert result.readings == []
    assert reasons(result) == [reason]
    assert result.rejections[0].whole_message
    assert result.rejections[0].detail


@pytest.mark.parametrize("topic", [
    "rivermon/v1/huanglong/hl1-s1/telemetry/extra",
    "rivermon/v1/Huanglong/hl1-s1/telemetry",
    "rivermon/v1/huanglong/-bad/telemetry",
    "rivermon/v1/huanglong/" + "n" * 33 + "/telemetry",
    "other/v1/huanglong/hl1-s1/telemetry",
    "rivermon/v1/huanglong/hl1 s1/telemetry",
    "rivermon/v1/huanglong/节点/telemetry",
])
def test_topic_outside_the_grammar_is_refused_whole(topic):
    result = tel({"ts": NOW, "do_mg_l": 5.0}, topic)
    assert result.readings == [] and reasons(result) == [rd.R_TOPIC]
    assert "must" in result.rejections[0].detail or "is not" in result.rejections[0].detail \
        or "does not start" in result.rejections[0].detail


def test_exactly_256_kib_is_accepted_and_one_byte_more_is_not():
    base = {"ts": NOW, "do_mg_l": 5.0, "pad": ""}
    overhead = len(json.dumps(base).encode())
    ok = json.dumps({**base, "pad": "x" * (256 * 1024 - overhead)}).encode()
    assert len(ok) == 256 * 1024
    # "pad" is a string, so that field is refused; the reading itself is kept.
    assert len(tel(ok).readings) == 1
    assert reasons(tel(ok + b" ")) == [rd.R_TOO_LARGE]


def test_backlog_over_1000_readings_is_refused_whole():
    result = tel([{"ts": NOW - i, "do_mg_l": 5.0} for i in range(1001)])
    assert result.readings == [] and reasons(result) == [rd.R_BACKLOG]
    assert len(tel([{"ts": NOW - i, "do_mg_l": 5.0} for i in range(1000)]).readings) == 1000


# -- one reading refused, the rest of the backlog kept ----------------------------------------

@pytest.mark.parametrize("bad, reason", [
    ({"do_mg_l": 5.0}, rd.R_TS_MISSING),
    ({"ts": None, "do_mg_l": 5.0}, rd.R_TS_MISSING),
    ({"ts": "yesterday", "do_mg_l": 5.0}, rd.R_TS_INVALID),
    ({"ts": "2026-11-27T10:00:00", "do_mg_l": 5.0}, rd.R_TS_INVALID),  # no offset
    ({"ts": True, "do_mg_l": 5.0}, rd.R_TS_INVALID),
    ({"ts": [1], "do_mg_l": 5.0}, rd.R_TS_INVALID),
    ({"ts": NOW + 301, "do_mg_l": 5.0}, rd.R_TS_FUTURE),
    ({"ts": 12, "do_mg_l": 5.0}, rd.R_TS_ANCIENT),
    ({"ts": NOW, "do_mg_l": -1}, rd.R_EMPTY),
    ("a string", rd.R_NOT_READING),
    (7, rd.R_NOT_READING),
])
def test_bad_reading_in_a_backlog_is_refused_and_the_rest_kept(bad, reason):
    good1 = {"ts": NOW - 60, "seq": 1, "do_mg_l": 5.0}
    good2 = {"ts": NOW - 30, "seq": 3, "turbidity_ntu": 12.5}
    result = tel([good1, bad, good2])
    assert [r.seq for r in result.readings] == [1, 3]
    assert reason in reasons(result)
    rej = next(r for r in result.rejections if r.reason == reason)
    assert rej.index == 1 and rej.detail.startswith("reading 1:")


def test_ts_within_five_minutes_of_the_future_is_kept_and_rfc3339_parsed():
    result = tel([{"ts": NOW + 299, "do_mg_l": 5.0},
                  {"ts": "2025-11-27T08:00:00.250+08:00", "do_mg_l": 5.0}])
    assert [r.ts_ms for r in result.readings] == [int((NOW + 299) * 1000), 1764201600250]
    assert result.rejections == []


# -- one field refused, the rest of the reading kept -----------------------------------------

@pytest.mark.parametrize("field, value, reason", [
    ("do_mg_l", 50.1, rd.R_FIELD_RANGE),
    ("do_mg_l", -0.1, rd.R_FIELD_RANGE),
    ("turbidity_ntu", 4001, rd.R_FIELD_RANGE),
    ("temp_c", -6, rd.R_FIELD_RANGE),
    ("battery_v", 31, rd.R_FIELD_RANGE),
    ("rssi_dbm", 1, rd.R_FIELD_RANGE),
    ("orp_mv", -1001, rd.R_FIELD_RANGE),
    ("power_w", 100001, rd.R_FIELD_RANGE),
    ("do_mg_l", "5.8", rd.R_FIELD_TYPE),
    ("do_mg_l", True, rd.R_FIELD_TYPE),
    ("do_mg_l", None, rd.R_FIELD_TYPE),
    ("do_mg_l", [5.8], rd.R_FIELD_TYPE),
    ("do_mg_l", {"v": 5.8}, rd.R_FIELD_TYPE),
    ("aerator_on", 1, rd.R_FIELD_TYPE),
    ("new_probe", "text", rd.R_FIELD_TYPE),
    ("do_mg_l", 10 ** 400, rd.R_FIELD_NONFINITE),
    ("new_probe", 1e301, rd.R_FIELD_RANGE),
    ("Bad-Name", 1.0, rd.R_FIELD_NAME),
    ("x" * 65, 1.0, rd.R_FIELD_NAME),
    ("9lives", 1.0, rd.R_FIELD_NAME),
])
def test_bad_field_is_refused_and_the_rest_of_the_reading_kept(field, value, reason):
    result = tel({"ts": NOW, "turbidity_ntu": 12.0, "temp_c": 27.0, field: value}
                 if field not in ("turbidity_ntu", "temp_c")
                 else {"ts": NOW, "do_mg_l": 6.0, field: value})
    assert len(result.readings) == 1
    assert field not in result.readings[0].fields
    assert reasons(result) == [reason]
    assert result.rejections[0].field == field[:64]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_numbers_are_refused_as_fields(token):
    result = tel(b'{"ts": 1764201600, "temp_c": 27.0, "do_mg_l": ' + token + b"}")
    assert list(result.readings[0].fields) == ["temp_c"]
    assert reasons(result) == [rd.R_FIELD_NONFINITE]


def test_reading_with_no_valid_measurement_left_is_refused():
    result = tel({"ts": NOW, "seq": 4, "do_mg_l": 99.0})
    assert result.readings == []
    assert sorted(reasons(result)) == sorted([rd.R_FIELD_RANGE, rd.R_EMPTY])


def test_bad_seq_is_refused_but_the_reading_kept():
    result = tel({"ts": NOW, "seq": -1, "do_mg_l": 5.0})
    assert result.readings[0].seq is None and reasons(result) == [rd.R_SEQ]


def test_unknown_well_formed_fields_are_kept_numbers_as_floats_booleans_as_booleans():
    result = tel({"ts": NOW, "seq": 9, "do_mg_l": 5, "chlorophyll_ug_l": 3, "pump_ok": True,
                  "aerator_on": False})
    r = result.readings[0]
    assert r.fields == {"do_mg_l": 5.0, "chlorophyll_ug_l": 3.0, "pump_ok": True, "aerator_on": False}
    assert type(r.fields["do_mg_l"]) is float and r.seq == 9


def test_duplicate_keys_last_one_wins():
    result = tel(b'{"ts": 1764201600, "do_mg_l": 1.0, "do_mg_l": 2.0}')
    assert result.readings[0].fields == {"do_mg_l": 2.0}


def test_ts_is_millisecond_precision():
    assert tel({"ts": 1764201600.1234, "do_mg_l": 5.0}).readings[0].ts_ms == 1764201600123


# -- status ------------------------------------------------------------------------------

def test_status_online_offline_and_refusals():
    topic = rd.parse_topic(f"{P}/huanglong/hl1-s1/status", P)
    st, bad = rd.parse_status(topic, b'{"state": "offline", "fw": "1.4.2"}')
    assert bad is None and (st.state, st.fw, st.node) == ("offline", "1.4.2", "hl1-s1")
    for payload in (b"{}", b'{"state": "asleep"}', b"[1]", b"nope", b'{"state": "online", "fw": 3}'):
        st, bad = rd.parse_status(topic, payload)
        assert st is None and bad.reason == rd.R_STATUS and bad.detail


def test_raw_excerpt_keeps_4_kib_and_escapes_invalid_utf8():
    assert len(rd.raw_excerpt(b"a" * 10000)) == 4096
    assert rd.raw_excerpt(b"ok\xff") == "ok\\xff"


# -- hostile input: nothing crashes, every refusal has a reason and a sentence -------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=30)
_reading = st.dictionaries(
    st.sampled_from(["ts", "seq", "do_mg_l", "turbidity_ntu", "aerator_on", "x_1", "Bad"]) | st.text(max_size=8),
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.just(NOW) | st.just("2025-11-27T08:00:00+08:00"),
    max_size=8)


def _check(result: rd.Telemetry) -> None:
    for rej in result.rejections:
        assert rej.reason and rej.detail
    for r in result.readings:
        assert r.fields and all(type(v) in (float, bool) for v in r.fields.values())


@settings(max_examples=200, deadline=None)
@given(st.one_of(_json, _reading, st.lists(_reading, max_size=20)))
def test_any_json_value_is_validated_without_crashing(value):
    _check(tel(json.dumps(value, allow_nan=True).encode()))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=60))
def test_any_bytes_and_topic_are_validated_without_crashing(payload, topic):
    _check(tel(payload))
    _check(rd.parse_telemetry(topic, payload, P, now=NOW))

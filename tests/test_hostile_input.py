"""Hostile input: the topic and payload parsers never crash, always say why, keep the good parts.

Property-based (hypothesis). The default profile runs a few thousand inputs in CI; the
benchmark profile runs over 100,000:

    HYPOTHESIS_PROFILE=bench .venv/bin/python -m pytest -q tests/test_hostile_input.py -s
"""

from __future__ import annotations

import json
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rivermon.core import reading as R
from rivermon.core.influx import line

settings.register_profile("ci", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
# 8 property tests x 12,500 examples = 100,000 generated inputs.
settings.register_profile("bench", max_examples=12_500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PREFIX = "rivermon/v1"
NOW = 1_800_000_000.0
TOPIC = f"{PREFIX}/huanglong/hl1-s1/telemetry"
REASONS = {v for k, v in vars(R).items() if k.startswith("R_")}

numbers = st.one_of(
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e-320, 5e-324, 1.7976931348623157e308, 2 ** 63, -(2 ** 63) - 1]))
keys = st.one_of(st.sampled_from(list(R.KNOWN_FIELDS) + ["ts", "seq", "aerator_on", "x" * 65]),
                 st.text(max_size=70))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=50)),
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(keys, children, max_size=6)),
    max_leaves=30)


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8")


def _check_outcome(out: R.Telemetry) -> None:
    for rej in out.rejections:
        assert rej.reason in REASONS, rej
        assert rej.detail and isinstance(rej.detail, str)
    for r in out.readings:
        assert r.fields, "a kept reading has at least one valid measurement"
        assert R.MIN_TS_S * 1000 <= r.ts_ms <= (NOW + R.MAX_FUTURE_S) * 1000
        for k, v in r.fields.items():
            assert R.check_field(k, v) is None
            assert type(v) is bool or (type(v) is float and math.isfinite(v))
        # Every kept reading can be written as line protocol.
        assert line("telemetry", {"node": r.node}, r.fields, r.ts_ms)


@given(payload=st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_and_always_say_why(payload):
    out = R.parse_telemetry(TOPIC, payload, PREFIX, now=NOW)
    assert out.readings or out.rejections
    _check_outcome(out)


@given(value=json_values)
def test_arbitrary_json_never_crashes_and_keeps_only_valid_fields(value):
    out = R.parse_telemetry(TOPIC, _dumps(value), PREFIX, now=NOW)
    assert out.readings or out.rejections
    _check_outcome(out)


@given(topic=st.text(max_size=300))
def test_arbitrary_topics_are_refused_with_a_reason_or_parsed(topic):
    try:
        t = R.parse_topic(topic, PREFIX)
    except R.TopicError as exc:
        assert str(exc)
    else:
        assert R.ID_RE.match(t.creek)
        assert t.node is None or R.ID_RE.match(t.node)
    out = R.parse_telemetry(topic, b'{"ts": 1800000000, "do_mg_l": 5}', PREFIX, now=NOW)
    _check_outcome(out)


good_reading = st.fixed_dictionaries(
    {"ts": st.floats(min_value=1.6e9, max_value=NOW, allow_nan=False),
     "do_mg_l": st.floats(min_value=0, max_value=50, allow_nan=False)},
    optional={"seq": st.integers(min_value=0, max_value=2 ** 62),
              "turbidity_ntu": st.floats(min_value=0, max_value=4000, allow_nan=False),
              "aerator_on": st.booleans(),
              "probe_x": st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)})


@given(good=st.lists(good_reading, min_size=1, max_size=20),
       bad=st.lists(json_values, max_size=20), seed=st.randoms())
def test_valid_readings_in_a_hostile_backlog_are_all_kept(good, bad, seed):
    items = [("good", g) for g in good] + [("bad", b) for b in bad]
    seed.shuffle(items)
    out = R.parse_telemetry(TOPIC, _dumps([v for _, v in items]), PREFIX, now=NOW)
    _check_outcome(out)
    kept = {(r.ts_ms, r.fields.get("do_mg_l")) for r in out.readings}
    for g in good:
        assert (int(round(g["ts"] * 1000)), float(g["do_mg_l"])) in kept


@given(good=good_reading, junk=st.dictionaries(keys, json_values, max_size=8))
def test_bad_fields_are_refused_one_by_one_and_the_rest_is_kept(good, junk):
    reading = {**junk, **good}
    out = R.parse_telemetry(TOPIC, _dumps(reading), PREFIX, now=NOW)
    _check_outcome(out)
    assert len(out.readings) == 1
    r = out.readings[0]
    assert r.fields["do_mg_l"] == float(good["do_mg_l"])
    refused = {rej.field for rej in out.rejections}
    for k in reading:
        if k in ("ts",):
            continue
        assert (k in r.fields) or (k == "seq" and r.seq is not None) or (k[:64] in refused)


@given(depth=st.integers(min_value=1, max_value=200_000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_not_crashed(depth, opener):
    closer = "]" if opener == "[" else "}"
    payload = (opener * depth + closer * depth).encode()
    out = R.parse_telemetry(TOPIC, payload, PREFIX, now=NOW)
    _check_outcome(out)
    assert not out.readings


@given(n=st.integers(min_value=R.MAX_BACKLOG + 1, max_value=R.MAX_BACKLOG + 50))
def test_giant_arrays_are_refused_whole_with_the_reason(n):
    payload = _dumps([{"ts": NOW, "do_mg_l": 1.0}] * n)
    out = R.parse_telemetry(TOPIC, payload, PREFIX, now=NOW)
    assert not out.readings and out.rejections[0].reason in (R.R_BACKLOG, R.R_TOO_LARGE)


@given(text=st.text(min_size=1, max_size=100), dup=st.floats(min_value=0, max_value=50, allow_nan=False))
def test_duplicate_keys_and_unicode_keep_the_last_value(text, dup):
    payload = ('{"ts": 1800000000, "do_mg_l": 1.5, "note": %s, "do_mg_l": %r}'
               % (json.dumps(text), dup)).encode()
    out = R.parse_telemetry(TOPIC, payload, PREFIX, now=NOW)
    _check_outcome(out)
    assert out.readings[0].fields["do_mg_l"] == dup
    assert any(rej.field == "note" and rej.reason == R.R_FIELD_TYPE for rej in out.rejections)


def test_invalid_utf8_and_oversize_payloads_are_refused_whole():
    out = R.parse_telemetry(TOPIC, b'{"ts": 1800000000, "do_mg_l": 1, "\xff": 2}', PREFIX, now=NOW)
    assert not out.readings and out.rejections[0].reason == R.R_NOT_JSON
    assert "UTF-8" in out.rejections[0].detail
    big = b'{"ts": 1800000000, "do_mg_l": 1, "pad": "' + b"x" * R.MAX_PAYLOAD_BYTES + b'"}'
    out = R.parse_telemetry(TOPIC, big, PREFIX, now=NOW)
    assert out.rejections[0].reason == R.R_TOO_LARGE and "bytes" in out.rejections[0].detail


def test_a_trailing_newline_never_passes_an_identifier_check():
    import pytest

    from rivermon.core.influx import quote_ident

    with pytest.raises(R.TopicError):
        R.parse_topic("rivermon/v1/huanglong/hl-3\n/telemetry", PREFIX)
    with pytest.raises(R.TopicError):
        R.parse_topic("rivermon/v1/huanglong\n/hl-3/telemetry", PREFIX)
    assert R.check_field("do_mg_x\n", 1.0)[0] == R.R_FIELD_NAME
    with pytest.raises(ValueError):
        quote_ident("telemetry\n")

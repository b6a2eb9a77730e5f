"""plumbing.limits: JSON from outside within depth and well-formed, ids bounded, free text clipped, dates in range."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.plumbing import limits
from shared_code.plumbing.errors import BadInput
from tests.support import hostile


def refusal(call, *args) -> str:
    with pytest.raises(BadInput) as refused:
        call(*args)
    return refused.value.message


def test_json_nested_ten_thousand_deep_is_refused_as_too_deep():
    assert "nested deeper than 64" in refusal(limits.loads, b"[" * 10_000 + b"]" * 10_000, "the body")


def test_json_nested_one_level_over_the_limit_is_refused():
    assert "nested deeper" in refusal(limits.loads, b'{"a":' * 65 + b"1" + b"}" * 65, "the body")


def test_json_nested_as_deep_as_the_limit_is_accepted():
    value = limits.loads(b'{"a":' * 64 + b"1" + b"}" * 64, "the body")

    for _ in range(64):
        value = value["a"]
    assert value == 1


def test_a_lone_surrogate_in_a_value_is_refused_with_where_it_is():
    message = refusal(limits.loads, b'{"conversation": {"id": "a\\ud800b"}}', "the body")

    assert "lone surrogate" in message and "$.conversation.id" in message


def test_a_lone_surrogate_in_a_key_is_refused():
    assert "key" in refusal(limits.loads, b'{"\\udfff": 1}', "the body")


def test_a_surrogate_pair_is_a_character_and_accepted():
    assert limits.loads(b'"\\ud83d\\ude00"', "the body") == "😀"


@pytest.mark.parametrize("constant", [b"NaN", b"[Infinity]", b'{"a": -Infinity}'])
def test_nan_and_infinity_are_not_json(constant):
    assert refusal(limits.loads, constant, "the body") == "the body is not valid JSON"


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), hostile.hostile_strings),
                              lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                              max_leaves=20).map(hostile.dumps)))
def test_loads_answers_any_bytes_with_a_value_or_bad_input_only(body):
    try:
        value = limits.loads(body, "the body")
    except BadInput:
        return
    limits.check_json(value, "the body")  # what it gives back passes its own check


def test_utf16_length_counts_a_character_beyond_the_bmp_twice():
    assert limits.utf16_len("a😀é") == 4


def test_fitting_refuses_text_over_a_table_property():
    assert "as stored" in refusal(limits.fitting, "😀" * 16_001, "the stack")
    assert limits.fitting("😀" * 16_000, "the stack")


def test_clip_keeps_short_text_and_cuts_long_text_with_an_ellipsis():
    assert limits.clip("Ada", 5) == "Ada"
    assert limits.clip("x" * 15_000, 1000) == "x" * 999 + "…"


@pytest.mark.parametrize("value, what", [("x" * 1025, "longer than 1024"), ("a\udc00", "lone surrogate")])
def test_identifier_refuses_long_or_ill_formed_ids(value, what):
    assert what in refusal(limits.identifier, value, "to.user")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1600-12-31T23:59:59Z",
                                  "9999-06-01T00:00:00Z"])
def test_a_time_at_the_ends_of_the_date_range_is_refused(text):
    assert "outside the supported range" in refusal(limits.moment, datetime.fromisoformat(text), "notBefore")


def test_a_time_in_range_is_kept_as_given():
    moment = datetime(2026, 12, 1, 9, tzinfo=UTC)

    assert limits.moment(moment, "notBefore") is moment

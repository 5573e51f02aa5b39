"""The service's JSON codec (orjson) gives what the json module gives, and takes what it takes."""

from __future__ import annotations

import gc
import json
import math

import pytest

from common import gc_policy, json_codec
from common.errors import ServiceRefusal

DOCS = [
    {"a": [1, 2.5, None, True, "é ✓ \u2028", {"b": ""}], "big": 2**63 - 1, "neg": -(2**63)},
    [], "text", 0, {"nested": [[[{"x": "\\\"quoted\\\""}]]]},
]


@pytest.mark.parametrize("doc", DOCS)
def test_round_trips_as_the_json_module(doc: object) -> None:
    text = json_codec.dumps(doc)
    assert json_codec.loads(text) == json.loads(text) == doc
    assert json_codec.loads(json.dumps(doc)) == doc


def test_what_only_the_json_module_takes_is_still_taken() -> None:
    assert math.isnan(json_codec.loads('{"x": NaN}')["x"])  # orjson refuses NaN
    assert json_codec.loads('"\\ud800"') == "\ud800"  # and a lone surrogate escape
    assert json_codec.loads(json.dumps({"huge": 2**70})) == {"huge": 2**70}  # beyond 64 bits: an int, not a float
    assert json.loads(json_codec.dumps({"huge": 2**70, 3: "int key"})) == {"huge": 2**70, "3": "int key"}
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads("{not json")


def test_the_gc_policy_freezes_what_start_up_made_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        gc_policy.settle_after_startup()
        assert gc.get_threshold() == gc_policy.THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize(("raw", "refusal"), [
    (b"[" * 1010 + b"]" * 1010, "nested too deeply"),  # orjson takes 1,024 levels; the service does not
    (b'{"exit_code": 9223372036854775808}', "outside the 64-bit range"),
    (b'{"exit_code": 18446744073709551616}', "outside the 64-bit range"),  # orjson: a float, silently
    (b'{"error": "\\ud800"}', "not valid Unicode"),
    (b'{"a": NaN', "not valid JSON"),
])
def test_request_bodies_orjson_would_take_are_refused_as_before(raw: bytes, refusal: str) -> None:
    with pytest.raises(ServiceRefusal, match=refusal):
        json_codec.decode_request(raw)


def test_request_bodies_decode_the_same_on_both_paths() -> None:
    for raw in (b'{"exit_code": 9223372036854775807, "output": "{\\"a\\": [1, 2.5, null]}"}',
                b"[" * 400 + b"1" + b"]" * 400, b'{"x": NaN}', json.dumps({"s": "\u00e9\U0001f600"}).encode()):
        assert json_codec.decode_request(raw) == json.loads(raw)

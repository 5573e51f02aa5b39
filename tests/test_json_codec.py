"""The service's JSON codec (orjson) gives what the json module gives, and takes what it takes."""

from __future__ import annotations

import gc
import json
import math

import pytest

from reference_service import gc_policy, json_codec

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

"""common.go_bool: booleans spelt as Go's strconv.ParseBool (and the agent's files) accept them."""

from __future__ import annotations

import pytest

from common.go_bool import parse_bool


@pytest.mark.parametrize("text", ["1", "t", "T", "true", "TRUE", "True", "yes", "y", "on", " true\n"])
def test_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "false", "FALSE", "no", "n", "off", "", "  "])
def test_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["2", "truthy", "nope", "-1", "tru e"])
def test_anything_else_is_refused_with_the_value_named(text: str) -> None:
    with pytest.raises(ValueError, match="invalid boolean"):
        parse_bool(text)

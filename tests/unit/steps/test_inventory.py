"""steps.inventory: the step's arguments as the Go agent takes them (the host id, then its two size options), and
the messages it refuses others with. What it collects is tested with the collectors (tests/unit/inventory)."""

from __future__ import annotations

import pytest

from common.errors import InvalidStepArguments
from steps.inventory import InventoryParams, InventoryStep

HOST_ID = "2b0e5a8e-4f7c-4a3e-9d1b-6c8f0e2a7b31"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([HOST_ID], InventoryParams(HOST_ID)),
        ([HOST_ID, "--output-max-size=1048576"], InventoryParams(HOST_ID, 1048576, 0)),
        (["--disk-min-size=1000000000", HOST_ID], InventoryParams(HOST_ID, 0, 1000000000)),
    ],
)
def test_arguments(args: list[str], expected: InventoryParams) -> None:
    assert InventoryStep().parse_args(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-a-uuid"], "inventory cmd accepts only 1 params in args and it should be UUID, given args [not-a-uuid]"),
        ([], "inventory cmd accepts only 1 params in args and it should be UUID, given args []"),
        ([HOST_ID, HOST_ID], "inventory cmd accepts only 1 params in args and it should be UUID"),
        ([HOST_ID, "--output-max-size=lots"], "--output-max-size must be a non-negative integer, got 'lots'"),
        ([HOST_ID, "--disk-min-size=\u00b2"], "--disk-min-size must be a non-negative integer, got '\u00b2'"),
        ([HOST_ID, "--output-max-size"], "unknown argument '--output-max-size'"),
        ([HOST_ID, "--format=table"], "unknown argument '--format=table'"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(InvalidStepArguments) as err:
        InventoryStep().parse_args(args)
    assert message in str(err.value)



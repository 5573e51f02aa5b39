"""agent.step_cli: ``agent step``'s list and refusals, and the command tree completion is made from.
(Steps run through it as processes in tests/e2e: test_cli.py, test_net_*.py.)"""

from __future__ import annotations

import pytest

from agent.step_cli import _purpose, command_tree, run_step, step_list, unknown_step
from common.errors import ConfigError
from steps import registry


def test_every_installed_step_is_listed_with_its_purpose_and_origin() -> None:
    rows = {name: (purpose, origin) for name, purpose, origin in step_list()}
    assert set(rows) == set(registry.available())
    assert rows["api-vip-connectivity-check"] == (
        "can this host download its worker ignition from the cluster's API?", "built in")
    assert all(purpose and not purpose.startswith("FAILS TO LOAD") for purpose, _ in rows.values())


def test_purpose_is_the_first_sentence_without_the_steps_name() -> None:
    assert _purpose("x", "``x``: does a thing. Then more.\n\nDetails.") == "does a thing"
    assert _purpose("x", "The ``x`` step checks ``y``.") == "checks y"
    assert _purpose("x", "x (day-2): asks. More") == "asks"


def test_list_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_step(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "FROM", "PURPOSE"]
    assert any(line.startswith("inventory ") and " built in " in line for line in lines)


def test_an_unknown_step_names_the_closest_one() -> None:
    error = unknown_step("inventroy", sorted(registry.available()))
    assert (error.message, error.code) == ("no step named 'inventroy'", "unknown-step-type")
    assert error.hint == "did you mean 'inventory'? 'agent step --list' shows every step"
    with pytest.raises(ConfigError, match="no step named 'nonsense-xyz'"):
        run_step(["nonsense-xyz"])
    with pytest.raises(ConfigError, match="which step"):
        run_step([])


def test_the_command_tree_has_every_subcommand_and_the_steps_as_choices() -> None:
    tree = command_tree()
    sub = next(a for a in tree._actions if a.dest == "command")
    assert set(sub.choices) >= {"step", "inventory", "record-host", "completion", "check"}  # type: ignore[arg-type]
    step = sub.choices["step"]  # type: ignore[index]
    names = next(a for a in step._actions if a.dest == "name")
    assert names.choices == sorted(registry.available())

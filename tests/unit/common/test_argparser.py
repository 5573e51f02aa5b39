"""common.argparser: a bad command line is one ConfigError with a hint, never argparse's usage and exit."""

from __future__ import annotations

import pytest

from common.argparser import Parser
from common.errors import AgentError, ConfigError


def _parser() -> Parser:
    p = Parser(prog="agent step")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--mode", choices=["a", "b"], default="a")
    return p


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: --count"),
    (["--count", "x"], "argument --count: invalid int value: 'x'"),
    (["--count", "1", "--mode", "c"], "argument --mode: invalid choice: 'c'"),
    (["--count", "1", "extra"], "unrecognized arguments: extra"),
])
def test_errors_are_config_errors_with_a_hint(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        _parser().parse_args(argv)
    assert caught.value.message.startswith(message)
    assert caught.value.hint == "see 'agent step --help'"
    assert isinstance(caught.value, AgentError) and caught.value.code == "bad-configuration"
    assert capsys.readouterr() == ("", "")  # no usage printed, no exit


def test_a_good_command_line_parses() -> None:
    ns = _parser().parse_args(["--count", "3", "--mode", "b"])
    assert (ns.count, ns.mode) == (3, "b")

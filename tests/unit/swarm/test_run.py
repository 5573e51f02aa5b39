"""swarm.run's command line (its report: test_stats.py); whole runs against the real service:
tests/e2e/test_swarm_run.py and tests/e2e/test_swarm.py."""

from __future__ import annotations

import pytest

from swarm import machine
from swarm.run import Options, main, parser


def test_the_defaults_are_the_options_defaults() -> None:
    ns = parser().parse_args([])
    assert (ns.url, ns.hosts, ns.duration, ns.seed) == (Options.url, Options.hosts, Options.duration, Options.seed)


@pytest.mark.parametrize(("argv", "message"), [
    (["--hosts", "0"], f"--hosts must be between 1 and {machine.MAX_HOSTS}"),
    (["--hosts", str(machine.MAX_HOSTS + 1)], "--hosts must be between"),
    (["--url", "ftp://x"], "--url must be an http(s) URL"),
])
def test_bad_command_lines_are_refused_before_anything_runs(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err

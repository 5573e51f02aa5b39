"""swarm.run's command line and its report; a whole run against the real service is tests/e2e/test_swarm_run.py
and tests/e2e/test_swarm.py."""

from __future__ import annotations

import pytest

from swarm import machine
from swarm.run import Options, format_result, main, parser

RESULT = {
    "hosts": 3, "registered": 2, "seconds": 12.4,
    "endpoints": {"poll": {"count": 40, "per_second": 3.5, "p50": 0.002, "p90": 0.004, "p99": 0.009, "max": 0.02,
                           "errors": 1, "windows": [{"from": 0, "count": 10, "p99": 0.009},
                                                    {"from": 0, "count": 30, "p99": 0.005}]}},
    "statuses": {"known": 2, "discovering": 1},
    "service": {"rss_max_mib": 120.4, "cpu_percent": 12.0, "cpu_ms_per_poll": 1.25},
    "swarm": {"lag_p99_ms": 3.0, "lag_max_ms": 8.0, "cpu_percent": 20.0},
    "errors_sample": ["poll: HTTP 503"],
}


def test_the_report_has_every_figure() -> None:
    lines = format_result(RESULT).splitlines()
    assert lines[0] == "3 hosts (2 registered) for 12 s"
    assert lines[2].split() == ["poll", "40", "3.5", "2.0", "4.0", "9.0", "20.0", "1"]
    assert "poll p99 ms per 10 s (ramp first): 9 5" in lines
    assert "host statuses: discovering 1, known 2" in lines
    assert "service: RSS max 120 MiB, CPU 12 % of a core, 1.2 ms CPU per poll" in lines
    assert lines[-1] == "error: poll: HTTP 503"


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

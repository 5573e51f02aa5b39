"""The image's command names (agent.entrypoints) take the Go binaries' flags from the one settings table
(agent.settings.IMAGE_FLAGS): each flag spelled with one dash or two, a bool bare or with a value, and a flag
the table does not declare refused in one line with status 2."""

from __future__ import annotations

import pytest

from agent import entrypoints
from agent.settings import IMAGE_FLAGS, TABLE


def test_every_flag_is_declared_once_and_taken_in_both_spellings() -> None:
    flags = [s.flag for s in IMAGE_FLAGS]
    assert len(flags) == len(set(flags))
    for s in IMAGE_FLAGS:
        assert s.flag is not None
        value = [] if s.type is bool else ["x"]
        for spelling in (s.flag, s.flag[1:]):
            ns, rest = entrypoints._go_flags("free_addresses", ["[]", spelling, *value])
            assert getattr(ns, s.dest) == ("true" if s.type is bool else "x") and rest == ["[]"]
    daemon = {s.flag: s for s in TABLE}
    shared = [s for s in IMAGE_FLAGS if s.flag in daemon]
    assert shared and all(daemon[s.flag] is s for s in shared)  # the daemon's rows, not copies


def test_go_spellings_of_values_and_bools() -> None:
    ns, rest = entrypoints._go_flags("logs_sender", ["-url=http://s:8090", "-insecure=false", "-bootstrap",
                                                     "--cluster-id", "c", "-masters-ips", "10.0.0.1,10.0.0.2"])
    assert (ns.url, ns.insecure, ns.bootstrap, ns.cluster_id) == ("http://s:8090", "false", "true", "c")
    assert not entrypoints._flag(ns, "insecure") and entrypoints._flag(ns, "bootstrap") and rest == []


def test_an_undeclared_flag_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoints.main(["-no-such-flag", "[]"], name="free_addresses") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("free_addresses: error: unknown flags: -no-such-flag"), err
    assert all("Traceback" not in line for line in err)

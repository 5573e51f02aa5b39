"""swarm.run in this process against the real reference service: hosts registered, their polls and replies
measured, the service's process found by its port and measured, the figures written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm.run import main
from tests.support.service import RefService


def test_a_short_swarm_registers_every_host_and_reports(
        service: RefService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "swarm.json"
    code = main(["--url", service.url, "--hosts", "3", "--interval", "0.5", "--duration", "4",
                 "--admin-token", "test-admin-token", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads(out.read_text())
    assert (result["hosts"], result["registered"]) == (3, 3)
    endpoints = result["endpoints"]
    assert endpoints["register"]["count"] == 3 and endpoints["poll"]["count"] >= 3
    assert all(e["errors"] == 0 for e in endpoints.values()), result["errors_sample"]
    assert result["service"]["rss_max_mib"] > 0  # the service, found listening on the URL's port
    assert sum(result["statuses"].values()) == 3
    assert printed.startswith("3 hosts (3 registered)")
    hosts = service.hosts(service.call("GET", "/api/assisted-install/v2/infra-envs")[0]["id"])
    assert len(hosts) == 3

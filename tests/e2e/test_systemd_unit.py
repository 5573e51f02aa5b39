"""The unit file is valid for systemd and keeps the properties the daemon relies on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.service import BIN

UNIT = ROOT / "systemd" / "agent.service"


def test_unit_declares_notify_watchdog_and_restart() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    svc = unit["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "always"
    assert int(svc["RestartSec"]) >= 3 and int(svc["WatchdogSec"]) >= 60
    assert svc["EnvironmentFile"] == "-/etc/assisted/agent.conf"
    assert svc["KillMode"] == "mixed", "SIGTERM must reach only the agent so running steps can finish"
    assert int(svc["TimeoutStopSec"]) > 30, "longer than the agent's default shutdown grace"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", ["agent.service", "agent-container.service"])
def test_systemd_accepts_the_unit(tmp_path: Path, name: str) -> None:
    text = (UNIT.parent / name).read_text().replace("/usr/local/bin/agent", str(BIN / "agent"))
    if "/usr/bin/podman" in text and not Path("/usr/bin/podman").exists():
        pytest.skip("podman is not installed")
    (tmp_path / name).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert name not in proc.stderr, proc.stderr

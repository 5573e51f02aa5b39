"""reboot and reboot-for-reclaim. Dry-run is forced for every test here, and the steps themselves refuse a real
reboot under pytest; the fallback chain is exercised on a recorded host whose commands all fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments, StepError
from common.host import Host
from reference_service import spec
from steps import reboot
from steps.base import StepContext
from steps.reboot import RebootStep, reboot_commands
from steps.reboot_for_reclaim import RebootForReclaimStep
from tests.support.install_images import RecordingServer

IE = "6d9d4d5e-0a1b-4c2d-8e3f-000000000001"
HOST = "6d9d4d5e-0a1b-4c2d-8e3f-000000000002"


@pytest.fixture(autouse=True)
def dry_run_everywhere(tmp_path: Path) -> Iterator[Path]:
    """Every step context of a test is dry-run (AGENT_REBOOT_DRY_RUN), recording into the test's marker."""
    marker = tmp_path / "reboot-requests.jsonl"
    SETTINGS.update(reboot_dry_run=True, reboot_marker=str(marker))
    yield marker
    SETTINGS.clear()


#: The settings ctx() adds: what AGENT_REBOOT_DRY_RUN and AGENT_REBOOT_MARKER resolve to in an agent.
SETTINGS: dict[str, Any] = {}


def ctx(url: str = "", root: str | Path = "/", **cfg: object) -> StepContext:
    config = AgentConfig(url=url, **{**SETTINGS, **cfg})
    return StepContext(host=Host.at(root), config=config, step_id="reboot-1234")


def test_dry_run_records_the_request_and_reports_rebooting(dry_run_everywhere: Path, server: RecordingServer) -> None:
    step = RebootStep()
    params = step.parse_args([json.dumps({"delay_seconds": 5, "reason": "Installation completed",
                                          "infra_env_id": IE, "host_id": HOST})])
    result = step.run(params, ctx(server.url))
    assert result.exit_code == 0
    assert spec.errors("reboot_response", result.output) == []
    assert result.output["dry_run"] is True and result.output["marker"] == str(dry_run_everywhere)
    (line,) = dry_run_everywhere.read_text().splitlines()
    record = json.loads(line)
    assert record["step_type"] == "reboot" and record["delay_seconds"] == 5 and record["step_id"] == "reboot-1234"
    assert server.progress() == ["Rebooting Installation completed"]
    assert step.timeout(params) == RebootStep.default_timeout + 5


def test_no_argument_means_now_and_no_progress(dry_run_everywhere: Path, server: RecordingServer) -> None:
    step = RebootStep()
    step.run(step.parse_args([]), ctx(server.url))
    assert json.loads(dry_run_everywhere.read_text())["delay_seconds"] == 0
    assert server.progress() == []


def test_config_dry_run_alone_is_enough(monkeypatch: pytest.MonkeyPatch, dry_run_everywhere: Path) -> None:
    SETTINGS["reboot_dry_run"] = False
    step = RebootStep()
    assert step.run(step.parse_args([]), ctx(dry_run=True)).output["dry_run"] is True
    assert dry_run_everywhere.exists()


def test_a_real_reboot_is_refused_under_pytest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    SETTINGS["reboot_dry_run"] = False
    (tmp_path / ".recorded").mkdir()
    (tmp_path / ".recorded" / "commands.json").write_text(json.dumps([{"argv": ["systemctl", "reboot"]}]))
    step = RebootStep()
    with pytest.raises(StepError, match="refusing to reboot the machine running the tests"):
        step.run(step.parse_args([]), ctx(root=tmp_path))


def test_fallback_chain_ends_with_sysrq(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every userspace way fails on this recorded host, so the step writes sysrq (a file in the fixture)."""
    SETTINGS["reboot_dry_run"] = False
    monkeypatch.setattr(reboot, "refuse_under_tests", lambda: None)
    monkeypatch.setattr("steps.reboot.os.sync", lambda: None)
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    (tmp_path / ".recorded").mkdir()
    (tmp_path / ".recorded" / "commands.json").write_text(json.dumps([
        {"argv": ["systemctl", "reboot"], "exit_code": 1, "stderr": "System has not been booted with systemd"},
        {"argv": ["shutdown", "-r", "now", "assisted agent reboot"], "exit_code": 1, "stderr": "no init"},
    ]))
    step = RebootStep()
    with pytest.raises(StepError) as err:
        step.run(step.parse_args([]), ctx(root=tmp_path))
    assert "systemctl: System has not been booted with systemd" in err.value.message
    assert "shutdown: no init" in err.value.message and "reboot: executable file not found" in err.value.message
    assert (tmp_path / "proc" / "sysrq-trigger").read_text() == "b"


def test_reboot_commands(tmp_path: Path) -> None:
    (tmp_path / ".recorded").mkdir()  # a recorded host: its commands are replayed as they are
    assert reboot_commands(Host.at(tmp_path), 0, "")[0] == ["shutdown", "-r", "now", "assisted agent reboot"]
    assert reboot_commands(Host.at(tmp_path), 61, "bye")[0] == ["shutdown", "-r", "+2", "bye"]
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    assert reboot_commands(Host.at(tmp_path), 0, "")[0] == ["systemctl", "reboot"]
    timer = reboot_commands(Host.at(tmp_path), 10, "")[0]
    assert timer[:2] == ["systemd-run", "--on-active=10s"] and timer[-2:] == ["systemctl", "reboot"]
    assert reboot_commands(Host.at(tmp_path), 0, "")[-1] == ["reboot", "-f"]


def test_a_host_seen_at_another_root_is_rebooted_from_inside_it(tmp_path: Path) -> None:
    """The runner container sees the host at /host: systemctl run from the container's root takes itself for
    chrooted and drops the request with exit 0 (a lab machine stayed up after "Rebooting"), so every way to
    reboot runs chrooted into the host's root, as reboot-for-reclaim does."""
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    commands = reboot_commands(Host.at(tmp_path), 0, "")
    assert commands[0] == ["chroot", str(tmp_path), "systemctl", "reboot"]
    assert all(argv[:2] == ["chroot", str(tmp_path)] for argv in commands)
    assert reboot_commands(Host.at("/"), 0, "")[-1] == ["reboot", "-f"], "the host's own root: no chroot"


def test_a_reboot_systemctl_drops_is_not_taken_for_done(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """systemctl's "Running in chroot, ignoring command" exits 0: the step goes on to the next way."""
    SETTINGS["reboot_dry_run"] = False
    monkeypatch.setattr(reboot, "refuse_under_tests", lambda: None)
    monkeypatch.setattr("steps.reboot.os.sync", lambda: None)
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    (tmp_path / ".recorded").mkdir()
    (tmp_path / ".recorded" / "commands.json").write_text(json.dumps([
        {"argv": ["systemctl", "reboot"], "exit_code": 0, "stderr": "Running in chroot, ignoring command 'reboot'"},
        {"argv": ["shutdown", "-r", "now", "assisted agent reboot"], "exit_code": 0},
    ]))
    step = RebootStep()
    result = step.run(step.parse_args([]), ctx(root=tmp_path))
    assert result.output["method"] == "shutdown -r"


@pytest.mark.parametrize(("args", "message"), [
    (["{}", "{}"], "at most 1 argument"),
    (["[]"], "JSON object"),
    ([json.dumps({"delay_seconds": -1})], "between 0 and 3600"),
    ([json.dumps({"delay_seconds": "5"})], "must be a integer"),
    ([json.dumps({"host_id": "x"})], "host_id must be a UUID"),
])
def test_reboot_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(InvalidStepArguments, match=message):
        RebootStep().parse_args(args)


def test_reboot_for_reclaim_dry_run(dry_run_everywhere: Path, tmp_path: Path) -> None:
    (tmp_path / "host" / "boot").mkdir(parents=True)
    step = RebootForReclaimStep()
    arg = {"host_fs_mount_dir": "/host"}
    assert spec.errors("reboot_for_reclaim_request", arg) == []
    result = step.run(step.parse_args([json.dumps(arg)]), ctx(root=tmp_path))
    assert result.output["command"] == ["chroot", str(tmp_path / "host"), "systemctl", "reboot"]
    assert json.loads(dry_run_everywhere.read_text())["step_type"] == "reboot-for-reclaim"


def test_reboot_for_reclaim_checks(tmp_path: Path) -> None:
    step = RebootForReclaimStep()
    with pytest.raises(InvalidStepArguments, match="accepts only 1 params"):
        step.parse_args([])
    with pytest.raises(InvalidStepArguments, match="missing required field 'host_fs_mount_dir'"):
        step.parse_args(["{}"])
    with pytest.raises(InvalidStepArguments, match="absolute path"):
        step.parse_args([json.dumps({"host_fs_mount_dir": "host/../etc"})])
    with pytest.raises(StepError, match="not a directory"):
        step.run(step.parse_args([json.dumps({"host_fs_mount_dir": "/host"})]), ctx(root=tmp_path))
    (tmp_path / "host").mkdir()
    with pytest.raises(StepError, match="no /boot folder"):
        step.run(step.parse_args([json.dumps({"host_fs_mount_dir": "/host"})]), ctx(root=tmp_path))

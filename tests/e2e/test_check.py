"""``agent check``: every fixture machine and this one answer; the verdict is the service's own."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.check import main, report
from common.host import Host
from inventory.collect import inventory
from tests.support.paths import FIXTURES
from tests.support.service import BIN, start_service

FIXTURES = FIXTURES
MACHINES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def run_check(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([str(BIN / "agent"), "check", *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("machine", MACHINES)
def test_every_fixture_machine_answers(machine: str) -> None:
    code, out, err = run_check("--root", str(FIXTURES / machine), "--format", "json")
    doc = json.loads(out)
    assert code == (0 if doc["passed"] else 1), err
    ids = {v["id"] for v in doc["validations"]}
    assert {"has-inventory", "has-min-valid-disks", "has-cpu-cores-for-role", "has-memory-for-role"} <= ids
    assert doc["disks"] and all("eligible" in d for d in doc["disks"])
    code, table, _ = run_check("--root", str(FIXTURES / machine))
    assert ("Result: would pass" in table) == (code == 0)
    assert doc["hostname"] in table


def test_this_machine_answers() -> None:
    code, out, err = run_check("--format", "json")
    assert code in (0, 1), err
    doc = json.loads(out)
    assert doc["passed"] == (code == 0)
    assert any(v["id"] == "has-min-cpu-cores" for v in doc["validations"])


def test_a_small_host_fails_single_node_with_the_service_message() -> None:
    code, out, _ = run_check("--root", str(FIXTURES / "this-vm-no-dmi"), "--profile", "sno")
    assert code == 1
    assert "failure  " in out and "Require at least 8 CPU cores for master role, found only 2" in out
    assert "would NOT pass (has-cpu-cores-for-role)" in out
    # from OpenShift 4.22 a single node needs 4 cores: still not 2
    code, out, _ = run_check("--root", str(FIXTURES / "this-vm-no-dmi"), "--profile", "sno",
                             "--openshift-version", "4.22")
    assert code == 1 and "Require at least 4 CPU cores for master role" in out


def test_auto_role_takes_worker_when_the_host_cannot_be_a_master() -> None:
    code, out, _ = run_check("--root", str(FIXTURES / "this-vm-no-dmi"), "--format", "json")
    doc = json.loads(out)
    assert (code, doc["role"]) == (0, "worker")
    code, out, _ = run_check("--root", str(FIXTURES / "this-vm-no-dmi"), "--role", "master", "--format", "json")
    assert code == 1 and json.loads(out)["role"] == "master"


def test_disk_reasons_are_the_services() -> None:
    _, out, _ = run_check("--root", str(FIXTURES / "kvm-vm"), "--format", "json")
    sr0 = next(d for d in json.loads(out)["disks"] if d["name"] == "sr0")
    assert not sr0["eligible"]
    assert "Disk is too small (disk only has 1.2 GB, but 100 GB are required)" in sr0["not_eligible_reasons"]
    assert any(r.startswith("Drive type is ODD, it must be one of") for r in sr0["not_eligible_reasons"])


def test_bad_command_lines_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main as cli_main

    assert cli_main(["check", "--profile", "sno", "--role", "worker"]) == 2
    assert "a sno cluster has no workers" in capsys.readouterr().err
    assert cli_main(["check", "--profile", "huge"]) == 2
    assert main(["--root", str(FIXTURES / "kvm-vm"), "--format", "json"]) == 0


def _service_validations(svc: Any, inv: dict[str, Any], role: str) -> dict[str, tuple[str, str]]:
    cluster = svc.create_cluster(control_plane_count=1, high_availability_mode="None", openshift_version="4.18")
    ie = svc.create_infra_env(cluster["id"])["id"]
    host_id = str(uuid.uuid4())
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": host_id}, expected=201)
    svc.patch_host(ie, host_id, host_role=role)
    reply = {"step_id": "inventory-1", "step_type": "inventory", "exit_code": 0, "output": json.dumps(inv)}
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts/{host_id}/instructions", json=reply, expected=204)
    info = json.loads(svc.host(ie, host_id)["validations_info"])
    return {v["id"]: (v["status"], v["message"]) for v in info["hardware"]}


@pytest.mark.parametrize("machine", ["baremetal-server", "this-vm-no-dmi"])
def test_same_verdicts_as_the_running_service(tmp_path: Path, machine: str) -> None:
    inv, problems = inventory(Host.at(str(FIXTURES / machine)))
    ours = report(inv, "master", "sno", "4.18", problems)
    with start_service(tmp_path) as svc:
        theirs = _service_validations(svc, inv, "master")
    for v in ours["validations"]:
        assert theirs[v["id"]] == (v["status"], v["message"]), v["id"]


def test_on_an_80_column_terminal_no_row_runs_past_it_and_in_a_pipe_rows_stay_whole() -> None:
    """As a person meets it: a terminal of 80 columns shows every validation without the terminal folding a
    row back to column 0; piped, each validation is one line, nothing cut."""
    from tests.e2e.test_command_line import in_pty

    root = str(FIXTURES / "kvm-vm")
    screen = in_pty([str(BIN / "agent"), "check", "--root", root], columns=80).replace("\r", "")
    lines = screen.splitlines()
    assert lines and all(len(line) <= 80 for line in lines), max(lines, key=len)
    words = " ".join(" ".join(lines).split())
    assert "No request to skip formatting of the installation disk" in words
    _, piped, _ = run_check("--root", root)
    rows = [line for line in piped.splitlines() if line.startswith(("  success", "  failure"))]
    assert any(len(row) > 80 for row in rows)  # whole lines in a pipe, as grep wants them
    assert any(row.endswith("No request to skip formatting of the installation disk") for row in rows)


def test_a_disk_is_the_same_size_in_agent_check_and_agent_inventory() -> None:
    root = str(FIXTURES / "kvm-vm")
    _, check, _ = run_check("--root", root)
    inv = subprocess.run([str(BIN / "agent"), "inventory", "--format", "table", "--root", root],
                         capture_output=True, text=True, timeout=120).stdout
    doc = json.loads(run_check("--root", root, "--format", "json")[1])
    sizes = {d["name"]: d["size_bytes"] for d in doc["disks"]}
    from agent.inventory_report import iec

    for name, size in sizes.items():
        if size:
            assert iec(size) in check and iec(size) in inv, (name, iec(size))
    # (the service's own reasons keep its decimal "GB": they are its words, quoted)

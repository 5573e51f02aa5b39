"""The reference service's installation area over real HTTP: progress rules as the real service applies them,
the host Ignition endpoint, host logs, and the write-image/reboot/logs-gather steps it hands out."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reference_service import spec
from tests.support.service import BASE, RefService, start_service

HOST = "0b6a5f3e-1111-4222-8333-444455556666"


@pytest.fixture
def image_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ainst-os.raw.xz"
    path.write_bytes(b"\xfd7zXZ\x00" + b"not really an image" * 100)
    monkeypatch.setenv("REFERENCE_SERVICE_OS_IMAGE", str(path))
    return path


@pytest.fixture
def dry_service(tmp_path: Path, image_file: Path) -> Iterator[RefService]:
    with start_service(tmp_path, extra=["--dry-run-install"]) as svc:
        yield svc


def installing_host(svc: RefService, *, role: str = "master", sno: bool = False, status: str = "installing") -> str:
    cluster = svc.create_cluster(control_plane_count=1 if sno else 3)
    ie = str(svc.create_infra_env(cluster_id=cluster["id"])["id"])
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, expected=201)
    if not sno:
        svc.patch_host(ie, HOST, host_role=role)
    svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{HOST}/status", json={"status": status})
    return ie


def progress(svc: RefService, ie: str, stage: str, info: str = "", expected: int = 200) -> None:
    body = {"current_stage": stage, **({"progress_info": info} if info else {})}
    svc.api("PUT", f"/v2/infra-envs/{ie}/hosts/{HOST}/progress", json=body, expected=expected)


def test_progress_follows_the_real_service_rules(service: RefService) -> None:
    ie = installing_host(service)
    progress(service, ie, "Starting installation", "master")
    host = service.host(ie, HOST)
    assert host["status"] == "installing-in-progress"
    assert host["progress"]["current_stage"] == "Starting installation"
    assert host["progress"]["installation_percentage"] == int(100 / 8)
    progress(service, ie, "Installing", "master")
    progress(service, ie, "Writing image to disk", "10%")
    progress(service, ie, "Writing image to disk", "15%")  # same stage: info only
    host = service.host(ie, HOST)
    assert host["progress"]["progress_info"] == "15%" and host["progress"]["current_stage"] == "Writing image to disk"
    assert spec.errors("host-progress-info", host["progress"]) == []
    progress(service, ie, "Installing", "master", expected=409)  # backwards
    progress(service, ie, "Waiting for ignition", expected=409)  # a worker stage, this is a master
    progress(service, ie, "Rebooting")
    assert service.host(ie, HOST)["status"] == "installing-in-progress"  # not a dry-run service
    progress(service, ie, "Done")
    host = service.host(ie, HOST)
    assert host["status"] == "installed" and host["progress"]["installation_percentage"] == 100
    progress(service, ie, "Configuring", expected=409)  # not installing any more
    progress(service, ie, "Not a stage", expected=400)


def test_failed_puts_the_host_in_error_and_wrong_states_get_409(service: RefService) -> None:
    ie = installing_host(service, role="worker")
    progress(service, ie, "Waiting for control plane", expected=200)  # a worker stage
    progress(service, ie, "Failed", "image checksum mismatch")
    host = service.host(ie, HOST)
    assert host["status"] == "error" and host["status_info"] == "Failed - image checksum mismatch"
    ie2 = installing_host(service, status="known")
    progress(service, ie2, "Starting installation", expected=409)


def test_sno_stage_order_and_dry_run_rebooting_is_final(dry_service: RefService) -> None:
    ie = installing_host(dry_service, sno=True)
    for stage in ("Starting installation", "Installing", "Waiting for bootkube", "Writing image to disk"):
        progress(dry_service, ie, stage)
    progress(dry_service, ie, "Rebooting", "Installation completed, server is going to reboot.")
    host = dry_service.host(ie, HOST)
    # installed, and its progress what the console shows and the real service's installed hosts say
    assert host["status"] == "installed"
    assert (host["progress"]["current_stage"], host["progress"]["installation_percentage"]) == ("Done", 100)
    assert spec.errors("host-progress-info", host["progress"]) == []
    progress(dry_service, ie, "Rebooting", "Installation completed, server is going to reboot.")  # retried
    assert dry_service.host(ie, HOST)["progress"] == host["progress"]


def test_a_day2_host_rebooting_is_added_to_the_cluster(service: RefService) -> None:
    ie = installing_host(service, role="worker")
    host = service.host(ie, HOST)
    service.call("PATCH", f"/api/reference/infra-envs/{ie}/hosts/{HOST}/document",
                 json={"kind": "AddToExistingClusterHost"})
    progress(service, ie, "Starting installation", "worker")
    progress(service, ie, "Rebooting")
    assert service.host(ie, HOST)["status"] == "added-to-existing-cluster"
    assert host["status"] == "installing"


def test_host_ignition_download(service: RefService) -> None:
    cluster = service.create_cluster(control_plane_count=3)
    ie = str(service.create_infra_env(cluster_id=cluster["id"])["id"])
    service.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, expected=201)
    url = f"{service.url}{BASE}/v2/infra-env/{ie}/hosts/{HOST}/downloads/ignition"
    assert requests.get(url, timeout=10).status_code == 409  # the installation has not started
    # the cluster's own state machine is the core's; put it in installing directly in its database
    service.call("PATCH", f"/api/reference/clusters/{cluster['id']}/document", json={"status": "installing"})
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-disposition"] == f'attachment; filename="auto-assign-{HOST}.ign"'
    ignition = resp.json()
    assert ignition["ignition"]["version"] == "3.2.0"
    assert any(HOST in f["contents"]["source"] for f in ignition["storage"]["files"])
    # what the installed system reports its first boot with, as the real controller's settings (0600)
    env = next(f for f in ignition["storage"]["files"] if f["path"] == "/etc/assisted/controller.env")
    assert env["mode"] == 0o600
    text = base64.b64decode(env["contents"]["source"].split("base64,", 1)[1]).decode()
    assert f"INVENTORY_URL='{service.url}'" in text.splitlines()
    assert {f"HOST_ID='{HOST}'", f"INFRA_ENV_ID='{ie}'", f"CLUSTER_ID='{cluster['id']}'",
            "PULL_SECRET_TOKEN=''"} <= set(text.splitlines())
    missing = url.replace(HOST, "0b6a5f3e-1111-4222-8333-000000000000")
    assert requests.get(missing, timeout=10).status_code == 404


def test_logs_progress_and_upload(service: RefService) -> None:
    ie = installing_host(service, status="error")
    cluster_id = service.host(ie, HOST)["cluster_id"]
    service.api("PUT", f"/v2/infra-envs/{ie}/hosts/{HOST}/logs-progress", json={"logs_state": "collecting"},
                expected=204)
    assert service.host(ie, HOST)["logs_info"] == "collecting"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("logs/dmesg.log")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    url = f"{service.url}{BASE}/v2/clusters/{cluster_id}/logs"
    params = {"logs_type": "host", "infra_env_id": ie, "host_id": HOST}
    resp = requests.post(url, params=params, files={"upfile": ("logs.tar.gz", archive.getvalue())}, timeout=10)
    assert resp.status_code == 204, resp.text
    raw = service.session.get(f"{service.url}/api/reference/clusters/{cluster_id}/hosts/{HOST}/logs", timeout=10)
    assert raw.content == archive.getvalue()
    assert service.host(ie, HOST)["logs_collected_at"]
    bad = requests.post(url, params={"logs_type": "host"}, files={"upfile": ("x", b"y")}, timeout=10)
    assert bad.status_code == 400
    assert requests.post(url, params=params, data=b"x", timeout=10).status_code == 400


def instructions(svc: RefService, ie: str) -> list[dict[str, Any]]:
    return svc.api("GET", f"/v2/infra-envs/{ie}/hosts/{HOST}/instructions")["instructions"]  # type: ignore


def reply(svc: RefService, ie: str, step: dict[str, Any], exit_code: int = 0, output: str = "",
          error: str = "") -> None:
    body = {"step_id": step["step_id"], "step_type": step["step_type"], "exit_code": exit_code, "output": output,
            "error": error}
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts/{HOST}/instructions", json=body, expected=204)


def test_installing_hosts_get_write_image_then_reboot(image_file: Path, service: RefService) -> None:
    ie = installing_host(service)
    assert [s["step_type"] for s in instructions(service, ie)] == []  # no installation disk chosen yet
    service.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{HOST}/installation-disk",
                 json={"path": "/dev/loop7"})
    (step,) = instructions(service, ie)
    assert step["step_type"] == "write-image"
    args = json.loads(step["args"][0])
    assert spec.errors("write_image_request", args) == []
    assert args["image_url"] == "/api/reference/os-image" and args["target_device"] == "/dev/loop7"
    assert args["ignition_from_service"] is True and args["host_id"] == HOST
    served = requests.get(service.url + args["image_url"], timeout=10).content
    assert served == image_file.read_bytes()
    assert args["image_sha256"] == hashlib.sha256(served).hexdigest()
    assert instructions(service, ie) == []  # not handed out twice while it runs
    reply(service, ie, step, output=json.dumps({"device": "/dev/loop7"}))
    (step,) = instructions(service, ie)
    assert step["step_type"] == "reboot"
    assert spec.errors("reboot_request", json.loads(step["args"][0])) == []
    assert instructions(service, ie) == []


def test_a_failed_write_image_reply_puts_the_host_in_error(image_file: Path, service: RefService) -> None:
    ie = installing_host(service)
    service.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{HOST}/installation-disk", json={"path": "/dev/sdz"})
    (step,) = instructions(service, ie)
    reply(service, ie, step, exit_code=-1, error="refusing to write to /dev/sdz: No such file or directory")
    host = service.host(ie, HOST)
    assert host["status"] == "error"
    assert host["status_info"] == "Failed - refusing to write to /dev/sdz: No such file or directory"
    types = [s["step_type"] for s in instructions(service, ie)]
    assert types == ["logs-gather", "stop-installation"]
    (logs,) = [s for s in instructions(service, ie) if s["step_type"] == "logs-gather"]
    assert spec.errors("logs_gather_cmd_request", json.loads(logs["args"][0])) == []


FIRSTBOOT = Path(__file__).resolve().parents[2] / "container" / "os-image" / "assisted-firstboot"


def test_the_installed_systems_first_boot_reports_the_host_done(tmp_path: Path) -> None:
    """The lab OS image's first-boot script, run on the Ignition the service hands write-image, under token auth:
    it writes the Ignition's files (the controller's settings 0600) and reports Joined then Done with the agent
    token, as the real cluster's controller does, and the host and its single-node cluster are installed."""
    with start_service(tmp_path, auth="token") as svc:
        cluster = svc.create_cluster(control_plane_count=1)
        ie = str(svc.create_infra_env(cluster_id=cluster["id"])["id"])
        agent = requests.Session()
        agent.headers["X-Secret-Key"] = svc.token(ie)
        hosts = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts"
        assert agent.post(hosts, json={"host_id": HOST}, timeout=10).status_code == 201
        svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{HOST}/status", json={"status": "installing"})
        svc.call("PATCH", f"/api/reference/clusters/{cluster['id']}/document", json={"status": "installing"})
        resp = agent.put(f"{hosts}/{HOST}/progress", json={"current_stage": "Rebooting"}, timeout=10)
        assert resp.status_code == 200, resp.text
        ignition = agent.get(f"{svc.url}{BASE}/v2/infra-env/{ie}/hosts/{HOST}/downloads/ignition", timeout=10)
        assert ignition.status_code == 200
        root = tmp_path / "root"
        (root / "boot" / "ignition").mkdir(parents=True)
        (root / "boot" / "ignition" / "config.ign").write_bytes(ignition.content)
        run = subprocess.run(["bash", str(FIRSTBOOT)], env={**os.environ, "ASSISTED_FIRSTBOOT_ROOT": str(root)},
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "reported Done" in run.stderr
        assert svc.token(ie) not in run.stderr + run.stdout
        env = root / "etc" / "assisted" / "controller.env"
        assert env.stat().st_mode & 0o777 == 0o600
        assert f"PULL_SECRET_TOKEN='{svc.token(ie)}'" in env.read_text()
        assert (root / "etc" / "assisted" / "host").read_text() == f"{HOST} bootstrap {cluster['id']}"
        assert (root / "var" / "lib" / "assisted" / "firstboot.done").exists()
        host = svc.host(ie, HOST)
        assert host["status"] == "installed" and host["progress"]["current_stage"] == "Done"
        stages = [e["message"] for e in svc.api("GET", "/v2/events", params={"host_id": HOST})]
        assert any("Joined" in m for m in stages) and any("Done" in m for m in stages)
        deadline = time.monotonic() + 30
        while svc.cluster(cluster["id"])["status"] != "installed":
            assert time.monotonic() < deadline, svc.cluster(cluster["id"])["status_info"]
            time.sleep(0.2)

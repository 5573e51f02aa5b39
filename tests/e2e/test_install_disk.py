"""The whole installation with real processes: a real agent in a namespaced host, the reference service in the
hub, an OS image the service serves, a loop device as the installation disk, reboot in dry-run.

One shortcut is unavoidable here: this VM (2 cores, no DNS for the cluster domains, no NTP) can never pass the
service's gating validations, so after the real discovery (registration and inventory) the test moves the host
and its cluster to ``installing`` -- exactly the state the core reaches after ``preparing-successful``. From
there everything is the product: the service hands out write-image, the agent streams the image, reports
progress the service validates, places the host's Ignition, reports Rebooting and the service marks the host
installed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.install_images import MIB, BuiltImage, build_image, loop_device, mounted, run
from tests.support.netns import Network
from tests.support.service import RefService

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build_image(tmp_path_factory.mktemp("ainst-e2e-image"))


@pytest.fixture
def network() -> Iterator[Network]:
    with Network(tag="i") as net:
        yield net


def force_installing(svc: RefService, ie: str, host_id: str, disk: str) -> None:
    """Skip the gating this VM cannot pass: host and cluster to installing, the loop device as the disk."""
    svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{host_id}/installation-disk", json={"path": disk})
    cluster_id = svc.host(ie, host_id)["cluster_id"]
    deadline = time.monotonic() + 20
    while svc.cluster(cluster_id)["status"] != "installing":
        assert time.monotonic() < deadline, "the cluster did not stay in installing"
        svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{host_id}/status", json={"status": "installing"})
        svc.call("PATCH", f"/api/reference/clusters/{cluster_id}/document",
                 json={"status": "installing", "status_info": "Installation in progress"})
        time.sleep(0.3)


def progress_updates(svc: RefService, host_id: str) -> list[tuple[str, int]]:
    out = []
    for r in svc.requests_seen():
        if r["method"] == "PUT" and r["path"].endswith(f"/hosts/{host_id}/progress"):
            body = json.loads(r["body"])
            out.append((f"{body['current_stage']} {body.get('progress_info', '')}".strip(), int(r["status"])))
    return out


def start(network: Network, svc: RefService, tmp_path: Path, *, ie: str, args: tuple[str, ...] = (), **kw: Any) -> Any:
    host = network.hosts[0] if network.hosts else network.add_host()
    return host.start_agent(svc.agent_url, ie, args=["--dry-run", *args],  # type: ignore[attr-defined]
                            env={"AGENT_REBOOT_MARKER": str(tmp_path / "reboots.jsonl")},
                            log=tmp_path / f"agent-{time.monotonic_ns()}.log", **kw)


def test_discovery_to_installed(network: Network, image: BuiltImage, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFERENCE_SERVICE_OS_IMAGE", str(image.file("xz")[0]))
    with loop_device(96 * MIB) as disk, network.start_service(tmp_path, extra=["--dry-run-install"]) as svc:
        cluster = svc.create_cluster(control_plane_count=1)
        ie = str(svc.create_infra_env(cluster_id=cluster["id"])["id"])
        with start(network, svc, tmp_path, ie=ie) as agent:
            host = svc.wait_host(ie, lambda h: bool(h.get("inventory")), timeout=90)
            force_installing(svc, ie, host["id"], disk.path)
            host = svc.wait_host(ie, lambda h: h["status"] in ("installed", "error"), timeout=120)
            assert host["status"] == "installed", (host["status_info"], agent.log[-3000:])
        updates = progress_updates(svc, host["id"])
        assert all(status == 200 for _, status in updates), updates
        stages = [u for u, _ in updates]
        assert stages[:3] == ["Starting installation bootstrap", "Installing bootstrap", "Writing image to disk 0%"]
        assert stages[-2:] == ["Writing image to disk 100%",
                               "Rebooting Installation completed, server is going to reboot."]
        (write_reply,) = svc.replies(host["id"], "write-image")
        assert write_reply.get("exit_code", 0) == 0
        output = json.loads(write_reply["output"])
        assert output["image_sha256"] == image.file("xz")[1] and output["device"] == disk.path
        assert output["bytes_written"] == image.size
        (reboot_reply,) = svc.replies(host["id"], "reboot")
        assert json.loads(reboot_reply["output"])["dry_run"] is True
        (record,) = [json.loads(x) for x in (tmp_path / "reboots.jsonl").read_text().splitlines()]
        assert record["step_type"] == "reboot" and record["reason"].startswith("Installation completed")
        # the disk: the image's partitions, and the Ignition the service generated for this host
        table = json.loads(run(["sfdisk", "--json", disk.path]).stdout)["partitiontable"]
        assert [p["name"] for p in table["partitions"]] == ["EFI-SYSTEM", "boot", "root"]
        run(["partx", "-u", disk.path])
        boot = next(p["node"] for p in table["partitions"] if p["name"] == "boot")
        with mounted(boot) as root:
            ignition = json.loads((root / "ignition" / "config.ign").read_text())
        assert ignition["ignition"]["version"] == "3.2.0"
        assert any(host["id"] in f["contents"]["source"] for f in ignition["storage"]["files"])


def test_sigterm_mid_write_ends_in_failed_and_a_clean_restart(
    network: Network, image: BuiltImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent is stopped (SIGTERM, 1 s grace) while write-image is writing (the service serves the image
    slowly): the step reports Failed before it is killed, the disk is left without a partition table, and a
    restarted agent serves the host in error (logs-gather, stop-installation)."""
    monkeypatch.setenv("REFERENCE_SERVICE_OS_IMAGE", str(image.file("none")[0]))
    monkeypatch.setenv("REFERENCE_SERVICE_OS_IMAGE_RATE", str(8 * MIB))
    with loop_device(96 * MIB) as disk, network.start_service(tmp_path) as svc:
        cluster = svc.create_cluster(control_plane_count=1)
        ie = str(svc.create_infra_env(cluster_id=cluster["id"])["id"])
        with start(network, svc, tmp_path, ie=ie, args=("--shutdown-grace", "1")) as agent:
            host = svc.wait_host(ie, lambda h: bool(h.get("inventory")), timeout=90)
            force_installing(svc, ie, host["id"], disk.path)
            writing = svc.wait_host(ie, lambda h: h["progress"].get("current_stage") == "Writing image to disk"
                                    and h["progress"].get("progress_info") not in ("0%", "100%"), timeout=60)
            agent.signal(signal.SIGTERM)
            agent.wait(timeout=60)
        host = svc.host(ie, host["id"])
        assert host["status"] == "error", host["status_info"]
        assert host["status_info"] == "Failed - the write was interrupted by SIGTERM (the agent is stopping)"
        assert int(writing["progress"]["progress_info"].rstrip("%")) < 100
        assert disk.read(512, 8) != b"EFI PART"
        with start(network, svc, tmp_path, ie=ie):
            svc.wait_host(ie, lambda h: h.get("logs_info") == "completed", timeout=90, host_id=host["id"])
            svc.wait_replies(host["id"], "stop-installation", timeout=30)
            assert svc.host(ie, host["id"])["status"] == "error"

"""Preparation for installation end to end: the real agent measures a loop device and pulls from a registry.

The reference service hands a host in preparing-for-installation the disk-speed and image checks; the agent
(the real daemon and runner) measures the installation disk -- given by a by-path style name with colons --
and pulls the required image from a docker-registry on loopback; the host becomes preparing-successful and
the disk's bytes are unchanged.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.disks import MIB, digest, loop_device
from tests.support.podman import needs_podman, podman_lab
from tests.support.service import start_agent, start_service


@needs_podman
def test_real_agent_prepares_a_host_for_installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = Path("/dev") / f"apre-{uuid.uuid4().hex[:8]}"
    links.mkdir()
    try:
        with podman_lab(tmp_path) as lab, loop_device(tmp_path) as dev:
            image = lab.publish(f"apre-release-{uuid.uuid4().hex[:6]}")
            monkeypatch.setenv("REFERENCE_SERVICE_PREINSTALL_IMAGES", image)
            disk = links / "pci-0000:00:1f.2-ata-1"
            disk.symlink_to(dev)
            before = digest(dev)
            with start_service(tmp_path) as svc:
                cluster = svc.create_cluster(control_plane_count=1)
                ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
                env = {**lab.env, "AGENT_DISK_SPEED_BYTES": str(MIB)}
                with start_agent(svc.url, ie, env=env, log=tmp_path / "agent.log") as agent:
                    host = svc.wait_host(ie, lambda h: bool(h.get("inventory")), timeout=60)
                    # The disk and the status in one change: an inventory reply arriving between two changes
                    # (one is asked for on every 1 s poll before preparation) picks the inventory's own disk
                    # again, as this one is none of its disks, and the agent then refuses to measure /.
                    svc.call("PATCH", f"/api/reference/infra-envs/{ie}/hosts/{host['id']}/document", json={
                        "installation_disk_path": str(disk), "installation_disk_id": str(disk),
                        "status": "preparing-for-installation"})

                    def prepared(h: dict[str, Any]) -> bool:
                        return bool(h["status"] != "preparing-for-installation")

                    done = svc.wait_host(ie, prepared, timeout=120)
                    assert done["status"] == "preparing-successful", (done["status_info"], agent.log[-3000:])
                measured = svc.replies(host["id"], "installation-disk-speed-check")
                pulled = svc.replies(host["id"], "container-image-availability")
            # an instruction that overlapped the running measurement gets the Go guard's exit 0, no output ...
            assert all(r.get("output") or r.get("exit_code", 0) == 0 for r in measured), measured
            assert [json.loads(r["output"])["path"] for r in measured if r.get("output")] == [str(disk)]
            # so does one that overlapped the running pull (the service asks on every poll until it has the
            # images' statuses, as the real service; the pull may outlast the 1 s poll interval)
            assert all(r.get("output") or r.get("exit_code", 0) == 0 for r in pulled), pulled
            assert [r.get("exit_code", 0) for r in pulled if r.get("output")] == [0]
            speed = json.loads(done["disks_info"])
            assert [d["path"] for d in speed] == [str(disk)]
            assert speed[0]["disk_speed"]["tested"] is True and speed[0]["disk_speed"]["exit_code"] == 0
            images = json.loads(done["images_status"])
            assert images[image]["result"] == "success" and images[image]["size_bytes"] > 0
            assert sorted(p.name for p in links.iterdir()) == [disk.name]
            assert digest(dev) == before
    finally:
        for entry in links.iterdir():
            entry.unlink()
        links.rmdir()

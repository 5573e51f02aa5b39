"""The reference service's preparation phase driven by disk-speed and image replies (real lifecycle, in-process).

A host preparing for installation is handed both checks; only when both results are in and good does it
become preparing-successful (and the single-node cluster moves on to installing); a failed image pull makes
it preparing-failed, a failed disk measurement makes it insufficient, as in the real service.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas

RELEASE = "quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64"
DISK = "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"


class Prep:
    def __init__(self, svc: ReferenceService, ie: str, host_id: str) -> None:
        self.svc, self.ie, self.host_id = svc, ie, host_id

    def steps(self) -> dict[str, list[str]]:
        got = self.svc.next_steps(self.ie, self.host_id, int(time.time()), None)
        return {i["step_type"]: i["args"] for i in got["instructions"]}

    def reply(self, step_type: str, output: dict[str, Any], exit_code: int = 0, error: str = "") -> None:
        body: dict[str, Any] = {"step_id": f"{step_type}-1", "step_type": step_type, "output": json.dumps(output)}
        if exit_code:
            body["exit_code"] = exit_code
        if error:
            body["error"] = error
        self.svc.post_reply(self.ie, self.host_id, body)

    def host(self) -> dict[str, Any]:
        found = self.svc.store.get_host(self.ie, self.host_id)
        assert found is not None
        return found

    def statuses_seen(self) -> list[str]:
        return [e["message"] for e in self.svc.store.events(host_id=self.host_id)]


@pytest.fixture
def prep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Prep]:
    monkeypatch.delenv("REFERENCE_SERVICE_PREINSTALL_IMAGES", raising=False)
    load_areas()
    store = Store(tmp_path / "service.db")
    svc = ReferenceService(store, Settings())
    cid, ie, hid = (str(uuid.uuid4()) for _ in range(3))
    store.save_cluster({"id": cid, "kind": "Cluster", "name": "sno", "status": "preparing-for-installation",
                        "control_plane_count": 1, "ocp_release_image": RELEASE})
    store.save_infra_env({"id": ie, "kind": "InfraEnv", "name": "ie", "cluster_id": cid})
    store.save_host({"id": hid, "kind": "Host", "infra_env_id": ie, "cluster_id": cid, "role": "master",
                     "bootstrap": True, "status": "preparing-for-installation", "installation_disk_path": DISK,
                     "_checked_in": time.time(), "media_status": "connected"})
    try:
        yield Prep(svc, ie, hid)
    finally:
        store.close()


def test_both_checks_good_make_the_host_prepared(prep: Prep) -> None:
    steps = prep.steps()
    assert steps["installation-disk-speed-check"] == [json.dumps({"path": DISK}), "480.00"]
    assert json.loads(steps["container-image-availability"][0]) == {"images": [RELEASE], "timeout": 960}

    prep.reply("installation-disk-speed-check", {"io_sync_duration": 3, "path": DISK})
    assert prep.host()["status"] == "preparing-for-installation"  # images still unknown
    assert "installation-disk-speed-check" not in prep.steps()  # measured once per disk

    prep.reply("container-image-availability", {"images": [{"name": RELEASE, "result": "success"}]})
    assert any("to preparing-successful" in m for m in prep.statuses_seen())
    assert prep.host()["status"] == "installing"  # the single-node cluster starts installing
    info = {v["id"]: v for vs in json.loads(prep.host()["validations_info"]).values() for v in vs}
    assert info["sufficient-installation-disk-speed"]["message"] == "Speed of installation disk is sufficient"


def test_failed_image_pull_makes_the_host_preparing_failed(prep: Prep) -> None:
    prep.reply("installation-disk-speed-check", {"io_sync_duration": 3, "path": DISK})
    prep.reply("container-image-availability", {"images": [{"name": RELEASE, "result": "failure"}]}, exit_code=2)
    assert any("to preparing-failed" in m and RELEASE in m for m in prep.statuses_seen())
    assert json.loads(prep.host()["images_status"])[RELEASE]["result"] == "failure"


def test_failed_disk_measurement_makes_the_host_insufficient(prep: Prep) -> None:
    prep.reply("installation-disk-speed-check", {"path": DISK}, exit_code=124,
               error=f"disk speed check on {DISK} did not finish within 480 seconds")
    assert any("to insufficient" in m and "disk speed measurement failed" in m for m in prep.statuses_seen())
    assert json.loads(prep.host()["disks_info"]) == [
        {"path": DISK, "disk_speed": {"tested": True, "exit_code": 124, "speed_ms": 0}}]


def test_slow_disk_is_only_a_warning_event(prep: Prep) -> None:
    prep.reply("installation-disk-speed-check", {"io_sync_duration": 25, "path": DISK})
    events = prep.svc.store.events(host_id=prep.host_id)
    assert any(e["severity"] == "warning" and "25 ms" in e["message"] for e in events)
    assert prep.host()["status"] == "preparing-for-installation"


def test_empty_disk_speed_output_is_ignored_and_the_check_sent_again(prep: Prep) -> None:
    # The Go agent answers "" when a measurement is already running; the real service records nothing
    # (assisted-service-api.md section 9), so the disk must not count as measured.
    prep.svc.post_reply(prep.ie, prep.host_id, {"step_id": "installation-disk-speed-check-1",
                                                 "step_type": "installation-disk-speed-check", "output": ""})
    assert not prep.host().get("disks_info")
    assert prep.host()["status"] == "preparing-for-installation"
    assert "installation-disk-speed-check" in prep.steps()
    # a failure without output still counts against the disk (no preparation timeout would end the wait)
    prep.svc.post_reply(prep.ie, prep.host_id, {"step_id": "installation-disk-speed-check-2", "exit_code": 124,
                                                 "step_type": "installation-disk-speed-check", "output": ""})
    assert json.loads(prep.host()["disks_info"])[0]["disk_speed"]["exit_code"] == 124


def test_the_image_check_is_issued_until_its_result_is_in_and_the_agents_guard_changes_nothing(prep: Prep) -> None:
    """As the real service, container-image-availability goes with every poll while an image has no status;
    a pull that outlasts the poll interval (1 s in the e2e tests) is asked for again, and the agent's guard
    answers that second instruction exit 0 with no output, which the real service skips. So a host that
    pulled once may have two replies of the step in its history: the e2e test counts the one with output."""
    prep.reply("installation-disk-speed-check", {"io_sync_duration": 3, "path": DISK})
    assert "container-image-availability" in prep.steps()
    assert "container-image-availability" in prep.steps()  # the pull has not answered yet: asked again
    prep.svc.post_reply(prep.ie, prep.host_id, {"step_id": "container-image-availability-2",
                                                 "step_type": "container-image-availability", "output": ""})
    assert not prep.host().get("images_status") and prep.host()["status"] == "preparing-for-installation"
    prep.reply("container-image-availability", {"images": [{"name": RELEASE, "result": "success"}]})
    assert prep.host()["status"] == "installing"
    assert "container-image-availability" not in prep.steps()
    replies = prep.svc.store.replies(prep.host_id)
    assert [r["exit_code"] for r in replies if r["step_type"] == "container-image-availability"] == [0, 0]


@pytest.mark.parametrize(
    "change",
    [
        {"inventory": json.dumps({"boot": {"current_boot_mode": "uefi", "device_type": "persistent"}})},
        {"installer_args": json.dumps(["--save-partlabel", "data"])},
    ],
)
def test_no_disk_speed_check_for_persistent_boot_or_saved_partitions(prep: Prep, change: dict[str, Any]) -> None:
    prep.svc.store.save_host({**prep.host(), **change})
    assert "installation-disk-speed-check" not in prep.steps()  # assisted-service-api.md 4.2
    prep.reply("container-image-availability", {"images": [{"name": RELEASE, "result": "success"}]})
    assert any("to preparing-successful" in m for m in prep.statuses_seen())  # not stuck pending

"""The installation scenarios of the fault suite (bench/faults.py): the reference service drives a dry-run
installation of a real agent onto a loop device, and is killed (-9) and restarted mid-install; and a write-image
whose disk fills up half-way (a loop device over a sparse file on a tiny tmpfs: thin provisioning run dry).

The host cannot pass the service's gating validations on this machine (no cluster DNS, no NTP), so, as in
tests/e2e/test_install_disk.py, after the real registration and inventory the host and its cluster are moved to
``installing``; from there the service hands out write-image and reboot, and the agent streams the image the
service serves, reports progress and replies. Both run on 127.0.0.1; steps that probe networks are disabled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faults import ENV, Tally, check_crashes, free_port, host_id, integrity, setup, wait

from rules.states import OFF_HOST_STEPS
from tests.support.install_images import MIB, BuiltImage, build_image, loop_device
from tests.support.service import RefService, start_agent, start_service

#: The service's variables (reference_service.settings) for the image and its rate, read by the service at start.
OS_IMAGE_ENV, OS_IMAGE_RATE_ENV = "REFERENCE_SERVICE_OS_IMAGE", "REFERENCE_SERVICE_OS_IMAGE_RATE"

#: Bytes/s the service serves the 48 MiB image at during the restarts: about 6 s of writing, so a kill lands
#: mid-write however loaded the machine is.
SLOW_IMAGE_RATE = 8 * MIB
#: The tmpfs under the disk-full loop device: the 96 MiB device runs out of backing store after 16 MiB.
TINY_FS = "16m"
#: Bookkeeping of the service's install rules a new installation round starts without.
ROUND_FIELDS = ("_image_written", "_reboot_issued", "_write_image_issued_at")
#: The host-in-error follow-ups are not what these scenarios measure (and stop-installation runs podman).
DRY = ["--dry-run-install"]  # a dry-run installer reports Rebooting last: that is installed
DISABLED = ",".join((*OFF_HOST_STEPS, "logs-gather", "stop-installation"))


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set variables the service and agents inherit (start_service passes os.environ), restored after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def arm(svc: RefService, ie: str, host: str, disk: str) -> None:
    """Start an installation round: the loop device as the disk, the rules' bookkeeping and progress reset,
    host and cluster to ``installing`` (the documents edited through the test-mode routes, as the e2e test does)."""
    svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{host}/installation-disk", json={"path": disk})
    doc = svc.call("PATCH", f"/api/reference/infra-envs/{ie}/hosts/{host}/document",
                   json={**dict.fromkeys(ROUND_FIELDS), "progress": {}})
    cluster_id = str(doc["cluster_id"])
    deadline = time.monotonic() + 20
    while svc.cluster(cluster_id)["status"] != "installing" or svc.host(ie, host)["status"] != "installing":
        assert time.monotonic() < deadline, "the host and cluster did not stay in installing"
        svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{host}/status", json={"status": "installing"})
        svc.call("PATCH", f"/api/reference/clusters/{cluster_id}/document",
                 json={"status": "installing", "status_info": "Installation in progress"})
        time.sleep(0.3)


def stage(svc: RefService, ie: str, host: str) -> tuple[str, str]:
    try:
        progress = svc.host(ie, host).get("progress") or {}
    except Exception:
        return "", ""
    return str(progress.get("current_stage") or ""), str(progress.get("progress_info") or "")


def write_replies(svc: RefService, host: str) -> list[dict[str, Any]]:
    try:
        return svc.replies(host, "write-image")
    except Exception:
        return []


def install_restarts(t: Tally, work: Path, image: BuiltImage, restarts: int) -> None:
    """``restarts`` rounds of installation, each with the service killed -9 mid-install and restarted: all but
    the last once the image is written (placing the Ignition, replying, rebooting: the installation must
    complete across the restart), the last while the image streams (the download breaks: write-image must
    fail with a clear reply the restarted service stores, and the host go to error)."""
    port, db = free_port(), work / "install-restarts.db"
    hid, raw = host_id(80), image.file("none")[0]
    with environment(**{OS_IMAGE_ENV: str(raw), OS_IMAGE_RATE_ENV: str(SLOW_IMAGE_RATE), "DISABLED_STEPS": DISABLED}):
        with start_service(work, port=port, db=db, extra=DRY) as svc:
            ie = setup(svc)
        agent_env = {**ENV, "AGENT_REBOOT_MARKER": str(work / "reboots.jsonl")}
        with loop_device(96 * MIB) as disk, start_agent(svc.url, ie, args=["--dry-run", "--host-id", hid],
                                                        env=agent_env, log=work / "install-agent.log") as agent:
            for round_ in range(restarts + 1):
                with start_service(work, port=port, db=db, extra=DRY) as svc:
                    if round_:
                        check_round(t, svc, ie, hid, round_ - 1, mid_write=round_ == restarts)
                    if round_ == restarts:
                        count = len(write_replies(svc, hid))
                        if count > restarts:
                            t.duplicates += count - restarts
                            t.notes.append(f"install: {count} write-image replies for {restarts} rounds")
                        t.duplicates += len(svc.hosts(ie)) - 1
                        break
                    wait(lambda s=svc: bool(s.hosts(ie)) and bool(s.hosts(ie)[0].get("inventory")), 90)  # type: ignore[misc]
                    arm(svc, ie, hid, disk.path)
                    if round_ == restarts - 1:  # last: a host in error polls every 120 s
                        reached = wait(lambda s=svc: stage(s, ie, hid)[0] == "Writing image to disk"  # type: ignore[misc]
                                       and stage(s, ie, hid)[1] not in ("", "0%", "100%"), 90)
                    else:
                        reached = wait(lambda s=svc: stage(s, ie, hid)[1] == "100%", 90)  # type: ignore[misc]
                    if not reached:
                        t.notes.append(f"install round {round_}: the write never reached {stage(svc, ie, hid)}")
                    os.kill(svc.proc.pid, signal.SIGKILL)
                    t.faults += 1
                    svc.proc.wait(10)
            check_crashes(t, [agent], "install restarts")
    t.integrity.append(integrity(db))


def check_round(t: Tally, svc: RefService, ie: str, hid: str, round_: int, *, mid_write: bool) -> None:
    """After the restart: the round's write-image reply arrived and the host ended where it should."""
    if not wait(lambda: len(write_replies(svc, hid)) >= round_ + 1, 90):
        t.lost += 1
        t.notes.append(f"install round {round_}: no write-image reply after the restart")
        return
    last = write_replies(svc, hid)[-1]
    if mid_write and not (last.get("exit_code") and "download" in str(last.get("error"))):
        t.notes.append(f"install round {round_}: the broken download's reply: {last}"[:400])
        t.lost += 1
    want = "error" if mid_write else "installed"
    if not wait(lambda: svc.host(ie, hid)["status"] == want, 60):
        t.lost += 1
        t.notes.append(f"install round {round_}: host {svc.host(ie, hid)['status']}, not {want}")


@contextlib.contextmanager
def tiny_fs(work: Path) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="ainst-faults-full-", dir=work))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY_FS}", "ainst-faults-full", str(where)], check=True,
                   timeout=30)
    try:
        yield where
    finally:
        for _ in range(10):
            if subprocess.run(["umount", str(where)], capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.3)


def disk_full(t: Tally, work: Path, image: BuiltImage) -> None:
    """write-image to a 96 MiB loop device whose backing file (on a 16 MiB tmpfs) runs out of space while the
    48 MiB image is written: the agent must reply with a failure that says the disk is full, and live on."""
    hid = host_id(81)
    with environment(**{OS_IMAGE_ENV: str(image.file("none")[0]), "DISABLED_STEPS": DISABLED}), \
            tiny_fs(work) as fs, loop_device(96 * MIB, directory=fs) as disk, \
            start_service(work, db=work / "full.db") as svc:
        ie = setup(svc)
        with start_agent(svc.url, ie, args=["--dry-run", "--host-id", hid], env=ENV,
                         log=work / "full-agent.log") as agent:
            wait(lambda: bool(svc.hosts(ie)) and bool(svc.hosts(ie)[0].get("inventory")), 90)
            arm(svc, ie, hid, disk.path)
            t.faults += 1
            if not wait(lambda: bool(write_replies(svc, hid)), 120):
                t.lost += 1
                t.notes.append("disk full: no write-image reply")
            else:
                (reply,) = write_replies(svc, hid)
                error = str(reply.get("error") or "")
                if not reply.get("exit_code") or "full" not in error:
                    t.crashes += 1  # counted against the agent: a full disk must be a failure that says so
                    t.notes.append(f"disk full: unclear reply {reply}"[:400])
                if not wait(lambda: svc.host(ie, hid)["status"] == "error", 30):
                    t.lost += 1
                    t.notes.append(f"disk full: host {svc.host(ie, hid)['status']}, not error")
                else:
                    t.notes.append(f"disk full: host error, {svc.host(ie, hid)['status_info']}"[:300])
            check_crashes(t, [agent], "disk full")
            t.duplicates += len(svc.hosts(ie)) - 1
        t.integrity.append(integrity(svc.db))


def scenarios(t: Tally, work: Path, restarts: int) -> list[tuple[str, Any]]:
    """The two scenarios as (name, run) for the suite; both need root (loop devices, a tmpfs)."""
    if os.geteuid() != 0:
        t.notes.append("install scenarios: skipped, need root")
        return []
    built: list[BuiltImage] = []

    def image() -> BuiltImage:
        if not built:
            where = work / "image"
            where.mkdir(exist_ok=True)
            built.append(build_image(where))
        return built[0]

    return [("service -9 and restart mid-install", lambda: install_restarts(t, work, image(), restarts)),
            ("disk full during write-image", lambda: disk_full(t, work, image()))]

"""The service's database on a real ext4 on a loop device (issue 26): frozen with fsfreeze, ``/healthz`` answers
at once all along and says the storage is stuck; cut from its power (tests/support/ext4: the device as the
kernel wrote it, page cache lost), every registration the service acknowledged is there after the restart."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.service import RefService, start_service
from tests.support.storage import Registrations, ext4, mounted_copy

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices)")]

FREEZE_SECONDS = 8.0
#: /healthz answers within this while the filesystem is frozen (it was a timeout: the loop was in a write).
HEALTH_BOUND = 2.0


def _infra_env(svc: RefService) -> str:
    cluster = svc.create_cluster(control_plane_count=1)
    return str(svc.create_infra_env(cluster_id=cluster["id"])["id"])


def test_health_answers_while_the_databases_filesystem_is_frozen(tmp_path: Path) -> None:
    answers: list[tuple[str, float, int, str]] = []  # (phase, seconds, status or -1, text)
    phase = ["before"]
    done = threading.Event()

    def probe(url: str) -> None:
        while not done.is_set():
            t = time.monotonic()
            try:
                resp = requests.get(url + "/healthz", timeout=HEALTH_BOUND * 2)
                answers.append((phase[0], time.monotonic() - t, resp.status_code, resp.text))
            except requests.RequestException as exc:
                answers.append((phase[0], time.monotonic() - t, -1, str(exc)))
            time.sleep(0.1)

    with ext4(tmp_path) as fs, start_service(tmp_path, db=fs.mount / "service.db") as svc:
        ie = _infra_env(svc)
        prober = threading.Thread(target=probe, args=(svc.url,), daemon=True)
        prober.start()
        writers = Registrations(svc.url, ie, threads=2)
        try:
            time.sleep(1.0)
            with fs.frozen():
                phase[0] = "frozen"
                time.sleep(FREEZE_SECONDS)
            phase[0] = "thawed"
            deadline = time.monotonic() + 30
            while not [a for a in answers if a[0] == "thawed" and a[2] == 200] and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            done.set()
            writers.finish()
            prober.join(30)
        hosts = {h["id"] for h in svc.api("GET", f"/v2/infra-envs/{ie}/hosts")}
    frozen = [a for a in answers if a[0] == "frozen"]
    late = [a for a in answers if a[1] > HEALTH_BOUND or a[2] == -1]
    assert not late, f"/healthz late or unanswered: {late[:5]}"
    assert len(frozen) >= FREEZE_SECONDS / 1.0, f"too few answers while frozen: {frozen}"
    stuck = [a for a in frozen if a[2] == 503]
    assert stuck and "storage stuck" in stuck[-1][3], frozen[-3:]
    assert [a for a in answers if a[0] == "thawed" and a[2] == 200], "not healthy again after the thaw"
    assert writers.acknowledged and set(writers.acknowledged) <= hosts


def test_acknowledged_registrations_survive_a_power_cut(tmp_path: Path) -> None:
    with ext4(tmp_path) as fs, start_service(tmp_path, db=fs.mount / "service.db") as svc:
        ie = _infra_env(svc)
        writers = Registrations(svc.url, ie)
        try:
            time.sleep(4.0)  # registrations flowing; checkpoints come and go
            deadline = time.monotonic() + 120  # and more than 20 acknowledged: at load 20, 4 s may see fewer
            while len(writers.acknowledged) <= 20 and time.monotonic() < deadline:
                time.sleep(0.1)
            os.killpg(svc.proc.pid, signal.SIGSTOP)  # the service and its committing process, at once
            before_cut = len(writers.acknowledged)
            image = fs.power_cut_copy(tmp_path / "after-the-cut.img")
            os.killpg(svc.proc.pid, signal.SIGKILL)
        finally:
            writers.finish()
    acknowledged = set(writers.acknowledged)
    assert before_cut > 20 and len(acknowledged) >= before_cut, (before_cut, writers.refused[:5])
    with mounted_copy(image) as after, start_service(tmp_path, db=after / "service.db") as svc:
        hosts = {h["id"] for h in svc.api("GET", f"/v2/infra-envs/{ie}/hosts")}
    lost = acknowledged - hosts
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged registrations lost at the power cut"

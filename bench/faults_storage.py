"""The fault suite's storage scenarios (issue 26), run by bench/faults.py with its table (root: loop devices):

- the database's filesystem frozen (``fsfreeze``) for ``FREEZE_SECONDS`` while an agent works and clients
  register hosts: ``/healthz`` must answer within ``faults_hostile.LATENCY_BOUND`` all along and say the storage
  is stuck (counted as ``health wrong`` when it does not), every step queued must be answered after the thaw;
- a power cut while clients register hosts as fast as the service acknowledges them: the service and its
  committing process stopped at once, the disk copied as the kernel wrote it (page cache lost,
  tests/support/storage), a new service started on the copy: every acknowledged registration must be there.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import requests
from faults import ENV, Tally, check_crashes, echo, host_id, integrity, queue, setup, wait
from faults_hostile import LATENCY_BOUND

from tests.support.service import start_agent, start_service
from tests.support.storage import Registrations, ext4, mounted_copy

FREEZE_SECONDS = 10.0
CUT_AFTER_SECONDS = 5.0


class HealthProbe:
    """``/healthz`` every quarter second: the worst wait, and what it said while the storage was frozen."""

    def __init__(self, url: str) -> None:
        self.url = url + "/healthz"
        self.worst = 0.0
        self.frozen = False
        self.said_stuck = 0
        self.said_ok_while_frozen = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            started, frozen = time.monotonic(), self.frozen
            try:
                resp = requests.get(self.url, timeout=LATENCY_BOUND * 5)
            except requests.RequestException:
                self.worst = max(self.worst, LATENCY_BOUND * 5)
                continue
            self.worst = max(self.worst, time.monotonic() - started)
            if frozen and self.frozen:
                self.said_stuck += resp.status_code == 503 and "storage stuck" in resp.text
                self.said_ok_while_frozen += resp.status_code == 200

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)


def frozen_filesystem(t: Tally, work: Path) -> None:
    with ext4(work) as fs, start_service(work, db=fs.mount / "frozen.db") as svc:
        ie = setup(svc)
        with start_agent(svc.url, ie, args=["--host-id", host_id(930)], env=ENV, log=work / "frozen.log") as agent:
            wait(lambda: bool(svc.hosts(ie)), 30)
            probe = HealthProbe(svc.url)
            clients = Registrations(svc.url, ie, threads=2)
            try:
                steps = [queue(svc, ie, host_id(930), [echo(f"frozen {i}", 1)]) for i in range(3)]
                time.sleep(1.0)
                t.faults += 1
                with fs.frozen():
                    probe.frozen = True
                    time.sleep(FREEZE_SECONDS)
                    probe.frozen = False
                wait(lambda: all(s in {r["step_id"] for r in svc.replies(host_id(930))} for s in steps), 90)
            finally:
                clients.finish()
                probe.finish()
            answered = {r["step_id"] for r in svc.replies(host_id(930))}
            t.lost += sum(s not in answered for s in steps)
            registered = {h["id"] for h in svc.hosts(ie)}
            t.lost += sum(h not in registered for h in clients.acknowledged)
            check_crashes(t, [agent], "frozen filesystem")
        t.latency = max(t.latency, probe.worst)
        if not probe.said_stuck:
            t.health_wrong += 1
            t.notes.append(f"frozen filesystem: /healthz never said the storage is stuck "
                           f"({probe.said_ok_while_frozen} 'ok' while frozen)")
        t.notes.append(f"frozen filesystem: /healthz worst {probe.worst:.2f} s, 'storage stuck' "
                       f"{probe.said_stuck} times, {len(clients.acknowledged)} registrations acknowledged")
        t.integrity.append(integrity(svc.db))


def power_cut(t: Tally, work: Path) -> None:
    with ext4(work) as fs, start_service(work, db=fs.mount / "cut.db") as svc:
        ie = setup(svc)
        clients = Registrations(svc.url, ie)
        try:
            time.sleep(CUT_AFTER_SECONDS)
            os.killpg(svc.proc.pid, signal.SIGSTOP)  # the service and its committing process, at once
            t.faults += 1
            image = fs.power_cut_copy(work / "after-the-cut.img")
            os.killpg(svc.proc.pid, signal.SIGKILL)
        finally:
            clients.finish()
    acknowledged = set(clients.acknowledged)
    with mounted_copy(image) as after:
        db = after / "cut.db"
        with start_service(work, db=db) as svc:
            registered = {h["id"] for h in svc.hosts(ie)}
        lost = acknowledged - registered
        t.lost += len(lost)
        t.notes.append(f"power cut: {len(acknowledged)} registrations acknowledged, {len(lost)} lost")
        t.integrity.append(integrity(db))
    image.unlink(missing_ok=True)


def scenarios(t: Tally, work: Path) -> list[tuple[str, Any]]:
    if os.geteuid() != 0:
        t.notes.append("frozen filesystem, power cut: skipped, need root (loop devices)")
        return []
    return [("the database's filesystem frozen", lambda: frozen_filesystem(t, work)),
            ("a power cut while hosts register", lambda: power_cut(t, work))]

"""The reference service's process: what it keeps in memory survives a SIGTERM, and the worker process that
checks big step replies says what the loop would say and never outlives the service."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import requests

from reference_service.store.database import KEEP_BIG_REPLIES
from tests.support.service import BASE, RefService, start_service

HOST = "11111111-2222-3333-4444-555555555555"


def _setup(svc: RefService) -> str:
    cluster = svc.create_cluster(control_plane_count=1)
    ie = str(svc.create_infra_env(cluster_id=cluster["id"])["id"])
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, expected=201)
    return ie


def test_a_sigterm_writes_what_the_service_kept_in_memory(tmp_path: Path) -> None:
    """A poll's check-in is kept in memory (a poll writes nothing); SIGTERM, as systemd stops a service, must
    still write it: uvicorn re-raises the signal after its shutdown, whose default action ends the process."""
    with start_service(tmp_path) as svc:
        ie = _setup(svc)
        resp = requests.get(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions",
                            params={"timestamp": 424242}, timeout=10)
        assert resp.status_code == 200
        os.killpg(svc.proc.pid, signal.SIGTERM)
        assert svc.proc.wait(timeout=20) == -signal.SIGTERM
        db = svc.db
    with start_service(tmp_path, db=db) as again:
        assert again.host(ie, HOST).get("timestamp") == 424242


def _children(pid: int) -> list[psutil.Process]:
    """The service's processes but the store's committing process (store.committer), there from the start."""
    return [c for c in _all_children(pid) if COMMITTER not in " ".join(c.cmdline())]


COMMITTER = "reference_service.store.committer"


def _all_children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _workers(pid: int) -> list[psutil.Process]:
    """The pool's worker processes (multiprocessing also starts a resource tracker)."""
    return [c for c in _children(pid) if "resource_tracker" not in " ".join(c.cmdline())]


def _report(peers: int) -> str:
    return json.dumps({"remote_hosts": [
        {"host_id": f"00000000-0000-0000-0000-{i:012d}",
         "l2_connectivity": [{"outgoing_nic": "eth0", "remote_ip": f"10.0.{i // 250}.{i % 250 + 1}",
                              "remote_mac": "02:00:00:00:00:01", "successful": True}],
         "l3_connectivity": [{"outgoing_nic": "eth0", "remote_ip": f"10.0.{i // 250}.{i % 250 + 1}",
                              "successful": True, "average_rtt_ms": 0.1, "packet_loss_percentage": 0}]}
        for i in range(peers)]})


def test_big_replies_are_checked_by_a_worker_that_dies_with_the_service(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        ie = _setup(svc)
        url = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions"
        assert _children(svc.proc.pid) == [], "the worker starts with the first big reply, not before"
        good = {"step_id": "connectivity-check-1", "step_type": "connectivity-check", "exit_code": 0,
                "output": _report(600)}
        assert len(json.dumps(good)) > 100_000
        assert requests.post(url, json=good, timeout=30).status_code == 204
        host = svc.host(ie, HOST)
        assert len(json.loads(host["connectivity"])["remote_hosts"]) == 600

        broken = json.loads(_report(600))
        broken["remote_hosts"][599]["l3_connectivity"][0]["successful"] = "yes"
        resp = requests.post(url, json={**good, "step_id": "connectivity-check-2", "output": json.dumps(broken)},
                             timeout=30)
        assert resp.status_code == 400
        assert "Failed to validate connectivity-check output" in resp.json()["reason"]
        assert "successful" in resp.json()["reason"]
        not_json = requests.post(url, data=b'{"step_id": "x", "output": "' + b"a" * 100_000 + b'", "bad": }',
                                 timeout=30)
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["reason"]

        workers = _children(svc.proc.pid)
        assert workers, "a big reply was checked by a worker process"
        workers += [c for c in _all_children(svc.proc.pid) if COMMITTER in " ".join(c.cmdline())]
        os.kill(svc.proc.pid, signal.SIGKILL)
        svc.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
            assert time.monotonic() < deadline, "the reply worker or the committing process outlived the service"
            time.sleep(0.1)


def test_a_host_listing_is_streamed_host_by_host(tmp_path: Path) -> None:
    """Listing a big infra-env is sent a host at a time (chunked), not built as one document: at 1,000 hosts
    with their reports that document was hundreds of MB and 0.3 s of the loop."""
    with start_service(tmp_path) as svc:
        ie = _setup(svc)
        ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(120)]
        for host_id in ids:
            svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": host_id}, expected=201)
        resp = svc.session.get(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts", timeout=30)
        assert resp.status_code == 200 and resp.headers.get("transfer-encoding") == "chunked"
        assert resp.headers["content-type"] == "application/json"
        assert [h["id"] for h in resp.json()] == [HOST, *ids]


def test_a_killed_reply_worker_is_replaced_and_no_reply_is_lost(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        ie = _setup(svc)
        url = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions"

        def post(n: int) -> int:
            reply = {"step_id": f"connectivity-check-{n}", "step_type": "connectivity-check", "exit_code": 0,
                     "output": _report(600)}
            return requests.post(url, json=reply, timeout=30).status_code

        assert post(1) == 204
        (worker,) = _workers(svc.proc.pid)
        worker.kill()
        worker.wait(10)
        assert post(2) == 204  # the broken pool's reply is checked in a thread
        assert post(3) == 204
        (again,) = _workers(svc.proc.pid)
        assert again.pid != worker.pid
        # every reply was stored; a host's history keeps the newest KEEP_BIG_REPLIES big ones
        assert KEEP_BIG_REPLIES == 2
        assert [r["step_id"] for r in svc.replies(HOST, "connectivity-check")] == \
            [f"connectivity-check-{n}" for n in (2, 3)]


def test_cluster_views_stream_their_hosts_and_list_big_fields_only_when_asked(tmp_path: Path) -> None:
    """A cluster's hosts are sent one at a time, their reports read back from the replies as they go; the
    hosts listing of a cluster has the real service's filters and leaves inventory and connectivity out
    unless asked, and the clusters listing leaves hosts out unless ``with_hosts``."""
    with start_service(tmp_path) as svc:
        ie = _setup(svc)
        url = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions"
        report = _report(600)
        reply = {"step_id": "connectivity-check-1", "step_type": "connectivity-check", "exit_code": 0,
                 "output": report}
        assert requests.post(url, json=reply, timeout=30).status_code == 204
        cluster_id = svc.host(ie, HOST)["cluster_id"]

        resp = svc.session.get(f"{svc.url}{BASE}/v2/clusters/{cluster_id}", timeout=30)
        assert resp.status_code == 200 and resp.headers.get("transfer-encoding") == "chunked"
        cluster = resp.json()
        assert cluster["id"] == cluster_id and [h["connectivity"] for h in cluster["hosts"]] == [report]
        assert "hosts" not in svc.api("GET", f"/v2/clusters/{cluster_id}", params={"exclude-hosts": "true"})

        path = f"/v2/clusters/{cluster_id}/hosts"
        (plain,) = svc.api("GET", path)
        assert plain["id"] == HOST and "connectivity" not in plain and "inventory" not in plain
        (full,) = svc.api("GET", path, params={"with-connectivity": "true", "with-inventory": "true"})
        assert full["connectivity"] == report
        assert svc.api("GET", path, params={"status": plain["status"]}) == [plain]
        assert svc.api("GET", path, params={"status": "installed"}) == []
        assert svc.api("GET", path, params={"role": "worker"}) == []

        (listed,) = svc.api("GET", "/v2/clusters")
        assert listed["id"] == cluster_id and "hosts" not in listed
        (with_hosts,) = svc.api("GET", "/v2/clusters", params={"with_hosts": "true"})
        assert [h["connectivity"] for h in with_hosts["hosts"]] == [report]

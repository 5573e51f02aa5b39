"""The user API as the real service answers it, through HTTP against the real reference service: documents
filled as the real service fills them, machine networks assigned, cluster validations, checked creations and
updates, filters, events of changes only, auth as the real local auth takes it."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reference_service import cli, spec
from reference_service.settings import TABLE
from swarm import machine as swarm_machine
from tests.support.netns import Network
from tests.support.service import BIN, RefService, start_service

BASE = "/api/assisted-install"


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RefService]:
    monkeypatch.setenv("DISABLED_STEPS", "")  # the swarm's hosts send no packets: every step is answered
    with start_service(tmp_path) as service:
        yield service


def swarm(svc: RefService, infra_env_id: str, hosts: int, seconds: float = 8) -> None:
    """``hosts`` simulated hosts registered into the infra-env, answering every step for ``seconds``."""
    proc = subprocess.run(
        [str(BIN / "assisted-reference-service"), "swarm", "--url", svc.url, "--hosts", str(hosts),
         "--infra-env-id", infra_env_id, "--interval", "0.5", "--duration", str(seconds)],
        capture_output=True, text=True, timeout=60 + seconds)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def failing(doc: dict[str, Any]) -> dict[str, str]:
    return {v["id"]: v["message"] for vs in json.loads(doc["validations_info"]).values() for v in vs
            if v["status"] != "success"}


def test_sno_host_gets_its_machine_network_and_the_fields_clients_read(svc: RefService) -> None:
    cluster = svc.create_cluster(control_plane_count=1)
    assert cluster["api_vips"] == [] and cluster["ingress_vips"] == [] and cluster["machine_networks"] == []
    assert cluster["install_completed_at"] == "0001-01-01T00:00:00.000Z"
    assert cluster["progress"]["total_percentage"] == 0
    assert cluster["status"] == "pending-for-input" and "machine-cidr-defined" in failing(cluster)
    assert spec.errors("cluster", cluster) == []
    ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
    swarm(svc, ie, 1)
    (host,) = svc.hosts(ie)
    assert host["requested_hostname"] == "swarm-00000"
    assert host["progress_stages"][0] == "Starting installation" and host["progress_stages"][-1] == "Done"
    assert host["status"] == "known", host["status_info"]
    assert spec.errors("host", host) == []
    after = svc.cluster(cluster["id"])
    assert [n["cidr"] for n in after["machine_networks"]] == ["10.64.0.0/22"]
    assert after["status"] == "ready" and failing(after) == {}, failing(after)
    categories = json.loads(after["validations_info"])
    assert {"network", "hosts-data", "configuration", "operators"} <= set(categories)
    assert spec.errors("cluster", after) == []


def test_multi_node_machine_network_comes_from_the_vips(svc: RefService) -> None:
    api, ingress = swarm_machine.cluster_vips()
    cluster = svc.create_cluster(api_vips=[{"ip": api}], ingress_vips=[{"ip": ingress}])
    assert cluster["status"] == "pending-for-input"
    ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
    swarm(svc, ie, 3, seconds=10)
    after = svc.cluster(cluster["id"])
    assert [n["cidr"] for n in after["machine_networks"]] == ["10.64.0.0/22"]
    assert sorted(h["status"] for h in after["hosts"]) == ["known"] * 3, [h["status_info"] for h in after["hosts"]]
    assert after["status"] == "ready", failing(after)
    # a VIP outside the machine network is refused, as the real update path does
    resp = svc.session.patch(f"{svc.url}{BASE}/v2/clusters/{cluster['id']}", timeout=10,
                             json={"api_vips": [{"ip": "192.168.77.5"}]})
    assert resp.status_code == 400 and "does not belong to machine-network-cidr" in resp.json()["reason"]
    assert spec.errors("error", resp.json()) == []


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("openshift_version", "3.11", "Openshift version 3.11 for CPU architecture x86_64 is not supported"),
    ("name", "Bad_Name!", "Cluster name format is not valid: 'Bad_Name!'"),
    ("pull_secret", "nope", "pull secret must be a well-formed JSON"),
    ("pull_secret", "{}", "pull secret must contain 'auths' JSON-object field"),
    ("base_dns_domain", "-bad-", "DNS format mismatch: -bad- domain name is not valid"),
])
def test_cluster_creation_is_checked(service: RefService, field: str, value: str, reason: str) -> None:
    body = {"name": "ok", "openshift_version": "4.16", "base_dns_domain": "example.com",
            "pull_secret": json.dumps({"auths": {"r.example.com": {"auth": "dTpw"}}}), field: value}
    resp = service.session.post(f"{service.url}{BASE}/v2/clusters", json=body, timeout=10)
    assert resp.status_code == 400 and reason in resp.json()["reason"], resp.text
    assert service.api("GET", "/v2/clusters") == []


def test_updates_outside_the_editable_states_are_409(service: RefService) -> None:
    cluster = service.create_cluster()
    service.call("PATCH", f"/api/reference/clusters/{cluster['id']}/document", json={"status": "installing"})
    resp = service.session.patch(f"{service.url}{BASE}/v2/clusters/{cluster['id']}", json={"name": "other"},
                                 timeout=10)
    assert resp.status_code == 409 and "cluster can be updated only in one of" in resp.json()["reason"]


def test_ids_that_are_no_uuid_are_400_and_filters_apply(service: RefService) -> None:
    resp = service.session.get(f"{service.url}{BASE}/v2/clusters/not-a-uuid", timeout=10)
    assert resp.status_code == 400 and "cluster_id in path must be of type uuid" in resp.json()["reason"]
    one, two = service.create_cluster(name="one"), service.create_cluster(name="two")
    service.create_infra_env(cluster_id=one["id"])
    service.create_infra_env(cluster_id=two["id"], static_network_config=[{"network_yaml": "interfaces: []"}])
    unbound = service.create_infra_env()
    assert unbound["openshift_version"] == "" and spec.errors("infra-env", unbound) == []
    listed = service.api("GET", "/v2/infra-envs", params={"cluster_id": two["id"]})
    assert [e["cluster_id"] for e in listed] == [two["id"]]
    assert isinstance(listed[0]["static_network_config"], str)
    assert all(spec.errors("infra-env", e) == [] for e in service.api("GET", "/v2/infra-envs"))


def test_events_record_changes_and_take_the_real_filters(svc: RefService) -> None:
    cluster = svc.create_cluster(control_plane_count=1)
    ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
    swarm(svc, ie, 1, seconds=4)
    (host,) = svc.hosts(ie)
    url = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{host['id']}/instructions"
    for n in range(5):  # failed replies are not events (the real service records changes, not replies)
        reply = {"step_id": f"ntp-synchronizer-{n}", "step_type": "ntp-synchronizer", "exit_code": -1, "error": "x"}
        assert requests.post(url, json=reply, timeout=10).status_code == 204
    events = svc.api("GET", "/v2/events", params={"cluster_id": cluster["id"]})
    assert not [e for e in events if "failed with exit code" in e["message"]]
    assert all(spec.errors("event", e) == [] for e in events)
    assert any(e["message"] == "Host swarm-00000: validation 'has-inventory' is now fixed" for e in events)
    resp = svc.session.get(f"{svc.url}{BASE}/v2/events", timeout=10,
                           params={"cluster_id": cluster["id"], "limit": 2, "offset": 1, "order": "descending"})
    assert resp.json() == list(reversed(events))[1:3]
    assert int(resp.headers["Event-Count"]) == len(events)
    assert sum(int(resp.headers[f"Severity-Count-{s}"]) for s in ("Info", "Warning", "Error", "Critical")) == \
        len(events)
    warnings = svc.api("GET", "/v2/events", params={"cluster_id": cluster["id"], "severities": "warning"})
    assert warnings and all(e["severity"] == "warning" for e in warnings)
    of_host = svc.api("GET", "/v2/events", params={"cluster_id": cluster["id"], "host_ids": host["id"]})
    assert of_host and all(e["host_id"] == host["id"] for e in of_host)
    cluster_level = svc.api("GET", "/v2/events", params={"cluster_id": cluster["id"], "cluster_level": "true"})
    assert cluster_level and all(not e.get("host_id") for e in cluster_level)


def test_installation_disk_by_disks_selected_config(svc: RefService) -> None:
    cluster = svc.create_cluster(control_plane_count=1)
    ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
    swarm(svc, ie, 1, seconds=4)
    (host,) = svc.hosts(ie)
    disks = json.loads(host["inventory"])["disks"]
    eligible = [d for d in disks if d["installation_eligibility"]["eligible"]]
    other = next(d for d in eligible if d["id"] != host["installation_disk_id"])
    updated = svc.patch_host(ie, host["id"], disks_selected_config=[{"id": other["id"], "role": "install"}])
    assert updated["installation_disk_id"] == other["id"]
    assert updated["installation_disk_path"] == f"/dev/{other['name']}"
    resp = svc.session.patch(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{host['id']}", timeout=10,
                             json={"disks_selected_config": [{"id": "/dev/disk/by-id/none", "role": "install"}]})
    assert resp.status_code == 400 and "was not found" in resp.json()["reason"]


def test_install_without_an_os_image_is_refused_with_the_reason(service: RefService) -> None:
    cluster = service.create_cluster(control_plane_count=1)
    resp = service.session.post(f"{service.url}{BASE}/v2/clusters/{cluster['id']}/actions/install", timeout=10)
    assert resp.status_code == 409 and "--os-image" in resp.json()["reason"]


def test_token_with_and_without_bearer_and_the_probes(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        url = f"{svc.url}{BASE}/v2/clusters"
        assert requests.get(url, headers={"Authorization": "test-admin-token"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Authorization": "Bearer test-admin-token"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Authorization": "wrong"}, timeout=10).status_code == 401
        for probe in ("/ready", "/health"):
            assert requests.get(svc.url + probe, timeout=10).status_code == 200


def test_help_names_the_subcommands_auth_and_how_clients_pass_the_token() -> None:
    out = subprocess.run([str(BIN / "assisted-reference-service"), "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    assert "--auth none (the default)" in out
    assert "Authorization: Bearer <token>" in out and "X-Secret-Key" in out and "REFERENCE_SERVICE_DB" in out
    subcommands = re.findall(r'args\[:1\] == \["([a-z]+)"\]', inspect.getsource(cli.main))
    assert sorted(subcommands) == ["lab", "swarm"]
    for name in subcommands:
        assert re.search(rf"^  {name} ", out, re.M), name
    read = {s.env for s in TABLE if s.env} | set(re.findall(r'environ\.get\("([A-Z_]+)"\)', inspect.getsource(spec)))
    assert read and all(name in out for name in read), read


def test_auth_none_beyond_loopback_warns(tmp_path: Path) -> None:
    """Listening on an address other hosts reach (the bridge of a namespace made here) with --auth none logs a
    warning; on loopback, or with --auth token, it does not."""
    warning = "with --auth none: anyone who can reach it may use every route"
    for name in ("loopback", "open", "token"):
        (tmp_path / name).mkdir()
    with start_service(tmp_path / "loopback") as local:
        assert warning not in local.log.read_text()
    with Network() as net:
        with net.start_service(tmp_path / "open", auth="none") as svc:
            assert warning in svc.log.read_text()
            assert requests.get(svc.url + "/ready", timeout=10).status_code == 200
        with net.start_service(tmp_path / "token", auth="token") as svc:
            assert warning not in svc.log.read_text()

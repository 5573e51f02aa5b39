"""A host's actions and a cluster's downloads through HTTP against the real reference service, with swarm hosts
(which register again when told to exit, as an agent restarted by systemd): bind, unbind, day-2 reset, host
Ignition, preflight requirements, pre-signed URLs and logs, each answer checked against the spec's model."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reference_service import spec
from reference_service.http import cluster_actions, downloads, host_actions
from tests.support.service import RefService, start_service
from tests.support.swarm_hosts import swarm_hosts, until

BASE = "/api/assisted-install/v2"


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RefService]:
    monkeypatch.setenv("DISABLED_STEPS", "")  # the swarm's hosts send no packets: every step is answered
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    with start_service(tmp_path, auth="token", extra=["--dry-run-install", "--os-image", str(image)]) as service:
        yield service


def refused(resp: requests.Response, status: int, words: str) -> None:
    assert resp.status_code == status, resp.text
    assert spec.errors("error", resp.json()) == [] and words in resp.json()["reason"], resp.text


def checked(resp: requests.Response, model: str, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    doc: dict[str, Any] = resp.json()
    assert spec.errors(model, doc) == [], spec.errors(model, doc)
    return doc


def test_bind_and_unbind_move_a_host_between_its_infra_env_and_a_cluster(svc: RefService) -> None:
    cluster = svc.create_cluster(control_plane_count=1)
    ie = svc.create_infra_env()["id"]  # late binding: no cluster
    bound_ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
    with swarm_hosts(svc, ie, 1):
        (host,) = until("a known-unbound host", lambda: [h for h in svc.hosts(ie) if h["status"] == "known-unbound"])
        url = f"{svc.url}{BASE}/infra-envs/{ie}/hosts/{host['id']}"
        refused(svc.session.post(f"{url}/actions/unbind", timeout=10), 409, "is already unbound")
        refused(svc.session.post(f"{url}/actions/bind", json={"cluster_id": "6c1bd6fc-0f47-4c1b-a4a1-a1d8a05b7ae7"},
                                 timeout=10), 400, "Failed to find cluster")
        bound = checked(svc.session.post(f"{url}/actions/bind", json={"cluster_id": cluster["id"]}, timeout=10),
                        "host")
        assert bound["status"] == "binding" and bound["cluster_id"] == cluster["id"]
        refused(svc.session.post(f"{url}/actions/bind", json={"cluster_id": cluster["id"]}, timeout=10), 409,
                "already bound")
        # told to exit, the agent registers again and is discovered in the cluster
        known = until("the host known in the cluster", lambda: (lambda h: h if h["status"] == "known" else None)(
            svc.host(ie, host["id"])))
        assert known["cluster_id"] == cluster["id"]
        until("the cluster ready", lambda: svc.cluster(cluster["id"])["status"] == "ready")
        unbound = checked(svc.session.post(f"{url}/actions/unbind", timeout=10), "host")
        assert unbound["status"] == "unbinding" and unbound.get("cluster_id") is None
        assert unbound["role"] == "auto-assign"
        until("the host known-unbound again", lambda: svc.host(ie, host["id"])["status"] == "known-unbound")
        assert svc.cluster(cluster["id"])["status"] != "ready"  # its one host is gone
    messages = [e["message"] for e in svc.api("GET", f"/v2/events?host_id={host['id']}")]
    assert any("Successfully bound" in m for m in messages) and any("Successfully unbound" in m for m in messages)
    # a host of an infra-env bound to a cluster cannot leave it
    with swarm_hosts(svc, bound_ie, 1):
        (other,) = until("a host of the bound infra-env", lambda: svc.hosts(bound_ie))
        refused(svc.session.post(f"{svc.url}{BASE}/infra-envs/{bound_ie}/hosts/{other['id']}/actions/unbind",
                                 timeout=10), 409, f"InfraEnv {bound_ie} is bound to Cluster")


def _day2(svc: RefService) -> tuple[str, str]:
    """(cluster id, infra-env id) of an imported cluster, to add hosts to (day 2)."""
    imported = svc.call("POST", f"{BASE}/clusters/import", expected=201, json={
        "name": "day2", "api_vip_dnsname": "api.day2.example.com",
        "openshift_cluster_id": "0e5c9f9a-8f3a-4b9b-9d3f-7c3f6f0a2b11"})
    return imported["id"], svc.create_infra_env(cluster_id=imported["id"])["id"]


def test_host_reset_is_for_day2_hosts(svc: RefService) -> None:
    day1 = svc.create_cluster(control_plane_count=1)
    ie1 = svc.create_infra_env(cluster_id=day1["id"])["id"]
    _, ie2 = _day2(svc)
    with swarm_hosts(svc, ie1, 1):
        (h1,) = until("a host", lambda: svc.hosts(ie1))
        refused(svc.session.post(f"{svc.url}{BASE}/infra-envs/{ie1}/hosts/{h1['id']}/actions/reset", timeout=10),
                409, "only allowed when adding hosts to an existing cluster")
    with swarm_hosts(svc, ie2, 1):
        (h2,) = until("a known day-2 host", lambda: [h for h in svc.hosts(ie2) if h["status"] == "known"])
    reset_url = f"{svc.url}{BASE}/infra-envs/{ie2}/hosts/{h2['id']}/actions/reset"
    reset = checked(svc.session.post(reset_url, timeout=10), "host")
    assert reset["status"] == "resetting-pending-user-action"
    assert reset["status_info"] == "Host requires booting into the discovery image to complete resetting the " \
                                   "installation"
    # insufficient is none of the real reset's source states (set through the test-mode route)
    svc.call("PUT", f"/api/reference/infra-envs/{ie2}/hosts/{h2['id']}/status", json={"status": "insufficient"})
    refused(svc.session.post(reset_url, timeout=10), 409, "cannot be reset in status insufficient")
    missing = "1b0d6c64-4b5e-4e0c-9e55-3c3f3f4a9c1d"
    refused(svc.session.post(f"{svc.url}{BASE}/infra-envs/{ie2}/hosts/{missing}/actions/reset", timeout=10), 404, "")


def test_a_day2_host_installs_on_its_own(svc: RefService) -> None:
    day1 = svc.create_cluster(control_plane_count=1)
    ie1 = svc.create_infra_env(cluster_id=day1["id"])["id"]
    cid, ie = _day2(svc)
    with swarm_hosts(svc, ie1, 1):
        (h1,) = until("a known host", lambda: [h for h in svc.hosts(ie1) if h["status"] == "known"])
        refused(svc.session.post(f"{svc.url}{BASE}/infra-envs/{ie1}/hosts/{h1['id']}/actions/install", timeout=10),
                409, "only allowed when adding hosts to an existing cluster")
    with swarm_hosts(svc, ie, 1):
        (host,) = until("a day-2 host", lambda: svc.hosts(ie))
        url = f"{svc.url}{BASE}/infra-envs/{ie}/hosts/{host['id']}/actions/install"
        early = svc.session.post(url, timeout=10)  # (its status moves on meanwhile: discovering, insufficient...)
        if early.status_code != 202:
            refused(early, 409, "cannot install host in state ")
            assert "state known" not in early.json()["reason"]
            until("the day-2 host known", lambda: svc.host(ie, host["id"])["status"] == "known")
            early = svc.session.post(url, timeout=10)
        started = checked(early, "host", 202)
        assert (started["status"], started["role"], started["kind"]) == ("installing", "worker",
                                                                         "AddToExistingClusterHost")
        done = until("added to the cluster", lambda: (lambda h: h if h["status"] == "added-to-existing-cluster"
                                                      else None)(svc.host(ie, host["id"])), timeout=90)
    assert done["progress"]["installation_percentage"] > 0
    assert svc.cluster(cid)["status"] == "adding-hosts"


def test_host_ignition_override_and_download(svc: RefService) -> None:
    cluster = svc.create_cluster(control_plane_count=1)
    ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
    with swarm_hosts(svc, ie, 1):
        (host,) = until("a known host", lambda: [h for h in svc.hosts(ie) if h["status"] == "known"])
        url = f"{svc.url}{BASE}/infra-envs/{ie}/hosts/{host['id']}/ignition"
        refused(svc.session.get(url, timeout=10), 409, "files can be downloaded only when status is one of")
        refused(svc.session.patch(url, json={"config": "{not json"}, timeout=10), 400, "config is not valid")
        refused(svc.session.patch(url, json={"config": '{"ignition": {"version": "2.2.0"}}'}, timeout=10), 400,
                "unsupported config version")
        extra = {"path": "/etc/extra", "contents": {"source": "data:,hello"}}
        override = json.dumps({"ignition": {"version": "3.2.0"}, "storage": {"files": [extra]}})
        resp = svc.session.patch(url, json={"config": override}, timeout=10)
        assert resp.status_code == 201 and resp.content == b""
        assert svc.host(ie, host["id"])["ignition_config_overrides"] == override
        svc.install_cluster(cluster["id"])
        until("installed", lambda: svc.cluster(cluster["id"])["status"] == "installed", timeout=90)
    doc = checked(svc.session.get(url, timeout=10), "host-ignition-params")
    config = json.loads(doc["config"])
    assert config["ignition"]["version"] == "3.2.0" and extra in config["storage"]["files"]
    assert {"path": "/etc/hostname"} .items() <= next(
        f for f in config["storage"]["files"] if f["path"] == "/etc/hostname").items()
    assert host_actions.ignition_problem(override) is None
    # an installed cluster opened to more hosts (day 2)
    day2 = checked(svc.session.post(f"{svc.url}{BASE}/clusters/{cluster['id']}/actions/allow-add-hosts", timeout=10),
                   "cluster", 202)
    assert (day2["status"], day2["kind"]) == ("adding-hosts", "AddHostsCluster")
    refused(svc.session.post(f"{svc.url}{BASE}/clusters/{cluster['id']}/actions/allow-add-workers", timeout=10), 400,
            "Expected cluster status: installed, but cluster status is: adding-hosts")


def test_preflight_requirements_by_the_clusters_kind(svc: RefService) -> None:
    sno = svc.create_cluster(control_plane_count=1)
    multi = svc.create_cluster(name="multi")
    one = checked(svc.session.get(f"{svc.url}{BASE}/clusters/{sno['id']}/preflight-requirements", timeout=10),
                  "preflight-hardware-requirements")
    three = checked(svc.session.get(f"{svc.url}{BASE}/clusters/{multi['id']}/preflight-requirements", timeout=10),
                    "preflight-hardware-requirements")
    assert one["ocp"]["master"]["quantitative"] == {"cpu_cores": 8, "ram_mib": 16384, "disk_size_gb": 100,
                                                    "installation_disk_speed_threshold_ms": 10}
    assert three["ocp"]["master"]["quantitative"]["cpu_cores"] == 4
    assert three["ocp"]["master"]["quantitative"]["network_latency_threshold_ms"] == 100
    assert three["ocp"]["worker"]["quantitative"] == {
        "cpu_cores": 2, "ram_mib": 8192, "disk_size_gb": 100, "installation_disk_speed_threshold_ms": 10,
        "network_latency_threshold_ms": 1000, "packet_loss_percentage": 10}
    assert one["operators"] == []


def _upload_logs(svc: RefService, cluster_id: str, ie: str, host_id: str | None, data: bytes) -> None:
    """As the agent's logs-gather (and the controller) upload them: multipart, the infra-env's token."""
    params = {"logs_type": "host" if host_id else "controller", "infra_env_id": ie}
    if host_id:
        params["host_id"] = host_id
    resp = requests.post(f"{svc.url}{BASE}/clusters/{cluster_id}/logs", params=params, timeout=10,
                         headers={"X-Secret-Key": svc.token(ie)}, files={"upfile": ("logs.tar.gz", data)})
    assert resp.status_code == 204, resp.text


def test_logs_and_presigned_urls(svc: RefService) -> None:
    cluster = svc.create_cluster(name="logs", control_plane_count=1)
    cid = cluster["id"]
    ie = svc.create_infra_env(cluster_id=cid)["id"]
    with swarm_hosts(svc, ie, 1):
        (host,) = until("a known host", lambda: [h for h in svc.hosts(ie) if h["status"] == "known"])
    logs = f"{svc.url}{BASE}/clusters/{cid}/logs"
    refused(svc.session.get(logs, params={"logs_type": "host", "host_id": host["id"]}, timeout=10), 409,
            f"Logs for host {host['id']} were not found")
    refused(svc.session.get(logs, params={"logs_type": "host"}, timeout=10), 400, "Host ID must be provided")
    refused(svc.session.get(logs, params={"logs_type": "controller"}, timeout=10), 409, "Controller Logs")
    _upload_logs(svc, cid, ie, host["id"], b"host-archive")
    _upload_logs(svc, cid, ie, None, b"controller-archive")
    got = svc.session.get(logs, params={"logs_type": "host", "host_id": host["id"]}, timeout=10)
    assert got.status_code == 200
    name = f"logs_bootstrap_{downloads.sanitize(host['requested_hostname'])}"
    assert f'filename="{name}.tar.gz"' in got.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        assert tar.getnames() == [f"{name}.tar.gz"]
        assert tar.extractfile(f"{name}.tar.gz").read() == b"host-archive"  # type: ignore[union-attr]
    assert svc.session.get(logs, params={"logs_type": "controller"}, timeout=10).content == b"controller-archive"
    everything = svc.session.get(logs, timeout=10)
    with tarfile.open(fileobj=io.BytesIO(everything.content)) as tar:
        assert sorted(tar.getnames()) == sorted(["cluster_metadata.json", "cluster_events.json", f"{name}.tar",
                                                 "controller_logs.tar.gz"])
        assert b"SECRET" in tar.extractfile("cluster_metadata.json").read()  # type: ignore[union-attr]

    # a pre-signed URL opens its one download without the token, until it expires
    signed = checked(svc.session.get(f"{svc.url}{BASE}/clusters/{cid}/downloads/files-presigned",
                                     params={"file_name": "logs", "logs_type": "controller"}, timeout=10),
                     "presigned-url")
    assert "api_key=" in signed["url"] and signed["expires_at"]
    assert requests.get(signed["url"], timeout=10).content == b"controller-archive"
    assert requests.get(signed["url"].replace("controller", "all"), timeout=10).status_code == 401
    assert requests.get(logs, params={"logs_type": "controller"}, timeout=10).status_code == 401
    ign = checked(svc.session.get(f"{svc.url}{BASE}/infra-envs/{ie}/downloads/files-presigned",
                                  params={"file_name": "discovery.ign"}, timeout=10), "presigned-url")
    assert f"/infra-envs/{ie}/downloads/files?file_name=discovery.ign&api_key=" in ign["url"]
    refused(svc.session.get(f"{svc.url}{BASE}/infra-envs/{ie}/downloads/files-presigned",
                            params={"file_name": "discovery.ign", "ipxe_script_type": "boot-order-control"},
                            timeout=10), 400, "ipxe_script_type can be set only")
    refused(svc.session.get(f"{svc.url}{BASE}/clusters/{cid}/downloads/credentials-presigned",
                            params={"file_name": "kubeconfig"}, timeout=10), 409, "kubeconfig-noingress")
    refused(svc.session.get(f"{svc.url}{BASE}/clusters/{cid}/downloads/files-presigned",
                            params={"file_name": "manifests"}, timeout=10), 400, "Additional name must be provided")
    manifest = checked(svc.session.get(f"{svc.url}{BASE}/clusters/{cid}/downloads/files-presigned",
                                       params={"file_name": "manifests", "additional_name": "openshift/a.yaml"},
                                       timeout=10), "presigned-url")
    assert "/manifests/files?folder=openshift&file_name=a.yaml&api_key=" in manifest["url"]


def test_platforms_validation_resets_signing_key_and_operators(svc: RefService) -> None:
    sno = svc.create_cluster(control_plane_count=1)
    multi = svc.create_cluster(name="multi")
    ie = svc.create_infra_env(cluster_id=multi["id"])["id"]
    platforms = f"{svc.url}{BASE}/clusters/{{}}/supported-platforms"
    assert svc.session.get(platforms.format(sno["id"]), timeout=10).json() == ["none"]
    assert svc.session.get(platforms.format(multi["id"]), timeout=10).json() == ["none"]  # no hosts yet
    refused(svc.session.post(f"{svc.url}{BASE}/clusters/{sno['id']}/actions/allow-add-hosts", timeout=10), 400,
            "Expected cluster status: installed")
    with swarm_hosts(svc, ie, 1):
        (host,) = until("a host with its inventory", lambda: [h for h in svc.hosts(ie) if h.get("inventory")])
        assert svc.session.get(platforms.format(multi["id"]), timeout=10).json() == ["baremetal", "none"]
    url = f"{svc.url}{BASE}/infra-envs/{ie}/hosts/{host['id']}/actions/reset-validation"
    assert "has-inventory" not in cluster_actions.RESETTABLE_VALIDATIONS
    refused(svc.session.patch(f"{url}/has-inventory", timeout=10), 400, 'Validation "has-inventory" cannot be reset')
    assert svc.session.patch(f"{url}/container-images-available", timeout=10).status_code == 200
    assert svc.host(ie, host["id"]).get("images_status", "") == ""
    assert svc.session.post(f"{svc.url}{BASE}/infra-envs/{ie}/regenerate-signing-key", timeout=10).status_code == 204
    missing = "1b0d6c64-4b5e-4e0c-9e55-3c3f3f4a9c1d"
    refused(svc.session.post(f"{svc.url}{BASE}/infra-envs/{missing}/regenerate-signing-key", timeout=10), 404, "")
    refused(svc.session.get(f"{svc.url}{BASE}/supported-operators/lso", timeout=10), 404, "offers no operators")
    refused(svc.session.get(f"{svc.url}{BASE}/operators/bundles/virtualization", timeout=10), 404, "no operator")


def test_cancel_and_reset_from_the_real_source_states(svc: RefService) -> None:
    cluster = svc.create_cluster(control_plane_count=1)
    cid = cluster["id"]
    ie = svc.create_infra_env(cluster_id=cid)["id"]
    actions = f"{svc.url}{BASE}/clusters/{cid}/actions"
    with swarm_hosts(svc, ie, 1):
        until("a known host", lambda: [h for h in svc.hosts(ie) if h["status"] == "known"])
    refused(svc.session.post(f"{actions}/reset", timeout=10), 409, "it can be reset only in one of")
    refused(svc.session.post(f"{actions}/cancel", timeout=10), 409, "it can be cancelled only in one of")
    # an installation under way (a state a dry run passes too fast to catch: set through the test-mode route)
    svc.call("PATCH", f"/api/reference/clusters/{cid}/document", json={"status": "installing"})
    cancelled = checked(svc.session.post(f"{actions}/cancel", timeout=10), "cluster", 202)
    assert cancelled["status"] == "cancelled" and [h["status"] for h in cancelled["hosts"]] == ["cancelled"]
    reset = checked(svc.session.post(f"{actions}/reset", timeout=10), "cluster", 202)
    assert (reset["status"], reset["status_info"]) == ("insufficient", "cluster was reset by user")
    (host,) = reset["hosts"]
    assert (host["status"], host["status_info"]) == host_actions.RESETTING
    # booted into the discovery image again, its agent registers: the host is rediscovered
    with swarm_hosts(svc, ie, 1):
        until("the host known again", lambda: svc.host(ie, host["id"])["status"] == "known")
        until("the cluster ready again", lambda: svc.cluster(cid)["status"] == "ready")
    for status in ("installing", "finalizing", "preparing-for-installation", "error"):  # ResetCluster's sources
        svc.call("PATCH", f"/api/reference/clusters/{cid}/document", json={"status": status})
        assert svc.session.post(f"{actions}/reset", timeout=10).status_code == 202, status

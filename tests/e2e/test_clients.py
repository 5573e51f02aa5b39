"""A whole client session through the clients people drive the real service with: the Python client generated
from the service's spec (``assisted-service-client``) and ``aicli``, against the reference service with swarm
hosts (real registrations, polls and replies over HTTP). Every document a call returns is also checked
against the spec's model."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from reference_service import artifacts, spec
from reference_service.http import session_routes, unimplemented
from swarm import machine as swarm_machine
from swarm import run as swarm_run
from tests.support.service import BIN, RefService, start_service
from tests.support.spec_responses import SpecRecorder
from tests.support.swarm_hosts import swarm_hosts, until

client = pytest.importorskip("assisted_service_client")
from assisted_service_client import models  # noqa: E402
from assisted_service_client.rest import ApiException  # noqa: E402

PULL_SECRET = json.dumps({"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}})


class Checked:
    """The generated client, each call's raw answer checked against the spec's model first."""

    def __init__(self, url: str, token: str) -> None:
        config = client.Configuration()
        config.host = url + "/api/assisted-install"
        config.api_key["Authorization"] = token  # as aicli sends it: no "Bearer "
        self.api_client = client.ApiClient(configuration=config)
        self.installer = client.InstallerApi(api_client=self.api_client)
        self.events = client.EventsApi(api_client=self.api_client)
        self.manifests = client.ManifestsApi(api_client=self.api_client)
        self.versions = client.VersionsApi(api_client=self.api_client)
        self.recorder = SpecRecorder(self.api_client)  # every answer, checked against the spec at the end

    def raw(self, model: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        resp = call(*args, _preload_content=False, **kw)
        doc = json.loads(resp.data) if resp.data else None
        problems = spec.errors(model, doc) if isinstance(doc, dict) else \
            [p for item in doc or [] for p in spec.errors(model, item)]
        assert problems == [], problems
        return doc


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RefService, Checked]]:
    monkeypatch.setenv("DISABLED_STEPS", "")  # swarm hosts send no packets: every step is answered
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    extra = ["--dry-run-install", "--os-image", str(image), "--agent-image", swarm_run.AGENT_VERSION]
    with start_service(tmp_path, auth="token", extra=extra) as svc:
        yield svc, Checked(svc.url, "test-admin-token")


def test_a_whole_session_through_the_generated_client(session: tuple[RefService, Checked]) -> None:
    svc, c = session
    api = c.installer
    assert "4.18" in c.versions.v2_list_supported_openshift_versions()
    assert c.raw("cluster_default_config", api.v2_get_cluster_default_config)["cluster_network_cidr"] == \
        "10.128.0.0/14"
    vip_api, vip_ingress = swarm_machine.cluster_vips()
    created = api.v2_register_cluster(new_cluster_params=models.ClusterCreateParams(
        name="clients", openshift_version="4.18", pull_secret=PULL_SECRET, base_dns_domain="example.com"))
    cid = created.id
    assert created.api_vips == [] and created.status == "pending-for-input"
    assert [x["id"] for x in api.v2_list_clusters()] == [cid]  # lists come back as dicts
    # a bad update is refused and changes nothing; a good one is taken
    with pytest.raises(ApiException) as bad:
        api.v2_update_cluster(cid, models.V2ClusterUpdateParams(base_dns_domain="-bad-"))
    assert bad.value.status == 400 and "DNS format mismatch" in json.loads(bad.value.body)["reason"]
    vips = models.V2ClusterUpdateParams(api_vips=[models.ApiVip(ip=vip_api)],
                                        ingress_vips=[models.IngressVip(ip=vip_ingress)])
    with pytest.raises(ApiException) as early:  # as the real service: no host has reported the VIPs' network
        api.v2_update_cluster(cid, vips)
    assert early.value.status == 400 and json.loads(early.value.body)["reason"] == \
        f"Calculate machine network CIDR: No suitable matching CIDR found for VIP {vip_api}"
    assert api.v2_get_cluster(cid).api_vips == []
    ie = api.register_infra_env(infraenv_create_params=models.InfraEnvCreateParams(
        name="clients", pull_secret=PULL_SECRET, cluster_id=cid, openshift_version="4.18"))
    assert [e["id"] for e in c.raw("infra-env", api.list_infra_envs, cluster_id=cid)] == [ie.id]
    # the ISO's URL, and the discovery Ignition it carries: through the client and through a pre-signed URL
    iso_url = c.raw("presigned-url", api.get_infra_env_download_url, ie.id)["url"]
    assert f"/images/{ie.id}?arch=x86_64&type=full-iso" in iso_url and "api_key=" in iso_url
    ignition = json.loads(api.v2_download_infra_env_files(ie.id, "discovery.ign", _preload_content=False).data)
    assert ignition["ignition"]["version"].startswith("3.")
    signed_ign = c.raw("presigned-url", api.get_infra_env_presigned_file_url, ie.id, "discovery.ign")["url"]
    assert requests.get(signed_ign, timeout=10).json()["ignition"] == ignition["ignition"]  # no token needed

    with swarm_hosts(svc, ie.id, 3):
        # discovered: the cluster waits for its VIPs, which the hosts' network now takes
        until("3 hosts waiting for the VIPs", lambda: (lambda hs: len(hs) == 3 and all(
            h["status"] == "pending-for-input" for h in hs))(api.v2_list_hosts(ie.id)))
        updated = api.v2_update_cluster(cid, vips)
        assert [v.ip for v in updated.api_vips] == [vip_api]
        assert [n.cidr for n in updated.machine_networks] == [str(swarm_machine.sim_host(0).block)]
        until("3 known hosts", lambda: (lambda hs: len(hs) == 3 and all(h["status"] == "known" for h in hs))(
            api.v2_list_hosts(ie.id)))
        hosts = c.raw("host", api.v2_list_hosts, ie.id)
        assert all(h["requested_hostname"].startswith("swarm-") for h in hosts)
        first = hosts[0]
        disks = [d for d in json.loads(first["inventory"])["disks"] if d["installation_eligibility"]["eligible"]]
        other = next(d for d in disks if d["id"] != first["installation_disk_id"])
        for h in hosts:
            api.v2_update_host(ie.id, h["id"], models.HostUpdateParams(host_role="master"))
        changed = api.v2_update_host(ie.id, first["id"], models.HostUpdateParams(
            host_name="first-master", disks_selected_config=[models.DiskConfigParams(id=other["id"], role="install")]))
        assert changed.installation_disk_id == other["id"] and changed.requested_hostname == "first-master"
        with pytest.raises(ApiException) as bad_host:
            api.v2_update_host(ie.id, first["id"], models.HostUpdateParams(host_name="Not A Name!"))
        assert bad_host.value.status == 400
        until("the cluster ready", lambda: api.v2_get_cluster(cid).status == "ready")
        preflight = c.raw("preflight-hardware-requirements", api.v2_get_preflight_requirements, cid)
        assert api.get_cluster_supported_platforms(cid) == ["baremetal", "none"]
        detailed = api.get_detailed_supported_features("4.18")
        assert {f.feature_support_level_id for f in detailed.features} >= {"SNO"}
        assert preflight["ocp"]["master"]["quantitative"]["cpu_cores"] == 4
        override = json.dumps({"ignition": {"version": "3.2.0"}, "storage": {"files": [
            {"path": "/etc/extra", "contents": {"source": "data:,x"}}]}})
        api.v2_update_host_ignition(ie.id, first["id"], models.HostIgnitionParams(config=override))
        with pytest.raises(ApiException) as early:
            api.v2_get_host_ignition(ie.id, first["id"])
        assert early.value.status == 409
        manifest = c.manifests.v2_create_cluster_manifest(cid, models.CreateManifestParams(
            folder="openshift", file_name="extra.yaml", content=base64.b64encode(b"kind: ConfigMap\n").decode()))
        assert manifest.file_name == "extra.yaml"
        assert [m["file_name"] for m in c.manifests.v2_list_cluster_manifests(cid)] == ["extra.yaml"]
        started = api.v2_install_cluster(cid)
        assert started.status in ("preparing-for-installation", "installing")
        done = until("installed", lambda: (lambda d: d if d.status == "installed" else None)(api.v2_get_cluster(cid)),
                     timeout=90)
    assert str(done.install_completed_at) != "0001-01-01 00:00:00+00:00"
    assert done.progress.total_percentage == 100
    c.raw("cluster", api.v2_get_cluster, cid)

    events = c.events.v2_list_events(cluster_id=cid, limit=5, order="descending")
    assert len(events) == 5
    warnings = c.events.v2_list_events(cluster_id=cid, severities=["warning", "error"])
    assert all(e["severity"] in ("warning", "error") for e in warnings)
    of_first = c.events.v2_list_events(cluster_id=cid, host_ids=[first["id"]])
    assert of_first and all(e["host_id"] == first["id"] for e in of_first)

    creds = api.v2_get_credentials(cid)
    assert creds.username == "kubeadmin" and len(creds.password) == len(artifacts.kubeadmin_password())
    signed = c.raw("presigned-url", api.v2_get_presigned_for_cluster_credentials, cid, "kubeadmin-password")
    assert requests.get(signed["url"], timeout=10).text == creds.password  # the URL is the credential
    ignition = json.loads(c.raw("host-ignition-params", api.v2_get_host_ignition, ie.id, first["id"])["config"])
    assert "/etc/extra" in [f["path"] for f in ignition["storage"]["files"]]
    # the host's logs as its agent uploads them, then downloaded as the real service serves them
    requests.post(f"{svc.url}/api/assisted-install/v2/clusters/{cid}/logs", timeout=10,
                  params={"logs_type": "host", "infra_env_id": ie.id, "host_id": first["id"]},
                  headers={"X-Secret-Key": svc.token(ie.id)},
                  files={"upfile": ("logs.tar.gz", b"agent-logs")}).raise_for_status()
    tar = api.v2_download_cluster_logs(cid, logs_type="host", host_id=first["id"], _preload_content=False)
    with tarfile.open(fileobj=io.BytesIO(tar.data)) as archive:
        assert [archive.extractfile(m).read() for m in archive.getmembers()] == [b"agent-logs"]  # type: ignore
    all_logs = c.raw("presigned-url", api.v2_get_presigned_for_cluster_files, cid, "logs", logs_type="all")
    with tarfile.open(fileobj=io.BytesIO(requests.get(all_logs["url"], timeout=10).content)) as archive:
        assert "cluster_events.json" in archive.getnames()
    kubeconfig = yaml.safe_load(api.v2_download_cluster_credentials(cid, "kubeconfig", _preload_content=False).data)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://api.clients.example.com:6443"
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
    assert subprocess.run(["openssl", "x509", "-noout"], input=ca, capture_output=True).returncode == 0
    config = yaml.safe_load(api.v2_download_cluster_files(cid, "install-config.yaml", _preload_content=False).data)
    assert config["metadata"]["name"] == "clients" and config["platform"]["baremetal"]["apiVIPs"] == [vip_api]

    with pytest.raises(ApiException) as unknown:
        api.v2_get_cluster("not-a-uuid")
    assert unknown.value.status == 400
    with pytest.raises(ApiException) as missing:
        api.v2_register_disconnected_cluster({"name": "offline", "openshift_version": "4.18"})
    assert missing.value.status == 501 and spec.errors("error", json.loads(missing.value.body)) == []
    assert json.loads(missing.value.body)["reason"] == unimplemented.reason(
        "post", "/v2/clusters/disconnected", "v2RegisterDisconnectedCluster")
    assert "cancelled" in session_routes.RESETTABLE  # cancel and reset: test_host_actions.py
    api.v2_deregister_cluster(cid)
    assert api.v2_list_clusters() == []
    api.deregister_infra_env(ie.id)
    assert api.list_infra_envs() == []
    assert len(c.recorder.seen) >= 40
    assert c.recorder.problems() == []


def test_aicli_commands_against_the_service(session: tuple[RefService, Checked], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The aicli commands the README lists, run as a person runs them (``AI_TOKEN``, ``-U``)."""
    svc, _ = session
    aicli = BIN / "aicli"
    if not aicli.exists():
        pytest.skip("aicli is not installed (pip install '.[dev]')")
    env = {**os.environ, "AI_TOKEN": "test-admin-token", "HOME": str(tmp_path)}

    def run(*args: str) -> str:
        proc = subprocess.run([str(aicli), "-U", svc.url, *args], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        return proc.stdout

    blob = b"\0\0\0\x0bssh-ed25519" + b"\0\0\0\x20" + bytes(range(32))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text(f"ssh-ed25519 {base64.b64encode(blob).decode()} test\n")
    pull = tmp_path / "pull.json"
    pull.write_text(PULL_SECRET)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n")
    monkeypatch.chdir(tmp_path)  # where aicli writes what it downloads
    run("create", "cluster", "-P", "openshift_version=4.18", "-P", f"pull_secret={pull}", "-P", "sno=true",
        "-P", "base_dns_domain=example.com", "aicli-sno")
    assert "aicli-sno" in run("list", "clusters")
    (infra_env,) = svc.api("GET", "/v2/infra-envs")
    ie = infra_env["id"]
    assert infra_env["name"] in run("list", "infraenvs")
    run("update", "cluster", "aicli-sno", "-P", "ntp_source=pool.example.com")
    run("create", "manifests", "--dir", str(manifests), "aicli-sno")
    assert "extra.yaml" in run("list", "manifests", "aicli-sno")
    with swarm_hosts(svc, ie, 1):
        until("a known host", lambda: [h for h in svc.hosts(ie) if h["status"] == "known"])
        run("wait", "host", "-n", "1", infra_env["name"])
        assert "swarm-00000" in run("list", "hosts")
        run("update", "host", "swarm-00000", "-P", "name=sno-master")
        assert "sno-master" in run("list", "hosts")
        assert "sno-master" in run("info", "host", "sno-master")
        assert "ready" in run("info", "cluster", "aicli-sno")
        run("info", "validation", "aicli-sno")
        run("update", "installconfig", "aicli-sno", "-P", 'networking={"networkType": "OVNKubernetes"}')
        run("start", "cluster", "aicli-sno")
        run("wait", "cluster", "aicli-sno")
        assert "Cluster installation started" in run("list", "events", "aicli-sno")
    assert svc.api("GET", "/v2/clusters")[0]["status"] == "installed"
    for asset in ("kubeconfig", "kubeadmin-password", "installconfig", "ignition"):
        run("download", asset, "aicli-sno")
    assert "https://api.aicli-sno.example.com:6443" in (tmp_path / "kubeconfig.aicli-sno").read_text()
    assert "api-int.aicli-sno.example.com:22623/config/worker" in (tmp_path / "worker.ign.aicli-sno").read_text()
    run("delete", "host", "-y", "sno-master")
    run("delete", "cluster", "-y", "aicli-sno")
    assert svc.api("GET", "/v2/clusters") == []
    # late binding: a host of an infra-env without a cluster, bound to one and unbound again
    run("create", "infraenv", "-P", f"pull_secret={pull}", "-P", "openshift_version=4.18", "pool")
    run("create", "cluster", "-P", "openshift_version=4.18", "-P", f"pull_secret={pull}", "-P", "sno=true",
        "-P", "base_dns_domain=example.com", "late")
    pool = next(e["id"] for e in svc.api("GET", "/v2/infra-envs") if e["name"] == "pool")
    with swarm_hosts(svc, pool, 1):
        until("a known-unbound host", lambda: [h for h in svc.hosts(pool) if h["status"] == "known-unbound"])
        run("bind", "host", "swarm-00000", "late")
        until("the host known in its cluster", lambda: [h for h in svc.hosts(pool) if h["status"] == "known"])
        run("unbind", "host", "swarm-00000")
        until("the host unbound", lambda: [h for h in svc.hosts(pool) if h["status"] == "known-unbound"])

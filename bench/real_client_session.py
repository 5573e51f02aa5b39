"""A client session through the generated client (``assisted-service-client``) against the real assisted-service,
with swarm hosts joining its infra-env: the calls tests/e2e/test_clients.py makes against the reference service,
each answer recorded (status, or the error's reason) and checked against the spec's models. Run by
bench/real_service.py inside its namespace; a call that fails is printed and the session goes on.

The real service cannot install here (preparing the installation runs ``openshift-install`` from the release
image, which is never pulled): the session starts the installation and prints how far the cluster gets.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from swarm import machine as swarm_machine
from tests.support.spec_responses import SpecRecorder

BIN = Path(sys.executable).parent
PULL_SECRET = swarm_machine.SAMPLE_PULL_SECRET


class Session:
    """The generated client on ``url``, and a log of every step: (what, outcome)."""

    def __init__(self, url: str) -> None:
        import assisted_service_client as client

        config = client.Configuration()
        config.host = url + "/api/assisted-install"
        self.api_client = client.ApiClient(configuration=config)
        self.installer = client.InstallerApi(api_client=self.api_client)
        self.events = client.EventsApi(api_client=self.api_client)
        self.manifests = client.ManifestsApi(api_client=self.api_client)
        self.versions = client.VersionsApi(api_client=self.api_client)
        self.recorder = SpecRecorder(self.api_client)
        self.log: list[tuple[str, str]] = []
        self.url = url

    def step(self, what: str, call: Callable[[], Any], expect: int | None = None) -> Any:
        """``call()``; its outcome logged (``expect``: the error status the call should get)."""
        from assisted_service_client.rest import ApiException

        try:
            value = call()
        except ApiException as exc:
            reason = ""
            try:
                body = json.loads(exc.body)  # the spec's error model; go-openapi's own 400s: code and message
                reason = str(body.get("reason") or body.get("message") or "")[:150]
            except (TypeError, ValueError, AttributeError):
                reason = str(exc.body)[:150]
            ok = "as expected" if exc.status == expect else "UNEXPECTED"
            self.log.append((what, f"{exc.status} {ok}: {reason}"))
            return None
        except Exception as exc:  # the client itself failing to read an answer is what is looked for
            self.log.append((what, f"CLIENT ERROR {type(exc).__name__}: {str(exc)[:200]}"))
            return None
        self.log.append((what, "ok" if expect is None else f"UNEXPECTED success (expected {expect})"))
        return value if value is not None else True

    def until(self, what: str, probe: Callable[[], Any], seconds: float) -> Any:
        start = time.monotonic()
        last = None
        while time.monotonic() - start < seconds:
            try:
                last = probe()
            except Exception as exc:  # logged below if it never comes
                last = exc
            if last and not isinstance(last, Exception):
                self.log.append((what, f"after {time.monotonic() - start:.1f} s"))
                return last
            time.sleep(2)
        self.log.append((what, f"NOT within {seconds:.0f} s (last: {str(last)[:150]})"))
        return None


def run(url: str, work: Path, hosts: int = 3, interval: float = 5.0) -> Session:
    from assisted_service_client import models

    s = Session(url)
    api = s.installer
    versions = s.step("list supported OpenShift versions", s.versions.v2_list_supported_openshift_versions) or {}
    version = swarm_machine.openshift_version({k: v.to_dict() if hasattr(v, "to_dict") else v
                                               for k, v in dict(versions).items()})
    s.step("get cluster default config", api.v2_get_cluster_default_config)
    s.step("register cluster with a bad name", lambda: api.v2_register_cluster(
        new_cluster_params=models.ClusterCreateParams(name="Bad_Name!", openshift_version=version,
                                                      pull_secret=PULL_SECRET, base_dns_domain="example.com")), 400)
    created = s.step("register cluster", lambda: api.v2_register_cluster(new_cluster_params=models.ClusterCreateParams(
        name="clients", openshift_version=version, pull_secret=PULL_SECRET, base_dns_domain="example.com")))
    if not created:
        return s
    cid = created.id
    s.step("list clusters", api.v2_list_clusters)
    s.step("update cluster with a bad domain", lambda: api.v2_update_cluster(
        cid, models.V2ClusterUpdateParams(base_dns_domain="-bad-")), 400)
    # before any host: no network holds the VIPs (the real service derives the machine network from the hosts)
    s.step("update cluster VIPs before any host", functools.partial(_set_vips, s, cid), 400)
    ie = s.step("register infra-env", lambda: api.register_infra_env(infraenv_create_params=models.InfraEnvCreateParams(
        name="clients", pull_secret=PULL_SECRET, cluster_id=cid, openshift_version=version)))
    if not ie:
        return s
    s.step("list infra-envs of the cluster", lambda: api.list_infra_envs(cluster_id=cid))
    s.step("get infra-env download URL", lambda: api.get_infra_env_download_url(ie.id))
    s.step("download discovery.ign", lambda: api.v2_download_infra_env_files(ie.id, "discovery.ign",
                                                                              _preload_content=False).data)
    s.step("presigned URL of discovery.ign", lambda: api.get_infra_env_presigned_file_url(ie.id, "discovery.ign"))
    with open(work / "client-swarm.log", "wb") as log:
        swarm = subprocess.Popen([str(BIN / "assisted-reference-service"), "swarm", "--url", url, "--hosts",
                                  str(hosts), "--infra-env-id", ie.id, "--duration", "600", "--seed", "clients",
                                  "--interval", str(interval)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _with_hosts(s, cid, ie.id, hosts, version)
    finally:
        swarm.terminate()
        swarm.wait(timeout=60)
    s.step("list events (limit 5, descending)", lambda: s.events.v2_list_events(cluster_id=cid, limit=5,
                                                                               order="descending"))
    s.step("list warning and error events", lambda: s.events.v2_list_events(cluster_id=cid,
                                                                           severities=["warning", "error"]))
    s.step("get credentials before an install", lambda: api.v2_get_credentials(cid), 409)
    s.step("get a cluster by a non-UUID id", lambda: api.v2_get_cluster("not-a-uuid"), 400)
    s.step("deregister cluster", lambda: api.v2_deregister_cluster(cid))
    s.step("deregister infra-env", lambda: api.deregister_infra_env(ie.id))
    s.step("list clusters (empty)", api.v2_list_clusters)
    return s


def _set_vips(s: Session, cid: str) -> Any:
    from assisted_service_client import models

    vip_api, vip_ingress = swarm_machine.cluster_vips()
    return s.installer.v2_update_cluster(cid, models.V2ClusterUpdateParams(
        api_vips=[models.ApiVip(ip=vip_api)], ingress_vips=[models.IngressVip(ip=vip_ingress)]))


def _with_hosts(s: Session, cid: str, ie_id: str, hosts: int, version: str) -> None:
    from assisted_service_client import models

    api = s.installer
    s.until(f"{hosts} hosts discovered (pending-for-input)", lambda: (lambda hs: len(hs) == hosts and all(
        h["status"] == "pending-for-input" for h in hs))(api.v2_list_hosts(ie_id)), 300)
    s.step("update cluster VIPs", functools.partial(_set_vips, s, cid))
    listed = s.until(f"{hosts} hosts known", lambda: (lambda hs: hs if len(hs) == hosts and all(
        h["status"] == "known" for h in hs) else None)(api.v2_list_hosts(ie_id)), 300)
    if not listed:
        return
    first = listed[0]
    # the real service leaves out "eligible" when it is false (omitempty)
    disks = [d for d in json.loads(first["inventory"])["disks"]
             if (d.get("installation_eligibility") or {}).get("eligible")]
    other = next((d for d in disks if d["id"] != first["installation_disk_id"]), None)
    for h in listed:
        role = functools.partial(api.v2_update_host, ie_id, h["id"], models.HostUpdateParams(host_role="master"))
        s.step(f"set role master on {h['requested_hostname']}", role)
    if other:
        params = models.HostUpdateParams(host_name="first-master", disks_selected_config=[
            models.DiskConfigParams(id=other["id"], role="install")])
        s.step("set hostname and installation disk", lambda: api.v2_update_host(ie_id, first["id"], params))
    s.step("set a bad hostname", lambda: api.v2_update_host(ie_id, first["id"], models.HostUpdateParams(
        host_name="Not A Name!")), 400)
    s.until("the cluster ready", lambda: api.v2_get_cluster(cid).status == "ready", 180)
    s.step("preflight requirements", lambda: api.v2_get_preflight_requirements(cid))
    s.step("supported platforms", lambda: api.get_cluster_supported_platforms(cid))
    s.step("detailed supported features", lambda: api.get_detailed_supported_features(version))
    s.step("create a manifest", lambda: s.manifests.v2_create_cluster_manifest(cid, models.CreateManifestParams(
        folder="openshift", file_name="extra.yaml", content="a2luZDogQ29uZmlnTWFwCg==")))
    s.step("list manifests", lambda: s.manifests.v2_list_cluster_manifests(cid))
    s.step("host ignition before an install", lambda: api.v2_get_host_ignition(ie_id, first["id"]), 409)
    s.step("start the installation", lambda: api.v2_install_cluster(cid))
    s.until("the cluster past preparing-for-installation", lambda: (lambda c: c.status if c.status not in (
        "ready", "preparing-for-installation") else None)(api.v2_get_cluster(cid)), 240)
    cluster = s.step("get cluster", lambda: api.v2_get_cluster(cid))
    if cluster:
        s.log.append(("cluster after the install attempt", f"{cluster.status}: {cluster.status_info}"))


def main(url: str, work: Path) -> None:
    started = time.monotonic()
    s = run(url, work)
    print(f"\n== generated-client session on the real service ({time.monotonic() - started:.0f} s, "
          f"{len(s.recorder.seen)} calls)")
    for what, outcome in s.log:
        print(f"   {what:45} {outcome}")
    problems = s.recorder.problems()
    print(f"   answers not matching the spec's models: {len(problems)}")
    for p in problems[:15]:
        print(f"     {p}")
    requests.get(url, timeout=5)  # (the service still answers after the session)

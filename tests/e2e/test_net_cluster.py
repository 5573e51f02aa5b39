"""End to end: real agents in namespaced hosts against the reference service in the hub namespace.

The service hands out connectivity-check, free-network-addresses and domain-resolution with arguments built
from all hosts' inventories, stores the replies, and the network validations follow from them.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_service import spec
from rules.documents import parse_json_field
from tests.support.netns import Network

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

DNS = ["--local=/example.com/", "--host-record=api.test.example.com,10.201.0.200",
       "--host-record=api-int.test.example.com,10.201.0.200", "--address=/apps.test.example.com/10.201.0.201"]


def validation(host: dict[str, Any], vid: str) -> dict[str, str]:
    for items in json.loads(host["validations_info"]).values():
        for item in items:
            if item["id"] == vid:
                return item  # type: ignore[no-any-return]
    raise AssertionError(f"no validation {vid} in {host['validations_info']}")


def summary(svc: Any, infra_env_id: str) -> str:
    """Who reaches whom on L2 by every host's stored report, for failure messages."""
    lines = []
    for h in svc.hosts(infra_env_id):
        report = parse_json_field(h, "connectivity") or {}
        reach = {r["host_id"][-4:]: any(e.get("successful") for e in r.get("l2_connectivity") or [])
                 for r in report.get("remote_hosts") or []}
        lines.append(f"{h['id'][-4:]} {h['status']} {validation(h, 'belongs-to-majority-group')} L2 {reach}")
    return "\n".join(lines)


@contextlib.contextmanager
def cluster(tmp_path: Path, count: int, *, dns: list[str] = DNS, cluster_params: dict[str, Any] | None = None,
            prepare: Any = None) -> Iterator[tuple[Network, Any, dict[str, Any], dict[str, Any]]]:
    """``count`` hosts with running agents; yields (network, service, cluster, {host id: harness host})."""
    with Network() as net, contextlib.ExitStack() as stack:
        hosts = [net.add_host() for _ in range(count)]
        if prepare is not None:
            prepare(net, hosts)
        stack.enter_context(net.start_dns(dns, tmp_path))
        svc = stack.enter_context(net.start_service(tmp_path, extra=["--enable-virtual-interfaces"]))
        params = {"machine_networks": [{"cidr": "10.201.0.0/24"}], **(cluster_params or {})}
        cl = svc.create_cluster(**params)
        ie = svc.create_infra_env(cluster_id=cl["id"])
        for i, h in enumerate(hosts):
            stack.enter_context(h.start_agent(svc.agent_url, ie["id"], log=tmp_path / f"agent-{i}.log"))
        registered = svc.wait_host(ie["id"], lambda h: len(svc.hosts(ie["id"])) == count, timeout=60)
        assert registered
        by_id: dict[str, Any] = {}
        for doc in svc.hosts(ie["id"]):
            inv = svc.wait_host(ie["id"], lambda h: bool(h.get("inventory")), timeout=60, host_id=doc["id"])
            ip = json.loads(inv["inventory"])["interfaces"]
            addrs = {a.split("/")[0] for i in ip for a in i.get("ipv4_addresses") or []}
            match = next(h for h in hosts if h.ipv4 in addrs)
            by_id[doc["id"]] = match
            # Every namespace shares this machine's hostname; give each its own, as a user would.
            svc.patch_host(ie["id"], doc["id"], host_name=f"anet-host-{match.index}")
        yield net, svc, {**cl, "infra_env_id": ie["id"]}, by_id


def test_hosts_reach_known_with_network_results_stored(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as (net, svc, cl, by_id):
        ie = cl["infra_env_id"]
        for host_id in by_id:
            svc.wait_host(ie, lambda h: h["status"] == "known", timeout=90, host_id=host_id)
        for doc in svc.hosts(ie):
            host_id = doc["id"]
            connectivity = parse_json_field(doc, "connectivity")
            assert spec.errors("connectivity-report", connectivity) == []
            others = sorted(set(by_id) - {host_id})
            assert [r["host_id"] for r in connectivity["remote_hosts"]] == others
            for remote in connectivity["remote_hosts"]:
                peer = by_id[remote["host_id"]]
                assert [(e["remote_ip_address"], e["remote_mac"], e.get("successful")) for e in
                        remote["l2_connectivity"]] == [(peer.ipv4, peer.mac, True)]
                assert [e.get("successful") for e in remote["l3_connectivity"]] == [True]
            resolutions = parse_json_field(doc, "domain_name_resolutions")
            assert spec.errors("domain_resolution_response", resolutions) == []
            names = {r["domain_name"]: r for r in resolutions["resolutions"]}
            assert names["api.test.example.com"]["ipv4_addresses"] == ["10.201.0.200"]
            assert names["validateNoWildcardDNS.test.example.com."]["ipv4_addresses"] == []
            for vid in ("belongs-to-majority-group", "belongs-to-machine-cidr", "dns-wildcard-not-configured",
                        "has-default-route", "machine-cidr-defined"):
                assert validation(doc, vid)["status"] == "success", validation(doc, vid)
            # free_addresses is not shown by the API (as in the real service); the stored reply is checked. An
            # instruction that overlapped a running sweep is answered exit 0 with no output, as the Go agent's
            # guard answers it (docs/step-overlap.md): the last reply that carries a sweep is the result.
            sweeps = svc.replies(host_id, "free-network-addresses")
            (reply,) = [r for r in sweeps if r.get("output")][-1:]
            assert all(r.get("output") or (r.get("exit_code") or 0) == 0 for r in sweeps), sweeps
            free = json.loads(reply["output"])
            assert spec.errors("free_networks_addresses", free) == []
            assert free[0]["network"] == "10.201.0.0/24"
            taken = {net.hub_ipv4, *(h.ipv4 for h in by_id.values())}
            assert not taken & set(free[0]["free_addresses"])
            assert len(free[0]["free_addresses"]) == 256 - len(taken)
        assert svc.cluster(cl["id"])["status"] == "pending-for-input"  # no VIPs yet: set at the end

        # Bad arguments reaching a running agent: a clear error reply each, and the agent carries on.
        host_id = sorted(by_id)[0]
        # (Step types this cluster is not otherwise sent: the agent skips a step whose type is still running,
        # so a bad free-network-addresses would race the periodic one. Those are covered step by step.)
        bad = {"verify-vips": (['[{"vip":"10.0.0.0/8","vip_type":"api"}]'], "is not an IP address"),
               "tang-connectivity-check": (['{"tang_servers":"[{oops"}'], "argument is not valid JSON"),
               "api-vip-connectivity-check": (['{"url":"not a url"}'], "is not an http(s) URL")}
        for step_type, (args, message) in bad.items():
            # Queued again if a poll's run of the same type was still going (the agent then skips it).
            deadline = time.monotonic() + 60
            replies: list[dict[str, Any]] = []
            while not replies and time.monotonic() < deadline:
                queued = svc.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{host_id}/instructions",
                                  json={"step_type": step_type, "args": args}, expected=201)
                for _ in range(25):
                    replies = [r for r in svc.replies(host_id, step_type) if r["step_id"] == queued["step_id"]]
                    if replies:
                        break
                    time.sleep(0.2)
            assert replies, f"no reply to the bad {step_type}"
            assert replies[0]["exit_code"] == -1
            assert message in replies[0]["error"]
        svc.wait_replies(host_id, "connectivity-check", count=len(svc.replies(host_id, "connectivity-check")) + 1)
        assert svc.host(ie, host_id)["status"] == "known"

        # a multi-node cluster is ready once its VIPs are set, verified free, and in the machine network
        assert svc.cluster(cl["id"])["status"] == "pending-for-input"
        svc.patch_cluster(cl["id"], api_vips=[{"ip": "10.201.0.200"}], ingress_vips=[{"ip": "10.201.0.201"}])
        deadline = time.monotonic() + 60
        while svc.cluster(cl["id"])["status"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert svc.cluster(cl["id"])["status"] == "ready", svc.cluster(cl["id"])["validations_info"]


def test_cut_host_falls_out_of_the_majority_group(tmp_path: Path) -> None:
    with cluster(tmp_path, 4) as (_net, svc, cl, by_id):
        ie = cl["infra_env_id"]
        for host_id in by_id:
            svc.wait_host(ie, lambda h: h["status"] == "known", timeout=90, host_id=host_id)
        victim_id = sorted(by_id)[0]
        by_id[victim_id].cut()

        def isolated(doc: dict[str, Any]) -> bool:
            return validation(doc, "belongs-to-majority-group")["status"] == "failure"

        # The others' next reports lose the victim: it is no longer in the majority group (it stays
        # "connected" to the service for a while, so it is its network validation that fails). Until every
        # other host has reported, the reports still seeing the victim make a clique as large as the others'
        # (a tie the rule may settle either way), so the verdicts are read once all of them have reported.
        others = [i for i in by_id if i != victim_id]
        for host_id in others:
            svc.wait_host(ie, lambda h: not any(
                r["host_id"] == victim_id and any(e.get("successful") for e in r.get("l2_connectivity") or [])
                for r in (parse_json_field(h, "connectivity") or {}).get("remote_hosts") or []),
                timeout=60, host_id=host_id)
        for host_id in others:
            try:
                svc.wait_host(ie, lambda h: validation(h, "belongs-to-majority-group")["status"] == "success",
                              timeout=60, host_id=host_id)
            except AssertionError:
                raise AssertionError(summary(svc, ie)) from None
        doc = svc.host(ie, victim_id)
        assert isolated(doc), validation(doc, "belongs-to-majority-group")
        assert validation(doc, "belongs-to-majority-group")["message"] == \
            "No connectivity to the majority of hosts in the cluster"


def test_packet_loss_and_wildcard_dns_fail_their_validations(tmp_path: Path) -> None:
    dns = [*DNS, "--address=/test.example.com/10.201.0.210"]  # a wildcard over the whole cluster zone

    def lossy_first(net: Network, hosts: list[Any]) -> None:
        hosts[0].set_loss(30)

    with cluster(tmp_path, 3, dns=dns, prepare=lossy_first) as (_net, svc, cl, by_id):
        ie = cl["infra_env_id"]
        for host_id in by_id:
            svc.patch_host(ie, host_id, host_role="master")
        lossy_id = next(i for i, h in by_id.items() if h.index == 0)
        healthy_id = next(i for i in by_id if i != lossy_id)

        def loss_failed(doc: dict[str, Any]) -> bool:
            return validation(doc, "sufficient-packet-loss-requirement-for-role")["status"] == "failure"

        doc = svc.wait_host(ie, loss_failed, timeout=90, host_id=healthy_id)
        message = validation(doc, "sufficient-packet-loss-requirement-for-role")["message"]
        assert message.startswith("Packet loss percentage requirement of =0% not met for connectivity between "
                                  f"anet-host-{by_id[healthy_id].index} and anet-host-0"), message
        doc = svc.wait_host(ie, lambda h: validation(h, "dns-wildcard-not-configured")["status"] == "failure",
                            timeout=60, host_id=healthy_id)
        assert "DNS wildcard configuration was detected for domain *.test.example.com" in \
            validation(doc, "dns-wildcard-not-configured")["message"]
        assert doc["status"] == "insufficient"


def test_dhcp_chooses_the_vips_and_they_keep_their_addresses(tmp_path: Path) -> None:
    """A cluster with vip_dhcp_allocation: the service asks for dhcp-lease-allocate on the host's NIC in the
    machine network, dnsmasq in the hub leases two addresses, and they become the cluster's VIPs; the next
    allocation hands the leases back and gets the same addresses."""
    pool = [f"10.201.0.{i}" for i in range(150, 160)]
    dhcp = [f"--dhcp-range={pool[0]},{pool[-1]},255.255.255.0,1h", f"--dhcp-leasefile={tmp_path / 'leases'}",
            "--dhcp-authoritative"]
    with cluster(tmp_path, 1, dns=DNS + dhcp, cluster_params={"vip_dhcp_allocation": True}) as (_, svc, cl, by_id):
        (host_id,) = by_id
        replies = svc.wait_replies(host_id, "dhcp-lease-allocate", count=2, timeout=90)
        first, second = (json.loads(r["output"]) for r in replies[:2])
        assert spec.errors("dhcp_allocation_response", first) == []
        assert first["api_vip_address"] in pool and first["ingress_vip_address"] in pool
        assert (second["api_vip_address"], second["ingress_vip_address"]) == (
            first["api_vip_address"], first["ingress_vip_address"])
        doc = svc.cluster(cl["id"])
        assert [v["ip"] for v in doc["api_vips"]] == [first["api_vip_address"]]
        assert [v["ip"] for v in doc["ingress_vips"]] == [first["ingress_vip_address"]]
        assert not any(k.endswith("_vip_lease") for k in doc)  # kept by the service, not shown

"""What one simulated host of the swarm is and says: its identity, its inventory and its step replies.

Every host is the recorded machine of ``machine.json`` (a Dell R650 recorded by ``agent record-host``)
with its own id, hostname, MACs and address, and answers each step the way the Go agent's dry-run mode does
(go-agent-behaviour.md 3): every peer reachable on L2 and L3, clocks synced, disks fast, images pulled. Pure
functions over documents, so the swarm's loop and the tests share them.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import json_codec

MACHINE = Path(__file__).with_name("machine.json")
#: Hosts are numbered into this network, 1,019 to a /22 block (each host scans its own block for free
#: addresses, as the real service asks for subnets of at most 10 host bits). It overlaps neither the default
#: cluster network (10.128.0.0/14) nor the service network (172.30.0.0/16): the real service refuses a
#: machine network that does (no-cidrs-overlapping).
SWARM_NETWORK = ipaddress.ip_network("10.64.0.0/14")
BLOCK_PREFIX = 22
#: Left out of each block: the network address, the gateway (.1), the two VIPs' addresses and the broadcast.
PER_BLOCK = (1 << (32 - BLOCK_PREFIX)) - 5
MAX_HOSTS = PER_BLOCK * (1 << (BLOCK_PREFIX - SWARM_NETWORK.prefixlen))
ID_NAMESPACE = uuid.UUID("6d3f1c2e-8c55-4f61-9a43-5a7c0e2b9d10")


@dataclass(frozen=True)
class SimHost:
    index: int
    host_id: str
    hostname: str
    mac: str
    #: Address with its prefix, e.g. 10.64.0.2/22.
    address: str

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    @property
    def block(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_interface(self.address).network  # type: ignore[return-value]


def cluster_vips() -> tuple[str, str]:
    """(API VIP, ingress VIP): the two addresses of the first block no host takes. The real service derives
    the machine network from the network of the hosts that holds the API VIP, so the VIPs sit in the hosts'
    own /22: a swarm of up to PER_BLOCK hosts is one machine network (hosts of further blocks are not in it,
    and stay insufficient, as they would on the real service)."""
    top = int(SWARM_NETWORK.network_address) + (1 << (32 - BLOCK_PREFIX)) - 3
    return str(ipaddress.IPv4Address(top)), str(ipaddress.IPv4Address(top + 1))


def sim_host(index: int, seed: str = "swarm") -> SimHost:
    """Host ``index`` of swarm ``seed``: the same inputs give the same host, so a rerun re-registers it."""
    if not 0 <= index < MAX_HOSTS:
        raise ValueError(f"a swarm has at most {MAX_HOSTS} hosts")
    block, slot = divmod(index, PER_BLOCK)
    base = int(SWARM_NETWORK.network_address) + (block << (32 - BLOCK_PREFIX))
    ip = ipaddress.IPv4Address(base + 2 + slot)
    mac = "02:5a:" + ":".join(f"{b:02x}" for b in index.to_bytes(4, "big"))
    return SimHost(index=index, host_id=str(uuid.uuid5(ID_NAMESPACE, f"{seed}/{index}")),
                   hostname=f"{seed}-{index:05d}", mac=mac, address=f"{ip}/{BLOCK_PREFIX}")


@functools.lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    return dict(json.loads(MACHINE.read_text()))


def inventory(host: SimHost) -> dict[str, Any]:
    """The recorded machine as this host: its hostname, MACs, address, default route and serials."""
    inv = copy.deepcopy(_machine())
    inv["hostname"] = host.hostname
    gateway = str(host.block.network_address + 1)
    nics = [n for n in inv["interfaces"] if n.get("type") == "physical"]
    for i, nic in enumerate(nics):
        nic["mac_address"] = host.mac if i == 0 else host.mac[:-2] + f"{(int(host.mac[-2:], 16) ^ 0x80):02x}"
        nic["ipv4_addresses"] = [host.address] if i == 0 else []
        nic["ipv6_addresses"] = []
    first = nics[0]["name"]
    inv["routes"] = [{"destination": "0.0.0.0", "family": 2, "gateway": gateway, "interface": first, "metric": 100},
                     {"destination": str(host.block.network_address), "family": 2, "interface": first,
                      "metric": 100}]
    inv["boot"]["pxe_interface"] = "01-" + host.mac.replace(":", "-")
    inv["system_vendor"]["serial_number"] = f"SWARM{host.index:07d}"
    inv["bmc_address"], inv["bmc_v6address"] = "0.0.0.0", "::/0"
    return inv


def connectivity_report(args: list[str]) -> dict[str, Any]:
    """Every address of every peer reachable on L2 (with the peer NIC's MAC) and on L3, as in dry-run."""
    peers = json_codec.loads(args[0]) if args else []
    remote_hosts = []
    for peer in peers:
        l2, l3 = [], []
        for nic in peer.get("nics") or []:
            for address in nic.get("ip_addresses") or []:
                l2.append({"remote_ip_address": address, "remote_mac": str(nic.get("mac", "")).lower(),
                           "successful": True})
                l3.append({"remote_ip_address": address, "successful": True, "average_rtt_ms": 0.2,
                           "packet_loss_percentage": 0})
        remote_hosts.append({"host_id": peer["host_id"], "l2_connectivity": l2, "l3_connectivity": l3})
    return {"remote_hosts": remote_hosts}


@functools.lru_cache(maxsize=64)
def _free_in_block(network: str, hosts: int) -> tuple[str, ...]:
    """Addresses of ``network`` no swarm host uses (a swarm of ``hosts`` fills blocks from the bottom)."""
    net = ipaddress.ip_network(network)
    first_block = int(SWARM_NETWORK.network_address)
    block = (int(net.network_address) - first_block) >> (32 - BLOCK_PREFIX)
    used = max(0, min(PER_BLOCK, hosts - block * PER_BLOCK))
    return tuple(str(a) for a in list(net.hosts())[1 + used:])


def free_addresses(args: list[str], hosts: int) -> list[dict[str, Any]]:
    networks = json.loads(args[0]) if args else []
    return [{"network": n, "free_addresses": list(_free_in_block(n, hosts))} for n in networks]


def domain_resolution(args: list[str]) -> dict[str, Any]:
    """No name resolves: the wildcard probes find nothing, and managed networking needs no other name."""
    request = json.loads(args[0]) if args else {}
    return {"resolutions": [{"domain_name": d.get("domain_name", ""), "ipv4_addresses": [], "ipv6_addresses": []}
                            for d in request.get("domains") or []]}


def reply_text(step_type: str, args: list[str], host: SimHost, hosts: int) -> tuple[int, str, str]:
    """``reply_output`` with the output encoded: what a reply carries (run in a worker process for the big ones)."""
    exit_code, output, error = reply_output(step_type, args, host, hosts)
    return exit_code, json_codec.dumps(output) if output is not None else "", error


def reply_output(step_type: str, args: list[str], host: SimHost, hosts: int) -> tuple[int, Any, str]:
    """(exit code, output document or None, error) for one instruction, as a dry-run agent answers it."""
    if step_type == "inventory":
        return 0, inventory(host), ""
    if step_type == "connectivity-check":
        return 0, connectivity_report(args), ""
    if step_type == "free-network-addresses":
        return 0, free_addresses(args, hosts), ""
    if step_type == "ntp-synchronizer":
        return 0, {"ntp_sources": [{"source_name": str(SWARM_NETWORK.network_address + 1),
                                    "source_state": "synced"}]}, ""
    if step_type == "domain-resolution":
        return 0, domain_resolution(args), ""
    if step_type == "verify-vips":
        vips = json.loads(args[0]) if args else []
        return 0, [{**v, "verification": "succeeded"} for v in vips], ""
    if step_type == "api-vip-connectivity-check":  # a day-2 host: the cluster's worker Ignition, as downloaded
        url = json.loads(args[0]).get("url", "") if args else ""
        config = {"ignition": {"version": "3.2.0"}, "storage": {"files": []}}
        return 0, {"is_success": True, "url": url, "ignition": json.dumps(config)}, ""
    if step_type == "tang-connectivity-check":
        return 0, {"is_success": True, "tang_server_response": []}, ""
    if step_type == "installation-disk-speed-check":
        path = json.loads(args[0]).get("path", "") if args else ""
        return 0, {"path": path, "io_sync_duration": 1}, ""
    if step_type == "container-image-availability":
        images = json.loads(args[0]).get("images", []) if args else []
        return 0, {"images": [{"name": i, "result": "success", "download_rate": 100.0, "size_bytes": 400000000,
                               "time": 10.0} for i in images]}, ""
    if step_type == "upgrade-agent":
        return 0, {"result": "success"}, ""
    if step_type in ("install", "logs-gather", "stop-installation", "reboot", "write-image",
                     "dhcp-lease-allocate", "download-boot-artifacts", "reboot-for-reclaim"):
        return 0, None, ""
    return -1, None, f"step type {step_type} is not simulated by the swarm"


#: A well-formed pull secret naming no real registry's credentials (the service checks its form).
SAMPLE_PULL_SECRET = '{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNzd29yZA=="}}}'
#: The first assisted-service release whose API takes only the VIP lists (``api_vips``, ``ingress_vips``): before
#: it, releases take the singular ``api_vip`` and ``ingress_vip`` (2.12 takes either; 2.13 to 2.28 refuse the
#: lists without the singular alongside: "request must include apiVIP alongside apiVIPs"; 2.29 dropped them).
LISTS_ONLY_SINCE = (2, 29)
#: The OpenShift version asked for when the service does not list its versions.
DEFAULT_OPENSHIFT_VERSION = "4.16"


def _release_numbers(text: str) -> tuple[int, ...] | None:
    tag = text.rsplit(":", 1)[-1] if "/" in text else text  # an image reference: its tag
    numbers = [int(p) for p in tag.lstrip("v").split("-")[0].split(".") if p.isdigit()]
    return tuple(numbers) if len(numbers) >= 2 and tag.lstrip("v")[:1].isdigit() else None


def service_release(versions: Any) -> tuple[int, ...] | None:
    """The release of the service that answered ``/v2/component-versions``: its ``release_tag`` (``v2.20.1``),
    else the tag of its image (``SELF_VERSION``, ``quay.io/...assisted-service:v2.20.1``); None when neither
    says one (a build named by a commit, this reference service)."""
    doc = versions if isinstance(versions, dict) else {}
    for text in (doc.get("release_tag"), (doc.get("versions") or {}).get("assisted-installer-service")):
        found = _release_numbers(str(text or ""))
        if found:
            return found
    return None


def openshift_version(versions: Any) -> str:
    """The version to ask for from the service's ``/v2/openshift-versions``: its default, else its newest (a
    service refuses a version it does not list: "Openshift version ... is not supported")."""
    if not isinstance(versions, dict) or not versions:
        return DEFAULT_OPENSHIFT_VERSION
    default = [v for v, doc in versions.items() if isinstance(doc, dict) and doc.get("default")]
    if default:
        return str(default[0])
    return str(max(versions, key=lambda v: tuple(int(p) for p in str(v).split(".")[:2] if p.isdigit())))


def cluster_params(name: str, release: tuple[int, ...] | None, lists: bool | None = None,
                   version: str = DEFAULT_OPENSHIFT_VERSION) -> dict[str, Any]:
    """The cluster the swarm creates, in the spelling the service's release takes (``lists`` forces one), never
    both: its VIPs in the hosts' first network, which the service then takes as the machine network."""
    api, ingress = cluster_vips()
    params: dict[str, Any] = {"name": name, "openshift_version": version, "base_dns_domain": "swarm.example.com",
                              "pull_secret": SAMPLE_PULL_SECRET}
    if lists if lists is not None else (release is None or release >= LISTS_ONLY_SINCE):
        params.update({"api_vips": [{"ip": api}], "ingress_vips": [{"ip": ingress}]})
    else:
        params.update({"api_vip": api, "ingress_vip": ingress})
    return params

"""What the real service checks in a user's cluster creation and update before it changes anything.

A bad request is refused with 400 and the real service's wording (its ``ValidateClusterNameFormat``,
``ValidateDomainNameFormat``, ``ParsePullSecret``, the supported versions, the VIP checks of its update path),
an update outside the editable states with 409 (``VerifyClusterUpdatability``). Accepting them silently let a
client believe a cluster was set up that could never install. Pure functions: documents in, ServiceRefusal out.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any

from common.errors import ServiceRefusal
from rules.machine_network import vip_network
from rules.network import user_managed_networking

#: The OpenShift versions this service offers (``/v2/openshift-versions``), newest last; 4.22 is aicli's default.
OPENSHIFT_VERSIONS = tuple(f"4.{minor}" for minor in range(12, 23))
DEFAULT_VERSION = "4.18"
EDITABLE_STATES = ("insufficient", "ready", "pending-for-input", "adding-hosts")
#: Host statuses in which a user may change a host (the real service's v2UpdateHost: 409 in any other).
HOST_EDITABLE_STATES = ("discovering", "known", "disconnected", "insufficient", "pending-for-input",
                        "discovering-unbound", "known-unbound", "disconnected-unbound", "insufficient-unbound",
                        "binding", "added-to-existing-cluster")
_CLUSTER_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CLUSTER_NAME_NONE_PLATFORM = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)*$")
_BASE_DOMAIN = re.compile(r"^[a-z\d]([\-]*[a-z\d]+)+$")
_DNS_NAME = r"^([a-z\d]([\-]*[a-z\d]+)*\.)+[a-z\d]+([\-]*[a-z\d]+)+$"
_DOTTED = re.compile(r"^[\d.]+$")


def bad(reason: str) -> ServiceRefusal:
    return ServiceRefusal(400, reason)


def version_problem(version: Any) -> str | None:
    text = str(version or "")
    major_minor = ".".join(text.split("-")[0].split(".")[:2])
    if major_minor in OPENSHIFT_VERSIONS:
        return None
    return f"Openshift version {text} for CPU architecture x86_64 is not supported"


def name_problem(name: Any, platform: str = "") -> str | None:
    regex = _CLUSTER_NAME_NONE_PLATFORM if platform == "none" else _CLUSTER_NAME
    if isinstance(name, str) and name and regex.match(name):
        return None
    return (f"Cluster name format is not valid: '{name}'. Name must start and end with either a letter or number "
            "and consist of lower-case letters, numbers, and hyphens. Subdomains in cluster names are only valid "
            "with none platform.")


def base_domain_problem(domain: Any) -> str | None:
    text = str(domain or "")
    if _BASE_DOMAIN.match(text) and 1 < len(text) < 63:
        return None
    if re.match(_DNS_NAME, text) and not _DOTTED.match(text) and len(text) <= 255:
        return None
    return (f"DNS format mismatch: {text} domain name is not valid. Must match regex [{_DNS_NAME}], be no more than "
            "255 characters, and not be in dotted decimal format (##.##.##.##)")


def pull_secret_problem(secret: Any) -> str | None:
    """``ParsePullSecret``'s verdict: JSON with a non-empty ``auths`` object whose ``auth`` values, where
    given, are base64 of ``user:password``."""
    try:
        doc = json.loads(str(secret).strip())
    except ValueError:
        return "pull secret must be a well-formed JSON"
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict) or not auths:
        return "pull secret must contain 'auths' JSON-object field"
    for registry, entry in auths.items():
        raw = entry.get("auth") if isinstance(entry, dict) else None
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            return f"invalid pull secret: 'auth' field of \"{registry}\" is {raw} but should be a string"
        try:
            decoded = base64.b64decode(raw, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return f"invalid pull secret: 'auth' field of \"{registry}\" is not base64-encoded"
        if ":" not in decoded:
            return f"invalid pull secret: 'auth' for {registry} is not in 'user:password' format"
    return None


def _vips(body: dict[str, Any], kind: str) -> list[str] | None:
    if f"{kind}_vips" in body:
        return [str(v.get("ip")) for v in body[f"{kind}_vips"] or [] if isinstance(v, dict)]
    return None


def _ips(doc: dict[str, Any], kind: str) -> list[str]:
    return [str(v.get("ip")) for v in doc.get(f"{kind}_vips") or [] if isinstance(v, dict)]


def _check_vips(merged: dict[str, Any], changed: bool) -> None:
    """``validateVIPAddresses``, as creation and update both run it: valid addresses, no duplicates, and, where
    the cluster has machine networks (given or already set), inside them and not their broadcast address.
    Without machine networks the VIPs are taken as they are (the update path then has its own check)."""
    api, ingress = _ips(merged, "api"), _ips(merged, "ingress")
    if not changed or (not api and not ingress):
        return
    for vip in api + ingress:
        try:
            ipaddress.ip_address(vip)
        except ValueError:
            raise bad(f"Could not parse VIP ip {vip}") from None
    if set(api) & set(ingress):
        raise bad(f"The IP address \"{sorted(set(api) & set(ingress))[0]}\" appears both in apiVIPs and ingressVIPs")
    if len(set(api)) != len(api) or len(set(ingress)) != len(ingress):
        raise bad("The same VIP address appears more than once")
    if user_managed_networking(merged) or merged.get("vip_dhcp_allocation"):
        return
    cidrs = [str(n.get("cidr")) for n in merged.get("machine_networks") or [] if isinstance(n, dict)]
    if cidrs:
        _within(cidrs, api, ingress)


def _within(cidrs: list[str], api: list[str], ingress: list[str]) -> None:
    for kind, vips in (("api", api), ("ingress", ingress)):
        for index, vip in enumerate(vips):
            net = ipaddress.ip_network(cidrs[min(index, len(cidrs) - 1)], strict=False)
            address = ipaddress.ip_address(vip)
            if address.version != net.version or address not in net:
                raise bad(f"{kind}-vip <{vip}> does not belong to machine-network-cidr <{net}>")
            if address == net.broadcast_address:
                raise bad(f"{kind}-vip <{vip}> is the broadcast address of machine-network-cidr <{net}>")


def _dual_stack(merged: dict[str, Any]) -> bool:
    families = set()
    for key in ("machine_networks", "cluster_networks", "service_networks"):
        for entry in merged.get(key) or []:
            try:
                families.add(ipaddress.ip_network(str(entry.get("cidr")), strict=False).version)
            except (AttributeError, ValueError):
                continue
    return len(families) > 1


def _check_update_networks(merged: dict[str, Any], body: dict[str, Any], hosts: list[dict[str, Any]]) -> str | None:
    """The update path's own network rules (``updateNetworkParams``): VIPs are refused with user-managed
    networking and in VIP DHCP mode; otherwise (single stack, the cluster's own load balancer) a user may not
    set the machine network, and VIPs are taken only when a discovered host has an address in the network of
    the API VIP (else of the ingress VIP): that network becomes the machine network. Before any host has
    reported its interfaces no VIP can be set: the real service answers 400 "No suitable matching CIDR"."""
    asked = {kind: _vips(body, kind) for kind in ("api", "ingress")}
    if user_managed_networking(merged):
        for kind, label in (("api", "API"), ("ingress", "Ingress")):
            if asked[kind]:
                raise bad(f"{label} VIPs cannot be set with User Managed Networking")
        return None
    if merged.get("vip_dhcp_allocation"):
        for kind, label in (("api", "API"), ("ingress", "Ingress")):
            if asked[kind]:
                raise bad(f"Setting {label} VIPs is forbidden when cluster is in vip-dhcp-allocation mode")
        return None
    dual = _dual_stack(merged)
    user_balanced = (merged.get("load_balancer") or {}).get("type") == "user-managed"
    if body.get("machine_networks") and not dual and not user_balanced:
        raise bad("Setting the Machine Network CIDR is forbidden when the cluster is neither in VIP DHCP allocation "
                  "mode nor using a user-managed load balancer")
    if (asked["api"] is None and asked["ingress"] is None) or dual or user_balanced:
        return None
    api, ingress = _ips(merged, "api"), _ips(merged, "ingress")
    vip = api[0] if api else ingress[0] if ingress else ""
    if not vip:
        return None
    net = vip_network(vip, hosts)
    if net is None:
        raise bad(f"Calculate machine network CIDR: No suitable matching CIDR found for VIP {vip}")
    _within([str(net)], api[:1], ingress[:1])
    return str(net)


def _check_networks(body: dict[str, Any]) -> None:
    for key in ("machine_networks", "cluster_networks", "service_networks"):
        for entry in body.get(key) or []:
            if not isinstance(entry, dict):
                continue
            try:
                ipaddress.ip_network(str(entry.get("cidr")), strict=False)
            except ValueError:
                raise bad(f"{key}: {entry.get('cidr')} is not a valid CIDR") from None


def check_create(body: dict[str, Any]) -> None:
    """v2RegisterCluster's checks (the body already matched ``cluster-create-params``)."""
    platform = str((body.get("platform") or {}).get("type") or "")
    for problem in (name_problem(body.get("name"), platform), version_problem(body.get("openshift_version")),
                    pull_secret_problem(body.get("pull_secret"))):
        if problem:
            raise bad(problem)
    if body.get("base_dns_domain"):
        problem = base_domain_problem(body["base_dns_domain"])
        if problem:
            raise bad(problem)
    if (body.get("api_vip") and body.get("api_vips")) or (body.get("ingress_vip") and body.get("ingress_vips")):
        raise bad("apiVIP and apiVIPs (or ingressVIP and ingressVIPs) cannot both be set; "
                  "use apiVIPs and ingressVIPs")
    _check_networks(body)
    if body.get("user_managed_networking") is True:
        for kind, label in (("api", "API"), ("ingress", "Ingress")):
            if _ips(body, kind):
                raise bad(f"{label} VIPs cannot be set with User Managed Networking")
    _check_vips({**body, "user_managed_networking": body.get("user_managed_networking") is True}, changed=True)


def check_update(cluster: dict[str, Any], body: dict[str, Any], hosts: list[dict[str, Any]]) -> str | None:
    """V2UpdateCluster's checks: the state first (409), then the values (400). Returns the machine network the
    update's VIPs make (the real service stores it with the update), if they make one."""
    status = cluster.get("status")
    if status not in EDITABLE_STATES:
        raise ServiceRefusal(409, f"Cluster {cluster.get('id')} is in {status} state, cluster can be updated only in "
                                  f"one of {list(EDITABLE_STATES)}")
    if "name" in body:
        problem = name_problem(body["name"], str(((body.get("platform") or cluster.get("platform")) or {})
                                                 .get("type") or ""))
        if problem:
            raise bad(problem)
    if body.get("base_dns_domain"):
        problem = base_domain_problem(body["base_dns_domain"])
        if problem:
            raise bad(problem)
    if "pull_secret" in body:
        problem = pull_secret_problem(body["pull_secret"])
        if problem:
            raise bad(problem)
    _check_networks(body)
    merged = {**cluster, **{k: v for k, v in body.items() if v is not None}}
    changed = any(k in body for k in ("api_vips", "ingress_vips", "machine_networks"))
    _check_vips(merged, changed)
    return _check_update_networks(merged, body, hosts)


#: A well-formed pull secret for local use (the demo, the swarm, tests): it names no real registry's credentials.
SAMPLE_PULL_SECRET = '{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNzd29yZA=="}}}'

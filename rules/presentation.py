"""Documents as the real service shows them to users: the fields it fills on every read, and its defaults.

The real service's ``customizeHost`` sets each host's ``requested_hostname`` (the name the host goes by: the
one a user gave, else the inventory's, else its id) and ``progress_stages`` (its role's stage list) on every
read, and its database gives every cluster column a value (``api_vips`` ``[]``, ``install_completed_at`` the
zero time ``0001-01-01T00:00:00.000Z``, ``progress`` an object). Clients built on the generated API client
index these fields directly (aicli's ``list hosts`` reads ``host['requested_hostname']``, ``wait cluster``
compares ``install_completed_at`` with the zero time), so a field left out is a crash or a wait that ends at
once. Pure functions: a stored document in, the document a user reads out; the stored one is not changed.
"""

from __future__ import annotations

import json
from typing import Any

from rules.documents import host_name, is_sno
from rules.install import stages_for

#: The zero time the real service's columns hold until the moment they record happens.
ZERO_TIME = "0001-01-01T00:00:00.000Z"
_CLUSTER_DEFAULTS: dict[str, Any] = {
    "api_vips": [], "ingress_vips": [], "machine_networks": [], "cluster_networks": [], "service_networks": [],
    "install_started_at": ZERO_TIME, "install_completed_at": ZERO_TIME, "controller_logs_collected_at": ZERO_TIME,
    "controller_logs_started_at": ZERO_TIME, "status_updated_at": ZERO_TIME, "hyperthreading": "all",
    "cpu_architecture": "x86_64", "platform": {"type": "baremetal"}, "network_type": "OVNKubernetes",
    "schedulable_masters": False, "schedulable_masters_forced_true": True, "user_managed_networking": False,
    "vip_dhcp_allocation": False, "feature_usage": "{}", "email_domain": "Unknown", "ocp_release_image": "",
    "logs_info": "", "hosts": [], "monitored_operators": [], "disk_encryption": {"enable_on": "none",
                                                                                   "mode": "tpmv2"},
    "load_balancer": {"type": "cluster-managed"}, "ignition_endpoint": {}, "ssh_public_key": "",
    "http_proxy": "", "https_proxy": "", "no_proxy": "", "additional_ntp_source": "",
    "host_networks": [], "validations_info": "{}", "image_info": {}, "org_soft_timeouts_enabled": True,
}
_HOST_DEFAULTS: dict[str, Any] = {
    "installation_disk_id": "", "installation_disk_path": "", "logs_info": "",
    "free_addresses": "", "ntp_sources": "", "images_status": "", "domain_name_resolutions": "",
    "disks_info": "", "installer_version": "", "machine_config_pool_name": "", "node_labels": "",
    "logs_collected_at": ZERO_TIME, "logs_started_at": ZERO_TIME, "stage_started_at": ZERO_TIME,
    "stage_updated_at": ZERO_TIME, "kind": "Host", "ignition_config_overrides": "", "installer_args": "",
    "bootstrap": False, "suggested_role": "auto-assign", "role": "auto-assign", "validations_info": "{}",
}
_INFRA_ENV_DEFAULTS: dict[str, Any] = {
    "openshift_version": "", "cpu_architecture": "x86_64", "additional_ntp_sources": "", "ssh_authorized_key": "",
    "ignition_config_override": "", "static_network_config": "", "proxy": {},
    "download_url": "", "size_bytes": 0, "generator_version": "", "email_domain": "Unknown",
}


def host_out(host: dict[str, Any], cluster: dict[str, Any] | None) -> dict[str, Any]:
    """``host`` as a user reads it: ``customizeHost``'s two fields, and the columns' defaults."""
    out = {**_HOST_DEFAULTS, **{k: v for k, v in host.items() if v is not None}}
    out["requested_hostname"] = host_name(host)
    out["progress_stages"] = stages_for(host, cluster if is_sno(cluster) else None) \
        if host.get("role") not in (None, "", "auto-assign") or host.get("bootstrap") else []
    progress = dict(out.get("progress") or {})
    progress.setdefault("installation_percentage", 0)
    progress.setdefault("progress_info", "")
    out["progress"] = progress
    return out


def cluster_progress(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """The cluster's progress as the real service reports it: preparing counts once the install starts,
    installing is the hosts' mean, finalizing is whole once the cluster is installed."""
    status = cluster.get("status")
    started = status not in (None, "insufficient", "ready", "pending-for-input", "adding-hosts")
    percents = [int((h.get("progress") or {}).get("installation_percentage") or 0) for h in hosts]
    installing = int(sum(percents) / len(percents)) if percents and started else 0
    done = status == "installed"
    preparing = 100 if status not in ("preparing-for-installation",) and started else 0
    if done:
        installing = 100
    finalizing = 100 if done else 0
    total = int(preparing * 0.1 + installing * 0.7 + finalizing * 0.2) if started else 0
    return {"preparing_for_installation_stage_percentage": preparing, "installing_stage_percentage": installing,
            "finalizing_stage_percentage": finalizing, "total_percentage": total}


def cluster_out(cluster: dict[str, Any], hosts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``cluster`` as a user reads it: the columns' defaults, the networks in both spellings the API has had,
    the progress from its hosts (``hosts``: the stored documents, when the caller has them)."""
    out = {**_CLUSTER_DEFAULTS, **{k: v for k, v in cluster.items() if v is not None}}
    for key in ("api_vips", "ingress_vips", "machine_networks", "cluster_networks", "service_networks"):
        if not isinstance(out.get(key), list):
            out[key] = []
    for single, plural in (("api_vip", "api_vips"), ("ingress_vip", "ingress_vips"),
                           ("machine_network_cidr", "machine_networks"), ("cluster_network_cidr", "cluster_networks"),
                           ("service_network_cidr", "service_networks")):
        entries = out[plural]
        key = "ip" if plural.endswith("vips") else "cidr"
        if entries and isinstance(entries[0], dict):
            out[single] = entries[0].get(key, "")
    if hosts is not None:
        out["progress"] = cluster_progress(cluster, hosts)
    else:
        out.setdefault("progress", cluster_progress(cluster, []))
    if is_sno(cluster):
        out.setdefault("high_availability_mode", "None")
        out["user_managed_networking"] = cluster.get("user_managed_networking", True) is not False
    else:
        out.setdefault("high_availability_mode", "Full")
    if not isinstance(out.get("validations_info"), str):
        out["validations_info"] = json.dumps(out["validations_info"])
    return out


def infra_env_out(infra_env: dict[str, Any]) -> dict[str, Any]:
    """``infra_env`` as a user reads it: ``static_network_config`` is a string in the spec (the real service
    stores the list a user sent encoded), and every column has its value."""
    out = {**_INFRA_ENV_DEFAULTS, **{k: v for k, v in infra_env.items() if v is not None}}
    if not isinstance(out.get("static_network_config"), str):
        out["static_network_config"] = json.dumps(out["static_network_config"])
    return out

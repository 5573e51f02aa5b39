"""The reference service's behaviour: registration, instructions, replies, and the host and cluster states.

It follows the real service (assisted-service-api.md sections 3 to 6) closely enough that an agent cannot
tell the difference on the wire, with one simplification: where the real service refreshes states on an 8 s
monitor tick, this one refreshes a host whenever something about it changes (a poll, a reply, a user action),
which makes it deterministic and fast in tests.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from reference_service import registry, spec
from reference_service.registry import HostView, is_sno, parse_json_field
from reference_service.store import Store, _now_iso

log = logging.getLogger("reference_service")

BASE = "/api/assisted-install"
#: Seconds without a poll after which a host is disconnected (HOST_MAX_DISCONNECTION_TIME).
DISCONNECTION_TIMEOUT = 180.0
PRE_INSTALL = {"discovering", "known", "insufficient", "pending-for-input", "disconnected"}
UNBOUND = {"discovering-unbound", "known-unbound", "insufficient-unbound", "disconnected-unbound"}
STATUS_INFO = {
    "discovering": "Waiting for host to send hardware details",
    "discovering-unbound": "Waiting for host to send hardware details",
    "known": "Host is ready to be installed",
    "known-unbound": "Host is ready to be bound to a cluster",
    "disconnected": "Host has stopped communicating with the installation service",
    "disconnected-unbound": "Host has stopped communicating with the installation service",
    "preparing-for-installation": "Host is preparing for installation",
    "preparing-successful": "Host finished successfully to prepare for installation",
    "installing": "Installation is in progress",
    "installed": "Done",
}


def STEP_TYPES() -> list[str]:
    return list(spec.load_spec()["definitions"]["step-type"]["enum"])


#: Steps that send packets beyond the host (ARP sweeps, pings, DNS, HTTP, NTP name lookups). The demo and the
#: tests disable them where the host is this machine rather than a test host in its own network namespace.
OFF_HOST_STEPS = (
    "connectivity-check", "free-network-addresses", "domain-resolution", "tang-connectivity-check",
    "verify-vips", "api-vip-connectivity-check", "ntp-synchronizer", "dhcp-lease-allocate",
)


class ServiceRefusal(Exception):
    """An API answer other than success: HTTP status plus the real service's reason text."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Settings:
    next_step_seconds: int = 60
    #: The agent image the service expects; None accepts any (no upgrade-agent step, compatible-agent passes).
    agent_image: str | None = None
    #: "none" (no auth, for local use) or "token" (per-infra-env agent token, admin token for users).
    auth: str = "none"
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: Test mode: record every request and allow fault injection through /api/reference/faults.
    test_mode: bool = False
    #: Dry-run installs: a host that reports Rebooting is installed (no controller will report Done).
    dry_run_install: bool = False
    #: Keep inventory interfaces of virtual types (veth, bridge...), as the real ENABLE_VIRTUAL_INTERFACES.
    enable_virtual_interfaces: bool = False
    #: Step types never issued, as the real service's DISABLED_STEPS (comma-separated in the environment).
    disabled_steps: frozenset[str] = frozenset()
    #: Bytes the inventory JSON may take, and the smallest disk it lists (the real AGENT_INVENTORY_MAX_SIZE and
    #: AGENT_INVENTORY_DISK_MIN_SIZE); 0: no limit, and the inventory step gets no flag for it.
    inventory_max_size: int = 0
    inventory_disk_min_size: int = 0


class ReferenceService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.faults: list[dict[str, Any]] = []
        #: Test mode: instructions queued by hand for a host's next poll.
        self.queued: dict[str, list[dict[str, Any]]] = {}

    # -- helpers ----------------------------------------------------------------------------------------
    def view(self, host: dict[str, Any]) -> HostView:
        infra_env = self.store.get_infra_env(host["infra_env_id"]) or {}
        cluster_id = host.get("cluster_id")
        cluster = self.store.get_cluster(cluster_id) if cluster_id else None
        if cluster_id:
            hosts = self.store.list_hosts(cluster_id=cluster_id)
        else:
            hosts = self.store.list_hosts(infra_env_id=host["infra_env_id"])
        hosts = [host if h["id"] == host["id"] else h for h in hosts]
        return HostView(host=host, infra_env=infra_env, cluster=cluster, hosts=hosts, service=self)

    def event(self, message: str, host: dict[str, Any] | None = None, severity: str = "info") -> None:
        self.store.add_event(message, severity=severity, host_id=host["id"] if host else None,
                             cluster_id=host.get("cluster_id") if host else None,
                             infra_env_id=host["infra_env_id"] if host else None)

    def set_status(self, host: dict[str, Any], status: str, info: str | None = None) -> None:
        info = info if info is not None else STATUS_INFO.get(status, status)
        if host.get("status") != status:
            host["status_updated_at"] = _now_iso()
            self.event(f"Host {host_name(host)}: updated status from {host.get('status')} to {status} ({info})",
                       host)
        host["status"], host["status_info"] = status, info

    # -- registration -----------------------------------------------------------------------------------
    def register_host(self, infra_env_id: str, host_id: str, agent_version: str | None) -> dict[str, Any]:
        infra_env = self.store.get_infra_env(infra_env_id)
        if infra_env is None:
            raise ServiceRefusal(404, f"Failed to get infra env {infra_env_id}")
        cluster_id = infra_env.get("cluster_id")
        cluster = self.store.get_cluster(cluster_id) if cluster_id else None
        host = self.store.get_host(infra_env_id, host_id)
        now = _now_iso()
        if host is None:
            if cluster and cluster.get("status") not in ("insufficient", "ready", "pending-for-input",
                                                          "adding-hosts"):
                raise ServiceRefusal(409, f"Cluster {cluster_id} cannot accept new agents due to its current "
                                          f"state: {cluster.get('status')}")
            host = {
                "kind": "Host", "id": host_id, "href": f"{BASE}/v2/infra-envs/{infra_env_id}/hosts/{host_id}",
                "infra_env_id": infra_env_id, "cluster_id": cluster_id, "status": "", "status_info": "",
                "role": "auto-assign", "suggested_role": "auto-assign", "bootstrap": False,
                "created_at": now, "registered_at": now, "checked_in_at": now,
                "progress": {"installation_percentage": 0},
                "media_status": "connected",
            }
            if cluster and is_sno(cluster):
                host["role"], host["bootstrap"] = "master", True
            self.set_status(host, "discovering" if cluster_id else "discovering-unbound")
            self.event(f"Host {host_id}: Successfully registered", host)
        else:
            status = host.get("status", "")
            if status == "installed":
                raise ServiceRefusal(409, f"Host {host_id} is already installed")
            if status == "installing-pending-user-action":
                raise ServiceRefusal(403, "Host is required to be booted from disk")
            if status in ("installing", "installing-in-progress"):
                self.set_status(host, "error", "The host unexpectedly restarted during the installation")
            elif status in PRE_INSTALL or status in UNBOUND or status in ("binding", "resetting-pending-user-action"):
                for name in ("inventory", "images_status", "ntp_sources", "connectivity", "free_addresses",
                             "domain_name_resolutions", "disks_info"):
                    host.pop(name, None)
                host["progress"] = {"installation_percentage": 0}
                self.set_status(host, "discovering" if cluster_id else "discovering-unbound")
            elif status in ("preparing-for-installation", "preparing-successful"):
                self.set_status(host, "known")
            host["registered_at"] = host["checked_in_at"] = now
        if agent_version:
            host["discovery_agent_version"] = agent_version
        self.refresh_host(host)
        runner_args = {"infra_env_id": infra_env_id, "host_id": host_id,
                       "agent_version": self.settings.agent_image or agent_version or ""}
        return {**host, "next_step_runner_command": {"command": "", "args": [json.dumps(runner_args)]}}

    # -- instructions -----------------------------------------------------------------------------------
    def next_steps(self, infra_env_id: str, host_id: str, timestamp: int | None,
                   agent_version: str | None) -> dict[str, Any]:
        host = self.require_host(infra_env_id, host_id)
        host["checked_in_at"] = _now_iso()
        host["_checked_in"] = time.time()
        if timestamp:
            host["timestamp"] = timestamp
        if agent_version:
            host["discovery_agent_version"] = agent_version
        self.refresh_host(host)
        status = host["status"]
        seconds = 120 if status in registry.SLOW_STATES else self.settings.next_step_seconds
        if status in registry.EXIT_STATES:
            return {"next_instruction_seconds": 0, "post_step_action": "exit", "instructions": []}
        view = self.view(host)
        if self._needs_upgrade(host):
            step_types = ["upgrade-agent"]
        else:
            step_types = registry.STATE_STEPS.get(status, [])
        instructions = []
        for step_type in step_types:
            if step_type in self.settings.disabled_steps:
                continue
            builder = registry.STEP_ARGUMENTS.get(step_type)
            if builder is None:
                continue
            try:
                args = builder(view)
            except Exception:  # a builder bug must not stop the host from being served
                log.exception("building arguments of %s for host %s failed", step_type, host_id)
                continue
            if args is None:
                continue
            instructions.append({"step_type": step_type, "step_id": f"{step_type}-{uuid.uuid4().hex[:8]}",
                                 "args": args})
        instructions.extend(self.queued.pop(host_id, []))
        return {"next_instruction_seconds": seconds, "post_step_action": "continue", "instructions": instructions}

    def queue_instruction(self, host_id: str, step_type: str, args: list[str]) -> dict[str, Any]:
        step = {"step_type": step_type, "step_id": f"{step_type}-{uuid.uuid4().hex[:8]}", "args": args}
        self.queued.setdefault(host_id, []).append(step)
        return step

    def _needs_upgrade(self, host: dict[str, Any]) -> bool:
        expected = self.settings.agent_image
        return bool(expected) and host.get("status") in (
            "binding", "discovering", "discovering-unbound", "insufficient", "insufficient-unbound", "known",
            "pending-for-input", "known-unbound") and host.get("discovery_agent_version") != expected

    def require_host(self, infra_env_id: str, host_id: str) -> dict[str, Any]:
        host = self.store.get_host(infra_env_id, host_id)
        if host is None:
            raise ServiceRefusal(404, f"host {host_id} not found in infra env {infra_env_id}")
        return host

    # -- replies ----------------------------------------------------------------------------------------
    def post_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any]) -> None:
        checked = reply
        if self.settings.test_mode and isinstance(reply, dict) and reply.get("step_type") not in STEP_TYPES():
            checked = {**reply, "step_type": "execute"}  # test mode accepts third-party step types
        problems = spec.errors("step-reply", checked)
        if problems:
            raise ServiceRefusal(400, "; ".join(problems))
        host = self.require_host(infra_env_id, host_id)
        step_type = reply.get("step_type", "")
        exit_code = int(reply.get("exit_code") or 0)
        output = reply.get("output") or ""
        parsed: Any = None
        model = spec.STEP_OUTPUT_MODELS.get(step_type)
        if exit_code == 256:
            host["media_status"] = "disconnected"
        elif exit_code == 0:
            host["media_status"] = "connected"
        if model and output and (exit_code == 0 or step_type in (
                "installation-disk-speed-check", "container-image-availability")):
            try:
                parsed = json.loads(output)
            except ValueError as exc:
                raise ServiceRefusal(400, f"Failed to decode {step_type} output: {exc}") from exc
            problems = spec.errors(model, parsed)
            if problems:
                raise ServiceRefusal(400, f"Failed to validate {step_type} output: {'; '.join(problems[:5])}")
        elif output and exit_code == 0:
            try:
                parsed = json.loads(output)
            except ValueError:
                parsed = output
        self.store.add_reply(infra_env_id, host_id, reply)
        handler = registry.REPLY_HANDLERS.get(step_type)
        if handler is not None:
            view = self.view(host)
            handler(view, parsed if exit_code == 0 or parsed is not None else None, reply)
            host = view.host
        if exit_code != 0:
            self.event(f"Host {host_name(host)}: step {step_type} failed with exit code {exit_code}: "
                       f"{reply.get('error', '')}", host, "warning")
        self.refresh_host(host)

    # -- states -----------------------------------------------------------------------------------------
    def validations(self, view: HostView) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        unbound = not view.host.get("cluster_id")
        for v in registry.VALIDATIONS.values():
            if unbound and not v.unbound:
                continue
            try:
                outcome = v.func(view)
            except Exception as exc:
                log.exception("validation %s failed", v.id)
                outcome = ("error", f"validation failed: {exc}")
            if outcome is None:
                continue
            out.setdefault(v.category, []).append({"id": v.id, "status": outcome[0], "message": outcome[1]})
        return out

    def refresh_host(self, host: dict[str, Any]) -> dict[str, Any]:
        """Recompute validations and the status they imply, save the host, then its cluster."""
        view = self.view(host)
        results = self.validations(view)
        host["validations_info"] = json.dumps(results)
        flat = {r["id"]: r for rs in results.values() for r in rs}
        status = host.get("status", "")
        unbound = not host.get("cluster_id")
        connected = time.time() - float(host.get("_checked_in", time.time())) < DISCONNECTION_TIMEOUT
        # "valid inventory" is the hardware area's call (has-inventory); without that area, any inventory
        has_inventory = flat.get("has-inventory", {}).get("status", "success") == "success" and bool(
            host.get("inventory"))

        def failing(pred: Any) -> list[str]:
            return [r["message"] for vid, r in flat.items()
                    if pred(registry.VALIDATIONS[vid]) and r["status"] in ("failure", "pending", "error")]

        if status in PRE_INSTALL or status in UNBOUND:
            suffix = "-unbound" if unbound else ""
            hw = failing(lambda v: v.hardware_gate)
            if not connected:
                self.set_status(host, "disconnected" + suffix)
            elif not has_inventory:
                self.set_status(host, "discovering" + suffix)
            elif hw:
                self.set_status(host, "insufficient" + suffix,
                                "Host does not meet the minimum hardware requirements: " + " ; ".join(hw))
            elif unbound:
                self.set_status(host, "known-unbound")
            elif flat.get("machine-cidr-defined", {}).get("status") in ("failure", "pending"):
                self.set_status(host, "pending-for-input",
                                "Waiting for user input: " + flat["machine-cidr-defined"]["message"])
            else:
                blocking = failing(lambda v: v.blocking)
                if blocking:
                    self.set_status(host, "insufficient", "Host cannot be installed due to following failing "
                                    "validation(s): " + " ; ".join(blocking))
                else:
                    self.set_status(host, "known")
        elif status == "preparing-for-installation":
            disk = flat.get("sufficient-installation-disk-speed", {}).get("status", "success")
            images = flat.get("container-images-available", {}).get("status", "success")
            if images == "failure":
                self.set_status(host, "preparing-failed", "Host failed to prepare for installation: "
                                + flat["container-images-available"]["message"])
            elif disk == "failure":
                self.set_status(host, "insufficient", flat["sufficient-installation-disk-speed"]["message"])
            elif disk == "success" and images == "success":
                self.set_status(host, "preparing-successful")
        self.store.save_host(host)
        if host.get("cluster_id"):
            self.refresh_cluster(host["cluster_id"])
        return host

    def refresh_cluster(self, cluster_id: str) -> None:
        cluster = self.store.get_cluster(cluster_id)
        if cluster is None:
            return
        hosts = self.store.list_hosts(cluster_id=cluster_id)
        status = cluster.get("status")
        statuses = [h["status"] for h in hosts]
        new, info = status, cluster.get("status_info", "")
        if status in ("insufficient", "ready", "pending-for-input"):
            needed = required_hosts(cluster)
            if len(hosts) >= needed and all(s == "known" for s in statuses):
                new, info = "ready", "Cluster ready to be installed"
            else:
                new, info = "insufficient", (f"Cluster is not ready for install: {statuses.count('known')} of "
                                             f"{max(needed, len(hosts))} hosts are known")
        elif status == "preparing-for-installation":
            if any(s in ("preparing-failed", "insufficient") for s in statuses):
                new, info = "insufficient", "Cluster failed to prepare for installation"
                for h in hosts:
                    if h["status"] in ("preparing-for-installation", "preparing-successful", "preparing-failed"):
                        self.set_status(h, "known")
                        self.store.save_host(h)
            elif hosts and all(s == "preparing-successful" for s in statuses):
                new, info = "installing", "Installation in progress"
                cluster["install_started_at"] = _now_iso()
                for h in hosts:
                    self.set_status(h, "installing")
                    self.store.save_host(h)
        elif status in ("installing", "finalizing"):
            if any(s == "error" for s in statuses):
                new, info = "error", "cluster has hosts in error"
            elif hosts and all(s in ("installed", "added-to-existing-cluster") for s in statuses):
                new, info = "installed", "Cluster is installed"
                cluster["install_completed_at"] = _now_iso()
        if new != status:
            self.store.add_event(f"Updated status of the cluster {cluster.get('name')} to {new}",
                                 cluster_id=cluster_id)
        cluster["status"], cluster["status_info"] = new, info
        cluster["total_host_count"] = len(hosts)
        cluster["ready_host_count"] = statuses.count("known")
        cluster["enabled_host_count"] = len(hosts)
        cluster["updated_at"] = _now_iso()
        self.store.save_cluster(cluster)

    def install_cluster(self, cluster_id: str) -> dict[str, Any]:
        cluster = self.store.get_cluster(cluster_id)
        if cluster is None:
            raise ServiceRefusal(404, f"cluster {cluster_id} not found")
        self.refresh_cluster(cluster_id)
        cluster = self.store.get_cluster(cluster_id) or cluster
        if cluster["status"] != "ready":
            raise ServiceRefusal(409, f"Cluster is not ready for installation: {cluster['status_info']}")
        hosts = self.store.list_hosts(cluster_id=cluster_id)
        assign_roles(cluster, hosts)
        for h in hosts:
            self.set_status(h, "preparing-for-installation")
            self.store.save_host(h)
        cluster["status"], cluster["status_info"] = "preparing-for-installation", "Preparing cluster for installation"
        self.store.save_cluster(cluster)
        self.store.add_event("Cluster installation started", cluster_id=cluster_id)
        for h in hosts:
            self.refresh_host(h)
        return self.store.get_cluster(cluster_id) or cluster


def host_name(host: dict[str, Any]) -> str:
    if host.get("requested_hostname"):
        return str(host["requested_hostname"])
    inv = parse_json_field(host, "inventory") or {}
    return str(inv.get("hostname") or host["id"])


def required_hosts(cluster: dict[str, Any]) -> int:
    return 1 if is_sno(cluster) else int(cluster.get("control_plane_count") or 3)


def assign_roles(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> None:
    """Auto-assign roles as the service does at install time: masters first, one of them bootstrap."""
    masters_needed = required_hosts(cluster)
    masters = [h for h in hosts if h.get("role") == "master"]
    for h in hosts:
        if h.get("role") in (None, "", "auto-assign"):
            if len(masters) < masters_needed:
                h["role"] = "master"
                masters.append(h)
            else:
                h["role"] = "worker"
    if masters and not any(h.get("bootstrap") for h in hosts):
        masters[0]["bootstrap"] = True

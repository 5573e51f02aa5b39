"""The orchestrator: ties the rules to the store. Registration, instructions, replies, and the host and cluster
states, applied to documents loaded from and saved to the store.

Every decision is a rule's (``reference_service.rules``); this module loads the documents a rule needs, calls
it, and applies what it decided: status changes with their events, saved hosts and clusters. It is also the
rules' :class:`~reference_service.rules.documents.ServicePort`. It follows the real service
(assisted-service-api.md sections 3 to 6) closely enough that an agent cannot tell the difference on the wire.
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from reference_service import os_image, spec
from reference_service.errors import ServiceRefusal
from reference_service.rules import ip_collisions, registry, states
from reference_service.rules.documents import HostView, host_name, is_sno
from reference_service.rules.install import progress_update
from reference_service.store import Store, _now_iso

log = logging.getLogger("reference_service")

BASE = "/api/assisted-install"


def STEP_TYPES() -> list[str]:
    return list(spec.load_spec()["definitions"]["step-type"]["enum"])


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

    # -- the rules' port ----------------------------------------------------------------------------------
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
        info = info if info is not None else states.STATUS_INFO.get(status, status)
        if host.get("status") != status:
            host["status_updated_at"] = _now_iso()
            self.event(f"Host {host_name(host)}: updated status from {host.get('status')} to {status} ({info})",
                       host)
        host["status"], host["status_info"] = status, info

    def os_image_digest(self) -> str | None:
        image = os_image.os_image()
        return image[1] if image else None

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
            if cluster and cluster.get("status") not in states.ACCEPTING_CLUSTER_STATES:
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
            change, forget = states.on_reregistration(host, bound=bool(cluster_id))
            if forget:
                for name in states.DISCOVERY_FIELDS:
                    host.pop(name, None)
                host["progress"] = {"installation_percentage": 0}
            if change:
                self.set_status(host, *change)
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
        seconds = states.SLOW_POLL_SECONDS if status in states.SLOW_STATES else self.settings.next_step_seconds
        if status in states.EXIT_STATES:
            return {"next_instruction_seconds": 0, "post_step_action": "exit", "instructions": []}
        view = self.view(host)
        if states.needs_upgrade(host, self.settings.agent_image):
            step_types = ["upgrade-agent"]
        else:
            step_types = states.STATE_STEPS.get(status, [])
        before = copy.deepcopy(host)
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
        if host != before:  # a builder recorded what it issued (write-image, reboot)
            self.store.save_host(host)
        instructions.extend(self.queued.pop(host_id, []))
        return {"next_instruction_seconds": seconds, "post_step_action": "continue", "instructions": instructions}

    def queue_instruction(self, host_id: str, step_type: str, args: list[str]) -> dict[str, Any]:
        step = {"step_type": step_type, "step_id": f"{step_type}-{uuid.uuid4().hex[:8]}", "args": args}
        self.queued.setdefault(host_id, []).append(step)
        return step

    def require_host(self, infra_env_id: str, host_id: str) -> dict[str, Any]:
        host = self.store.get_host(infra_env_id, host_id)
        if host is None:
            raise ServiceRefusal(404, f"host {host_id} not found in infra env {infra_env_id}")
        return host
    # -- replies ----------------------------------------------------------------------------------------
    def post_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any]) -> None:
        self.apply_reply(infra_env_id, host_id, reply, self.check_reply(reply))

    def check_reply(self, reply: Any) -> Any:
        """The reply checked against the spec and its output parsed and checked against the step's model:
        pure (no store, no state), so that a large reply can be checked in a worker thread."""
        checked = reply
        if self.settings.test_mode and isinstance(reply, dict) and reply.get("step_type") not in STEP_TYPES():
            checked = {**reply, "step_type": "execute"}  # test mode accepts third-party step types
        problems = spec.errors("step-reply", checked)
        if problems:
            raise ServiceRefusal(400, "; ".join(problems))
        step_type = reply.get("step_type", "")
        exit_code = int(reply.get("exit_code") or 0)
        output = reply.get("output") or ""
        parsed: Any = None
        model = spec.STEP_OUTPUT_MODELS.get(step_type)
        if model and output and (exit_code == 0 or step_type in (
                "installation-disk-speed-check", "container-image-availability")):
            try:
                parsed = json.loads(output)
            except (ValueError, RecursionError) as exc:
                raise ServiceRefusal(400, f"Failed to decode {step_type} output: {str(exc)[:200]}") from exc
            problems = spec.errors(model, parsed)
            if problems:
                raise ServiceRefusal(400, f"Failed to validate {step_type} output: {'; '.join(problems[:5])}")
        elif output and exit_code == 0:
            try:
                parsed = json.loads(output)
            except (ValueError, RecursionError):
                parsed = output
        return parsed

    def apply_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any], parsed: Any) -> None:
        """Store a reply ``check_reply`` accepted (``parsed`` is its output) and let its step's rules act on it."""
        host = self.require_host(infra_env_id, host_id)
        step_type = reply.get("step_type", "")
        exit_code = int(reply.get("exit_code") or 0)
        if exit_code == 256:
            host["media_status"] = "disconnected"
        elif exit_code == 0:
            host["media_status"] = "connected"
        self.store.add_reply(infra_env_id, host_id, reply)
        handler = registry.REPLY_HANDLERS.get(step_type)
        if handler is not None:
            view = self.view(host)
            cluster = copy.deepcopy(view.cluster)
            handler(view, parsed if exit_code == 0 or parsed is not None else None, reply)
            host = view.host
            if view.cluster is not None and view.cluster != cluster:  # a DHCP lease, a VIP verdict
                self.store.save_cluster(view.cluster)
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
        results = self.validations(self.view(host))
        host["validations_info"] = json.dumps(results)
        connected = time.time() - float(host.get("_checked_in", time.time())) < states.DISCONNECTION_TIMEOUT
        change = states.host_status(host, results, connected)
        if change:
            self.set_status(host, *change)
        self.store.save_host(host)
        if host.get("cluster_id"):
            self.refresh_cluster(host["cluster_id"])
        return host

    def refresh_cluster(self, cluster_id: str) -> None:
        cluster = self.store.get_cluster(cluster_id)
        if cluster is None:
            return
        hosts = self.store.list_hosts(cluster_id=cluster_id)
        statuses = [h["status"] for h in hosts]  # before the hosts the cluster takes along move
        change = states.cluster_status(cluster, hosts)
        if change.install_started:
            cluster["install_started_at"] = _now_iso()
        for h, status in change.host_moves:
            self.set_status(h, status)
            self.store.save_host(h)
        if change.install_completed:
            cluster["install_completed_at"] = _now_iso()
        if change.status != cluster.get("status"):
            self.store.add_event(f"Updated status of the cluster {cluster.get('name')} to {change.status}",
                                 cluster_id=cluster_id)
        cluster["status"], cluster["status_info"] = change.status, change.info
        ip_collisions.update_cluster(cluster, hosts)  # read by the hosts' no-ip-collisions-in-network
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
        states.assign_roles(cluster, hosts)
        for h in hosts:
            self.set_status(h, "preparing-for-installation")
            self.store.save_host(h)
        cluster["status"], cluster["status_info"] = "preparing-for-installation", "Preparing cluster for installation"
        self.store.save_cluster(cluster)
        self.store.add_event("Cluster installation started", cluster_id=cluster_id)
        for h in hosts:
            self.refresh_host(h)
        return self.store.get_cluster(cluster_id) or cluster

    def update_progress(self, host: dict[str, Any], stage: str, info: str) -> None:
        """A host's installation progress report, as the rules judge it (ServiceRefusal on 400/409)."""
        cluster = self.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
        update = progress_update(host, cluster, stage, info, dry_run=self.settings.dry_run_install, now=_now_iso())
        if update is None:
            return
        host["progress"] = update.progress
        if update.stages is not None:
            host["progress_stages"] = update.stages
        if update.status:
            self.set_status(host, *update.status)
        if update.event:
            self.event(update.event, host)
        self.refresh_host(host)

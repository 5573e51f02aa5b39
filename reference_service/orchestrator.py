"""The orchestrator: ties the rules to the store. Registration, instructions, replies, and the host and cluster
states, applied to documents loaded from and saved to the store.

Every decision is a rule's (``rules``); this module loads the documents a rule needs, calls
it, and applies what it decided: status changes with their events, saved hosts and clusters. It is also the
rules' :class:`~rules.documents.ServicePort`. It follows the real service
(assisted-service-api.md sections 3 to 6) closely enough that an agent cannot tell the difference on the wire.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from common.errors import ServiceRefusal
from reference_service import reply_check
from reference_service.os_image import OsImages
from reference_service.reply_check import Derived
from reference_service.reply_workers import ReplyWorkers
from reference_service.settings import Settings
from reference_service.settler import Settler
from reference_service.store.database import Store, _now_iso
from rules import states
from rules.cluster_model import ClusterModel
from rules.documents import HostView, WithHost, host_name, is_sno
from rules.events import status_severity
from rules.install import progress_update
from rules.registry import CHECKED, Rulebook

log = logging.getLogger("reference_service")
#: What the runner command names when neither --agent-image nor the agent says an image: the real service's
#: default AGENT_DOCKER_IMAGE (an agent validates it, as the Go agent does, and waits an hour when it is empty).
DEFAULT_AGENT_IMAGE = "quay.io/edge-infrastructure/assisted-installer-agent:latest"

BASE = "/api/assisted-install"
def _scope(host: dict[str, Any]) -> str:
    """Which model a host is in: its cluster's, or its infra-env's while it is bound to no cluster."""
    cluster_id = host.get("cluster_id")
    return str(cluster_id) if cluster_id else f"infra-env:{host['infra_env_id']}"


def _step_id(step_type: str) -> str:
    """The real service's form (``<type>-<8 hex digits>``); from ``random``, not uuid4, whose read of the
    kernel's entropy pool was 3 % of a busy service's time: a step id only has to differ from the host's last."""
    return f"{step_type}-{random.getrandbits(32):08x}"


class ReferenceService:
    def __init__(self, store: Store, settings: Settings, rulebook: Rulebook | None = None) -> None:
        self.store = store
        self.settings = settings
        #: The rules this service evaluates hosts and applies replies by: every area's, unless given.
        self.rulebook = Rulebook.of() if rulebook is None else rulebook
        self.faults: list[dict[str, Any]] = []
        #: Test mode: instructions queued by hand for a host's next poll.
        self.queued: dict[str, list[dict[str, Any]]] = {}
        #: The model of each cluster (and of each infra-env's unbound hosts): what the rules know of it.
        self.models: dict[str, ClusterModel] = {}
        #: Evaluates hosts and clusters, at once or between requests (``settler``).
        self.settler = Settler(self)
        #: The OS image write-image hands out, and its digest (computed once per file version).
        self.os_images = OsImages()
        #: The process big step replies are checked in (started on the first one; ended with the service).
        self.reply_workers = ReplyWorkers(self.rulebook)
        store.host_listeners.append(self._host_changed)

    def model(self, key: str) -> ClusterModel:
        """The model of cluster ``key`` (or of an infra-env's unbound hosts: ``infra-env:<id>``)."""
        found = self.models.get(key)
        if found is None:
            found = self.models[key] = ClusterModel()
        return found

    def model_of(self, host: dict[str, Any]) -> ClusterModel:
        return self.model(_scope(host))

    def _host_changed(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """A stored host document replaced or deleted: the models that have it follow (one host, not a scan)."""
        if old is not None and (new is None or _scope(old) != _scope(new)):
            gone = self.models.get(_scope(old))
            if gone is not None:
                gone.remove(str(old["id"]))
        if new is not None:
            model = self.models.get(_scope(new))
            if model is not None:
                model.update(new)

    def forget_models(self) -> None:
        """Drops the models of clusters and infra-envs that are gone."""
        for key in list(self.models):
            scope = key.removeprefix("infra-env:")
            exists = self.store.get_infra_env(scope) if key != scope else self.store.peek_cluster(scope)
            if exists is None:
                del self.models[key]

    # -- the rules' port ----------------------------------------------------------------------------------
    def view(self, host: dict[str, Any], reading: bool = False) -> HostView:
        """The host in its neighbourhood for the rules. ``reading``: the caller's rules only read the cluster
        (validations, step arguments), so the view holds the stored document itself, not a copy (at 1,000
        hosts the copy was a fifth of a view's cost, docs/scale.md); a reply's handlers get a copy to change."""
        infra_env = self.store.get_infra_env(host["infra_env_id"]) or {}
        cluster_id = host.get("cluster_id")
        cluster = None if not cluster_id else self.store.peek_cluster(cluster_id) if reading else \
            self.store.get_cluster(cluster_id)
        stored = self.store.peers(cluster_id=cluster_id) if cluster_id else \
            self.store.peers(infra_env_id=host["infra_env_id"])
        hosts = WithHost(stored, host)  # the stored documents, shared (rules only read them), with this one's copy
        model = self.model_of(host)
        model.ensure(self.store.peek_cluster(cluster_id) if cluster_id else None, lambda: stored)
        model.update(host)  # (the store tells the model of every saved document: ``_host_changed``)
        return HostView(host=host, infra_env=infra_env, cluster=cluster, hosts=hosts, service=self, model=model)

    def event(self, message: str, host: dict[str, Any] | None = None, severity: str = "info") -> None:
        self.store.add_event(message, severity=severity, host_id=host["id"] if host else None,
                             cluster_id=host.get("cluster_id") if host else None,
                             infra_env_id=host["infra_env_id"] if host else None)

    def set_status(self, host: dict[str, Any], status: str, info: str | None = None) -> None:
        info = info if info is not None else states.STATUS_INFO.get(status, status)
        if host.get("status") != status:
            host["status_updated_at"] = _now_iso()
            self.event(f"Host {host_name(host)}: updated status from {host.get('status')} to {status} ({info})",
                       host, status_severity(status))
        host["status"], host["status_info"] = status, info

    def os_image_digest(self) -> str | None:
        image = self.os_images.find(self.settings.os_image)
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
            limit = self.settings.max_hosts_per_infra_env
            if self.store.count_hosts(infra_env_id) >= limit:  # one token cannot fill the service with hosts
                raise ServiceRefusal(429, f"infra env {infra_env_id} already has {limit} hosts, the most this "
                                          "service takes in one (--max-hosts-per-infra-env)")
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
            # bound: to its infra-env's cluster, or to the one it was bound to (late binding)
            change, forget = states.on_reregistration(host, bound=bool(cluster_id or host.get("cluster_id")))
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
                       "agent_version": self.settings.agent_image or agent_version or DEFAULT_AGENT_IMAGE}
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
        self.settler.polled(host)
        status = host["status"]
        seconds = states.SLOW_POLL_SECONDS if status in states.SLOW_STATES else self.settings.next_step_seconds
        if status in states.EXIT_STATES:
            return {"next_instruction_seconds": 0, "post_step_action": "exit", "instructions": []}
        view = self.view(host, reading=True)
        if states.needs_upgrade(host, self.settings.agent_image):
            step_types = ["upgrade-agent"]
        else:
            step_types = states.STATE_STEPS.get(status, [])
        before = self.store.peek_host(infra_env_id, host_id)
        instructions = []
        for step_type in step_types:
            if step_type in self.settings.disabled_steps:
                continue
            builder = self.rulebook.step_arguments.get(step_type)
            if builder is None:
                continue
            try:
                args = builder(view)
            except Exception:  # a builder bug must not stop the host from being served
                log.exception("building arguments of %s for host %s failed", step_type, host_id)
                continue
            if args is None:
                continue
            instructions.append({"step_type": step_type, "step_id": _step_id(step_type),
                                 "args": args})
        if host != before:  # a builder recorded what it issued (write-image, reboot)
            self.store.save_host(host)
        instructions.extend(self.queued.pop(host_id, []))
        return {"next_instruction_seconds": seconds, "post_step_action": "continue", "instructions": instructions}

    def queue_instruction(self, host_id: str, step_type: str, args: list[str]) -> dict[str, Any]:
        step = {"step_type": step_type, "step_id": _step_id(step_type), "args": args}
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
        """The reply's parsed output, or ServiceRefusal(400) (``reply_check``: pure, so it may run in a thread)."""
        return reply_check.check_reply(reply, test_mode=self.settings.test_mode)

    def apply_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any], parsed: Any,
                    derived: Derived | None = None) -> None:
        """Store a reply ``check_reply`` accepted (``parsed`` is its output) and let its step's rules act on it;
        ``derived``: what the rules derive from the fields it sets, when a reply worker derived it."""
        host = self.require_host(infra_env_id, host_id)
        step_type = reply.get("step_type", "")
        exit_code = int(reply.get("exit_code") or 0)
        if exit_code == 256:
            host["media_status"] = "disconnected"
        elif exit_code == 0:
            host["media_status"] = "connected"
        self.store.add_reply(infra_env_id, host_id, reply)
        handler = self.rulebook.reply_handlers.get(step_type)
        if handler is not None:
            view = self.view(host)
            handler(view, parsed if exit_code == 0 or parsed is not None else None, reply)
            host = view.host
            self._keep_output(view.model, host, reply, parsed, derived.fields if derived else {})
            if derived is not None and derived.reach is not None:  # from the worker that checked the reply
                view.model.offer_reach(host, *derived.reach)
            elif step_type == "connectivity-check" and isinstance(parsed, dict):  # decoded by the check
                view.model.offer_report(host, parsed)
            if view.cluster is not None and view.cluster != self.store.peek_cluster(view.cluster["id"]):
                # a DHCP lease, a VIP verdict
                self.store.save_cluster(view.cluster)
        self.settler.replied(host)

    def _keep_output(self, model: ClusterModel, host: dict[str, Any], reply: dict[str, Any], parsed: Any,
                     derived: dict[str, dict[str, Any]]) -> None:
        """Fields a handler set to the reply's output hold the store's handle to it instead (``stored_text``:
        a big text is then not kept in memory twice, nor at all once written), and what the rules derive from
        them is derived now, from the output already parsed, not from the text read back later."""
        output, kept = reply.get("output"), None
        if not isinstance(output, str) or not output:
            return
        for name, value in list(host.items()):
            if value is output:
                kept = kept if kept is not None else self.store.keep_text(host["id"], reply)
                host[name] = kept
                if name in derived:
                    model.prime(host, name, derived[name])
                elif parsed is not CHECKED:
                    model.prime(host, name, self.rulebook.derive_all(name, parsed))

    # -- states (the settler's) --------------------------------------------------------------------------
    def refresh_host(self, host: dict[str, Any], durable: bool = True) -> dict[str, Any]:
        """The host evaluated now (``Settler.evaluate``), whatever its cluster's size: a user's change."""
        return self.settler.evaluate(host, durable)

    def refresh_cluster(self, cluster_id: str, full: bool = True) -> None:
        self.settler.evaluate_cluster(cluster_id, full)

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

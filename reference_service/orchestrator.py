"""The orchestrator: ties the rules to the store. Registration, instructions, replies, and the host and cluster
states, applied to documents loaded from and saved to the store.

Every decision is a rule's (``rules``); this module loads the documents a rule needs, calls
it, and applies what it decided: status changes with their events, saved hosts and clusters. It is also the
rules' :class:`~rules.documents.ServicePort`. It follows the real service
(assisted-service-api.md sections 3 to 6) closely enough that an agent cannot tell the difference on the wire.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
import zlib
from typing import Any

from common.errors import ServiceRefusal
from reference_service import os_image, reply_check
from reference_service.reply_check import Derived
from reference_service.settings import Settings
from reference_service.store.database import Store, _now_iso
from rules import cluster_digest, ip_collisions, registry, states
from rules.cluster_digest import ClusterDigest
from rules.documents import HostView, WithHost, host_name, is_sno, prime
from rules.install import progress_update

log = logging.getLogger("reference_service")

BASE = "/api/assisted-install"
#: Clusters up to this many hosts are re-evaluated on every request that touches one of their hosts (exact and
#: immediate: what a person trying a few hosts sees). Bigger ones are evaluated as the real service's monitor
#: does it: a host when its own document changes, when what the monitor computed for its cluster changed
#: (the digest, the cluster document) and at least every REEVALUATE_SECONDS; the cluster when a host's status
#: changes and on every monitor tick. So a poll or a reply costs the same with 100 hosts as with 10,000.
EAGER_LIMIT = 50
#: The real service's host monitor interval.
MONITOR_SECONDS = 8.0
#: How old a big cluster's host's evaluation may get when nothing it depends on changed (its time-based
#: inputs: clock skew, check-in).
REEVALUATE_SECONDS = 60.0
#: A big cluster's host whose document a reply changed is evaluated this long after that reply, by the settler
#: (monitor.settle): the five to eight replies of one poll cycle arrive together and cost one evaluation.
SETTLE_SECONDS = 0.5
#: A big cluster's facts before the monitor's first digest: no majority group yet (pending), no names.
NO_DIGEST = ClusterDigest(hostname_counts={}, hostnames={}, inventory_hosts=0, majority={})


def _step_id(step_type: str) -> str:
    """The real service's form (``<type>-<8 hex digits>``); from ``random``, not uuid4, whose read of the
    kernel's entropy pool was 3 % of a busy service's time: a step id only has to differ from the host's last."""
    return f"{step_type}-{random.getrandbits(32):08x}"


class ReferenceService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.faults: list[dict[str, Any]] = []
        #: Test mode: instructions queued by hand for a host's next poll.
        self.queued: dict[str, list[dict[str, Any]]] = {}
        #: The cluster-wide facts of each big cluster, as the monitor last computed them (monitor.py).
        self.digests: dict[str, ClusterDigest] = {}
        #: Bumped by the monitor when what it computed for a big cluster changed (monitor.py).
        self.cluster_versions: dict[str, int] = {}
        self.seen_clusters: dict[str, Any] = {}
        #: When each host of a big cluster was last evaluated (time.monotonic()) and its cluster's version then.
        self.evaluated: dict[str, tuple[float, int]] = {}
        #: Big clusters' hosts changed by a reply and not evaluated since: id -> (infra-env id, since when).
        self.unsettled: dict[str, tuple[str, float]] = {}
        #: Big clusters with a host whose status, role or cluster changed since the cluster was evaluated.
        self.unsettled_clusters: set[str] = set()

    def eager(self, host: dict[str, Any]) -> bool:
        """Whether this host's cluster is small enough to be re-evaluated on every request (EAGER_LIMIT)."""
        cluster_id = host.get("cluster_id")
        return not cluster_id or self.store.cluster_size(cluster_id) <= EAGER_LIMIT

    # -- the rules' port ----------------------------------------------------------------------------------
    def view(self, host: dict[str, Any]) -> HostView:
        infra_env = self.store.get_infra_env(host["infra_env_id"]) or {}
        cluster_id = host.get("cluster_id")
        cluster = self.store.get_cluster(cluster_id) if cluster_id else None
        stored = self.store.peers(cluster_id=cluster_id) if cluster_id else \
            self.store.peers(infra_env_id=host["infra_env_id"])
        hosts = WithHost(stored, host)  # the stored documents, shared (rules only read them), with this one's copy
        digest = self.digests.get(cluster_id, NO_DIGEST) if cluster_id and len(hosts) > EAGER_LIMIT else None
        return HostView(host=host, infra_env=infra_env, cluster=cluster, hosts=hosts, service=self, digest=digest)

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
        if self.eager(host) or str(host.get("status", "")).startswith("disconnected"):
            self.refresh_host(host, durable=False)  # (a disconnected host is back at once)
        else:  # only the check-in changed: kept in memory, written with the host's next change or by the monitor
            if self._due(host):  # evaluated by the settler, between requests, as the real monitor does
                self.unsettled.setdefault(host_id, (infra_env_id, 0.0))
            self.store.save_host(host, durable=False)
        status = host["status"]
        seconds = states.SLOW_POLL_SECONDS if status in states.SLOW_STATES else self.settings.next_step_seconds
        if status in states.EXIT_STATES:
            return {"next_instruction_seconds": 0, "post_step_action": "exit", "instructions": []}
        view = self.view(host)
        if states.needs_upgrade(host, self.settings.agent_image):
            step_types = ["upgrade-agent"]
        else:
            step_types = states.STATE_STEPS.get(status, [])
        before = self.store.peek_host(infra_env_id, host_id)
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
            instructions.append({"step_type": step_type, "step_id": _step_id(step_type),
                                 "args": args})
        if host != before:  # a builder recorded what it issued (write-image, reboot)
            self.store.save_host(host)
        instructions.extend(self.queued.pop(host_id, []))
        return {"next_instruction_seconds": seconds, "post_step_action": "continue", "instructions": instructions}

    def _due(self, host: dict[str, Any]) -> bool:
        """A big cluster's host is evaluated after a poll when its cluster's version moved since it was last,
        or when it was not for REEVALUATE_SECONDS."""
        last = self.evaluated.get(host["id"])
        # between half and all of REEVALUATE_SECONDS, by host: hosts evaluated together are not due together
        spread = 0.5 + (zlib.crc32(str(host["id"]).encode()) % 1000) / 2000
        return last is None or last[1] != self.cluster_versions.get(str(host.get("cluster_id")), 0) or \
            time.monotonic() - last[0] >= REEVALUATE_SECONDS * spread

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
        handler = registry.REPLY_HANDLERS.get(step_type)
        if handler is not None:
            view = self.view(host)
            handler(view, parsed if exit_code == 0 or parsed is not None else None, reply)
            host = view.host
            self._keep_output(host, reply, parsed, derived.fields if derived else {})
            if derived is not None and derived.reach is not None:
                cluster_digest.offer_reach(host, *derived.reach)
            if view.cluster is not None and view.cluster != self.store.peek_cluster(view.cluster["id"]):
                # a DHCP lease, a VIP verdict
                self.store.save_cluster(view.cluster)
        if exit_code != 0:
            self.event(f"Host {host_name(host)}: step {step_type} failed with exit code {exit_code}: "
                       f"{reply.get('error', '')}", host, "warning")
        if self.eager(host):
            self.refresh_host(host)
        elif host != self.store.peek_host(infra_env_id, host_id):
            # a big cluster's host is evaluated once for its cycle's replies (settle), or not at all when the
            # reply changed nothing; and written then, once, not with each reply (the reply itself is written
            # before it is acknowledged: a kill -9 before the settler loses what the host's next cycle resends)
            self.store.save_host(host, durable=False)
            self.unsettled.setdefault(host_id, (infra_env_id, time.monotonic()))

    def _keep_output(self, host: dict[str, Any], reply: dict[str, Any], parsed: Any,
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
                if name in derived or parsed is not registry.CHECKED:
                    prime(host, name, parsed, derived.get(name))

    def settle(self, older_than: float = SETTLE_SECONDS, limit: int = 1) -> int:
        """Evaluates up to ``limit`` of the hosts a reply changed at least ``older_than`` seconds ago, the
        oldest first; the number evaluated (the monitor calls it until 0, yielding to requests between: one
        host at a time, since an evaluation takes a few milliseconds and once every host is known, slices of
        four made turns of the loop of 10 to 40 ms that every poll waited behind)."""
        now = time.monotonic()
        done = 0
        for host_id, (infra_env_id, since) in list(itertools.islice(self.unsettled.items(), limit)):
            if now - since < older_than:
                break
            self.unsettled.pop(host_id, None)
            host = self.store.get_host(infra_env_id, host_id)
            if host is not None:
                self.refresh_host(host)
            done += 1
        if not done:
            for cluster_id in list(self.unsettled_clusters):
                self.unsettled_clusters.discard(cluster_id)
                self.refresh_cluster(cluster_id, full=False)
        return done

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

    def refresh_host(self, host: dict[str, Any], durable: bool = True) -> dict[str, Any]:
        """Recompute validations and the status they imply, save the host, then its cluster. ``durable``
        False (a poll): the save waits for no commit unless the status changed, as what else changed is
        derived again after a restart."""
        self.unsettled.pop(host["id"], None)
        results = self.validations(self.view(host))
        host["validations_info"] = json.dumps(results)
        connected = time.time() - float(host.get("_checked_in", time.time())) < states.DISCONNECTION_TIMEOUT
        change = states.host_status(host, results, connected)
        if change:
            self.set_status(host, *change)
        eager = self.eager(host)
        if not eager:
            self.evaluated[host["id"]] = (time.monotonic(), self.cluster_versions.get(host["cluster_id"], 0))
        previous = self.store.peek_host(host["infra_env_id"], host["id"])
        moved = previous is None or any(host.get(k) != previous.get(k) for k in ("status", "cluster_id", "role"))
        self.store.save_host(host, durable=durable or moved)
        if host.get("cluster_id") and eager:
            self.refresh_cluster(host["cluster_id"])
        elif host.get("cluster_id") and moved:  # once for all the hosts that moved, by settle()
            self.unsettled_clusters.add(host["cluster_id"])
        return host

    def refresh_cluster(self, cluster_id: str, full: bool = True) -> None:
        """The cluster's status and counts from its hosts; ``full`` also re-derives the IP collision report
        (a big cluster's is the monitor's, every MONITOR_SECONDS)."""
        cluster = self.store.get_cluster(cluster_id)
        if cluster is None:
            return
        hosts = self.store.peers(cluster_id=cluster_id)
        statuses = [h["status"] for h in hosts]  # before the hosts the cluster takes along move
        change = states.cluster_status(cluster, hosts)
        if change.install_started:
            cluster["install_started_at"] = _now_iso()
        for shared, status in change.host_moves:
            h = self.store.get_host(shared["infra_env_id"], shared["id"]) or shared
            self.set_status(h, status)
            self.store.save_host(h)
        if change.install_completed:
            cluster["install_completed_at"] = _now_iso()
        if change.status != cluster.get("status"):
            self.store.add_event(f"Updated status of the cluster {cluster.get('name')} to {change.status}",
                                 cluster_id=cluster_id)
        cluster["status"], cluster["status_info"] = change.status, change.info
        if full:
            ip_collisions.update_cluster(cluster, hosts)  # read by the hosts' no-ip-collisions-in-network
        cluster["total_host_count"] = len(hosts)
        cluster["ready_host_count"] = statuses.count("known")
        cluster["enabled_host_count"] = len(hosts)
        previous = self.store.peek_cluster(cluster_id) or {}
        if {**cluster, "updated_at": None} != {**previous, "updated_at": None}:  # unchanged: not rewritten
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

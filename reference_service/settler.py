"""The settler: the one place hosts and clusters are evaluated, and the schedule they are evaluated on.

An evaluation (:meth:`Settler.evaluate`) runs a host's validations against its cluster's model
(``rules.cluster_model``), sets the status they imply and saves the host; the cluster's status and counts
follow (:meth:`Settler.evaluate_cluster`). What an evaluation concludes never depends on the cluster's size.
*When* it runs does:

- a cluster of at most :data:`AT_ONCE_HOSTS` hosts is evaluated at once, within the request that changed it
  (a poll, a reply, a user's change), as a person trying a few hosts expects to see every change at once;
- a bigger one is evaluated as the real service's monitor does it, between requests: a reply that changed a
  host makes it *dirty*, and the settler evaluates it :data:`SETTLE_SECONDS` later (the five to eight
  replies of one poll cycle cost one evaluation and one write), one host per turn of the event loop; a
  poll makes it dirty only when something it is judged by moved since it was last evaluated (its cluster's
  model or document, seen every :data:`MONITOR_SECONDS`) or :data:`REEVALUATE_SECONDS` have passed (its
  clock, its check-in). Its cluster is evaluated once the hosts that moved are, and its majority groups are
  computed in a thread (at 1,000 hosts with reports in flux, the real service's rule takes up to a second).

Every :data:`MONITOR_SECONDS` (:meth:`Settler.tick`, the real service's monitor interval) hosts that stopped
polling are evaluated (they become disconnected without anybody asking) and every cluster is evaluated with
its IP collision report.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

from reference_service.store.database import _now_iso
from rules import ip_collisions, states
from rules.documents import HostView, host_name
from rules.events import validation_changes
from rules.majority import compute_groups

if TYPE_CHECKING:
    from reference_service.orchestrator import ReferenceService

log = logging.getLogger("reference_service")

#: Clusters up to this many hosts are evaluated within the request that changed them (see the docstring).
AT_ONCE_HOSTS = 50
#: The real service's host monitor interval.
MONITOR_SECONDS = 8.0
#: How old a big cluster's host's evaluation may get when nothing it depends on changed.
REEVALUATE_SECONDS = 60.0
#: A big cluster's host whose document a reply changed is evaluated this long after that reply.
SETTLE_SECONDS = 0.5
#: A big cluster whose hosts moved is evaluated at most this often between monitor passes. Its evaluation
#: reads every host (its own validations: about 7 ms at 1,000 hosts), and in a discovery a host moves every
#: few milliseconds: evaluated whenever the settler had no host ready, it took a quarter of the service's
#: CPU in bench/scale.py's 1,000-host runs (docs/scale.md).
CLUSTER_SETTLE_SECONDS = 1.0
#: The cluster's fields that sum up its hosts (written by :meth:`Settler.evaluate_cluster`) and that no host
#: rule reads: a change of them alone does not make every host of a big cluster due. Each host that became
#: known changed ``ready_host_count`` and ``status_info`` ("N of M hosts are known"): at 1,000 hosts a
#: discovery re-evaluated all of them every monitor pass (``tests/unit/reference_service/test_settler.py``).
SUMMARY_FIELDS = frozenset({"status_info", "validations_info", "total_host_count", "ready_host_count",
                            "enabled_host_count", "updated_at"})


class Settler:
    def __init__(self, service: ReferenceService) -> None:
        self.service = service
        self.store = service.store
        #: Big clusters' hosts changed and not evaluated since: id -> (infra-env id, since when).
        self.dirty: dict[str, tuple[str, float]] = {}
        #: Big clusters with a host whose status, role or cluster changed since the cluster was evaluated.
        self.dirty_clusters: set[str] = set()
        #: When each cluster was last evaluated (time.monotonic()).
        self.clusters_evaluated: dict[str, float] = {}
        #: When each host of a big cluster was last evaluated (time.monotonic()) and its cluster's version then.
        self.evaluated: dict[str, tuple[float, int]] = {}
        #: Per big cluster, its document as the monitor last saw it, and a number that moves when what every
        #: host is judged by changed (that document, or a count or the networks of its model: ``due_hosts``).
        self._seen: dict[str, Any] = {}
        self.versions: dict[str, int] = {}
        #: Big clusters' hosts due again because a cluster-wide fact they read moved (``ClusterModel.due``).
        self.stale: set[str] = set()
        #: Per small cluster, its model's version when the monitor last evaluated all its hosts.
        self._judged: dict[str, int] = {}

    # -- the schedule ------------------------------------------------------------------------------------
    def at_once(self, host: dict[str, Any]) -> bool:
        """Whether the host's cluster is small enough to be evaluated within the request (AT_ONCE_HOSTS)."""
        cluster_id = host.get("cluster_id")
        return not cluster_id or self.store.cluster_size(cluster_id) <= AT_ONCE_HOSTS

    def polled(self, host: dict[str, Any]) -> None:
        """A poll changed the host's check-in: evaluated at once, when due, or saved in memory only."""
        if self.at_once(host) or str(host.get("status", "")).startswith("disconnected"):
            self.evaluate(host, durable=False)  # (a disconnected host is back at once)
            return
        if self._due(host):
            self.dirty.setdefault(host["id"], (host["infra_env_id"], 0.0))
        self.store.save_host(host, durable=False)  # written with the host's next change, or by persist()

    def replied(self, host: dict[str, Any]) -> None:
        """A reply was applied to the host: evaluated at once, or later if the reply changed it."""
        if self.at_once(host):
            self.evaluate(host)
        elif host != self.store.peek_host(host["infra_env_id"], host["id"]):
            # written once evaluated, not with each reply (the reply itself is written before it is
            # acknowledged: a kill -9 before the settler loses what the host's next cycle sends again)
            self.store.save_host(host, durable=False)
            self.dirty.setdefault(host["id"], (host["infra_env_id"], time.monotonic()))

    def _due(self, host: dict[str, Any]) -> bool:
        last = self.evaluated.get(host["id"])
        # between half and all of REEVALUATE_SECONDS, by host: hosts evaluated together are not due together
        spread = 0.5 + (zlib.crc32(str(host["id"]).encode()) % 1000) / 2000
        return last is None or last[1] != self.versions.get(str(host.get("cluster_id")), 0) or \
            host["id"] in self.stale or time.monotonic() - last[0] >= REEVALUATE_SECONDS * spread

    def settle(self, older_than: float = SETTLE_SECONDS, limit: int = 1) -> int:
        """Evaluates up to ``limit`` of the dirty hosts changed at least ``older_than`` seconds ago, the oldest
        first; the number evaluated (called until 0, with requests served between: one host at a time, since
        an evaluation takes a few milliseconds). When none is ready, the clusters whose hosts moved."""
        now = time.monotonic()
        done = 0
        for host_id, (infra_env_id, since) in list(itertools.islice(self.dirty.items(), limit)):
            if now - since < older_than:
                break
            self.dirty.pop(host_id, None)
            host = self.store.get_host(infra_env_id, host_id)
            if host is not None:
                self.evaluate(host)
            done += 1
        if not done:
            for cluster_id in list(self.dirty_clusters):
                last = self.clusters_evaluated.get(cluster_id)
                if last is not None and now - last < CLUSTER_SETTLE_SECONDS:
                    continue  # (a later pass evaluates it, the hosts that move meanwhile with it)
                self.dirty_clusters.discard(cluster_id)
                self.evaluate_cluster(cluster_id, full=False)
        return done

    # -- evaluation ----------------------------------------------------------------------------------------
    def validations(self, view: HostView) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        unbound = not view.host.get("cluster_id")
        for v in self.service.rulebook.validations.values():
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

    def evaluate(self, host: dict[str, Any], durable: bool = True) -> dict[str, Any]:
        """Recompute validations and the status they imply, save the host, then (at once, or once the hosts
        that moved are) its cluster. ``durable`` False (a poll): the save waits for no commit unless the
        status changed, as what else changed is derived again after a restart."""
        self.dirty.pop(host["id"], None)
        self.stale.discard(host["id"])
        at_once = self.at_once(host)
        view = self.service.view(host, reading=True)  # (validations read the cluster; its evaluation changes it)
        view.model.due.judged(host["id"])  # (against the model as it is now)
        if at_once:
            view.model.regroup()
        results = self.validations(view)
        encoded = json.dumps(results)
        if encoded != host.get("validations_info"):  # (the same text: no validation changed)
            for message, severity in validation_changes(host.get("validations_info"), results, host_name(host)):
                self.service.event(message, host, severity)  # what changed, not every reply (rules.events)
        host["validations_info"] = encoded
        connected = view.now - float(host.get("_checked_in", view.now)) < states.DISCONNECTION_TIMEOUT
        validations = self.service.rulebook.validations
        change = states.host_status(host, results, connected, validations,
                                    states.ignored_host_validations(view.cluster, validations))
        if change:
            self.service.set_status(host, *change)
        if not at_once:
            self.evaluated[host["id"]] = (time.monotonic(), self.versions.get(host["cluster_id"], 0))
        previous = self.store.peek_host(host["infra_env_id"], host["id"])
        moved = previous is None or any(host.get(k) != previous.get(k) for k in ("status", "cluster_id", "role"))
        self.store.save_host(host, durable=durable or moved)
        if host.get("cluster_id") and at_once:
            self.evaluate_cluster(host["cluster_id"])
        elif host.get("cluster_id") and moved:
            self.dirty_clusters.add(host["cluster_id"])
        return host

    def evaluate_cluster(self, cluster_id: str, full: bool = True) -> None:
        """The cluster's status and counts from its hosts; ``full`` also re-derives the IP collision report."""
        cluster = self.store.get_cluster(cluster_id)
        if cluster is None:
            return
        self.clusters_evaluated[cluster_id] = time.monotonic()
        hosts = self.store.peers(cluster_id=cluster_id)
        statuses = [h["status"] for h in hosts]  # before the hosts the cluster takes along move
        change = states.cluster_status(cluster, hosts, self.service.model(cluster_id))  # (networks too)
        for message, severity in change.events:
            self.store.add_event(message, severity=severity, cluster_id=cluster_id)
        if change.install_started:
            cluster["install_started_at"] = _now_iso()
        for shared, status in change.host_moves:
            h = self.store.get_host(shared["infra_env_id"], shared["id"]) or shared
            self.service.set_status(h, status)
            self.store.save_host(h)
        if change.install_completed:
            cluster["install_completed_at"] = _now_iso()
        if change.status != cluster.get("status"):
            self.store.add_event(f"Updated status of the cluster {cluster.get('name')} to {change.status}",
                                 cluster_id=cluster_id)
        cluster["status"], cluster["status_info"] = change.status, change.info
        if full:  # read by the hosts' no-ip-collisions-in-network
            ip_collisions.update_cluster(self.service.model(cluster_id), cluster, hosts)
        cluster["total_host_count"] = len(hosts)
        cluster["ready_host_count"] = statuses.count("known")
        cluster["enabled_host_count"] = len(hosts)
        previous = self.store.peek_cluster(cluster_id) or {}
        if {**cluster, "updated_at": None} != {**previous, "updated_at": None}:  # unchanged: not rewritten
            cluster["updated_at"] = _now_iso()
            self.store.save_cluster(cluster)

    # -- the monitor ---------------------------------------------------------------------------------------
    async def tick(self, now: float | None = None) -> None:
        """The monitor's pass: big clusters' groups (in a thread) and what their hosts are judged by, hosts
        that stopped polling, every cluster's status and IP collision report."""
        now = time.time() if now is None else now
        for cluster_id in self.store.list_cluster_ids():
            if self.store.cluster_size(cluster_id) > AT_ONCE_HOSTS:
                await self._regroup(cluster_id)
            else:
                self._catch_up(cluster_id)
        for shared in self.store.peers():
            status = str(shared.get("status", ""))
            if status.startswith("disconnected") or "_checked_in" not in shared:
                continue
            if now - float(shared["_checked_in"]) >= states.DISCONNECTION_TIMEOUT:
                host = self.store.get_host(shared["infra_env_id"], shared["id"])
                if host is not None:
                    self.evaluate(host)
        cluster_ids = self.store.list_cluster_ids()
        for cluster_id in cluster_ids:
            self.evaluate_cluster(cluster_id, full=True)
        self.clusters_evaluated = {c: t for c, t in self.clusters_evaluated.items() if c in cluster_ids}
        self._judged = {c: v for c, v in self._judged.items() if c in cluster_ids}
        self.service.forget_models()

    def _catch_up(self, cluster_id: str) -> None:
        """A small cluster's hosts evaluated again when what they are judged by moved since the last pass (a
        peer's report changed the majority groups, a peer was named or left). Evaluated within their own
        requests only, a host whose peers' connectivity reports came after its own stayed "No connectivity to
        the majority" until its next poll, a whole poll interval (60 s) after the real service, whose host
        monitor re-evaluates every host every 8 s, took it to known (docs/real-service.md)."""
        model = self.service.models.get(cluster_id)
        if model is None or self._judged.get(cluster_id) == model.version:
            return
        model.due.take()  # (all of them, below)
        for shared in self.store.peers(cluster_id=cluster_id):
            if shared.get("status") in states.PRE_INSTALL:
                host = self.store.get_host(shared["infra_env_id"], shared["id"])
                if host is not None:
                    self.evaluate(host)
        self._judged[cluster_id] = model.version

    async def _regroup(self, cluster_id: str) -> None:
        """A big cluster's majority groups computed in a thread; its hosts' version moved if what every host
        is judged by changed since the last tick, else the hosts whose verdicts its model's changes can have
        moved are due (``due_hosts``: not every host whenever one got its name, as with the version alone)."""
        model = self.service.model(cluster_id)
        model.sync(self.store.peek_cluster(cluster_id), self.store.peers(cluster_id=cluster_id))
        if not model.groups_current:  # (taken even if a report came meanwhile: computed again next tick)
            model.take_groups(await asyncio.to_thread(compute_groups, model.group_inputs()))
        cluster = self.store.peek_cluster(cluster_id)
        due = model.due.take()
        if due is None or cluster_id not in self._seen or not _same_for_hosts(self._seen[cluster_id], cluster):
            self.versions[cluster_id] = self.versions.get(cluster_id, 0) + 1
        else:
            self.stale |= due
        self._seen[cluster_id] = cluster


def _same_for_hosts(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """Whether two versions of a cluster document judge its hosts alike: equal but for SUMMARY_FIELDS (the
    store replaces a document on every save, so the same object is the same version)."""
    if old is new:
        return True
    if old is None or new is None:
        return False
    keys = (old.keys() | new.keys()) - SUMMARY_FIELDS
    return all(old.get(k) == new.get(k) for k in keys)


"""One model of each cluster: what the rules know of a cluster beyond the host they evaluate.

The service keeps one :class:`ClusterModel` per cluster (and one per infra-env for its unbound hosts) and
brings it up to date with :meth:`ClusterModel.sync` before its hosts are evaluated; a rule reads it as
``view.model``. It holds, so that nothing is decoded or derived twice and no rule reads every other host:

- *facts*: what a rule derives from a host's JSON field (:meth:`fact`; the functions registered with
  ``documents.deriver``), kept while the field holds the same value. A reply's facts are put in when it is
  applied (:meth:`prime`), from what the reply worker derived: a 330 KB connectivity report is decoded once;
- per host, the name it goes by, its role and what its connectivity report reached in each machine network,
  and from them the cluster-wide facts: hostname counts (``hostname-unique``), peers' roles and labels (the
  latency, packet-loss and MTU messages) and the majority group of each machine network
  (``belongs-to-majority-group``, by the real service's rule: ``majority``);
- the connectivity-check admission queue (``connectivity_admission``).

:attr:`version` moves when a cluster-wide fact changes, and :attr:`due` names the hosts whose verdicts
such a change can have moved (``due_hosts``), so the service knows which hosts need evaluating again. The
majority groups are computed apart from :meth:`sync` (:meth:`regroup`, or :meth:`group_inputs` /
:meth:`take_groups` around a computation in another thread, ``majority.compute_groups``), because at 1,000
hosts with reports in flux the real service's rule takes tens to hundreds of milliseconds; until they are, a
network has the groups last computed (none at first: its hosts are pending, as under the real service
before its monitor ran).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from common import json_codec
from rules import majority
from rules.connectivity_admission import AdmissionQueue
from rules.due_hosts import DueHosts
from rules.majority import GroupInputs, Groups, Network, compute_groups
from rules.stored_text import StoredText


def machine_cidrs(cluster: dict[str, Any] | None) -> list[Network]:
    """The cluster's machine networks (``machine_networks``, else the older ``machine_network_cidr``), parsed
    now: rules read them once per view from the model (``ClusterModel.machine_networks``)."""
    return list(_parse_cidrs(_cidr_texts(cluster)))


def _cidr_texts(cluster: dict[str, Any] | None) -> tuple[Any, ...]:
    cidrs = tuple(n.get("cidr") for n in (cluster or {}).get("machine_networks") or [] if isinstance(n, dict))
    return cidrs or ((cluster["machine_network_cidr"],) if cluster and cluster.get("machine_network_cidr") else ())


def _parse_cidrs(cidrs: tuple[Any, ...]) -> tuple[Network, ...]:
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(str(c), strict=False))
        except ValueError:
            continue
    return tuple(out)


def decode(raw: Any) -> Any:
    """A JSON field's value decoded (a stored text's read back first), or None when it is empty or not JSON."""
    if not raw:
        return None
    if isinstance(raw, StoredText):
        raw = raw.text()
    if not isinstance(raw, str):
        return raw
    try:
        return json_codec.loads(raw)
    except (ValueError, RecursionError):
        return None


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


#: The host fields the model reads.
_READ = ("inventory", "requested_hostname", "role", "suggested_role", "connectivity")


class _Host:
    """What the model took from one host document (plain classes: dataclasses cost ``agent check`` a tenth)."""

    __slots__ = ("doc", "fields", "has_inventory", "name", "peer", "reach", "reach_from")

    def __init__(self, doc: dict[str, Any], name: str | None, peer: tuple[str, str], has_inventory: bool,
                 reach: tuple[int, ...], reach_from: Any, fields: tuple[Any, ...] = ()) -> None:
        self.doc = doc
        #: The name ``hostname-unique`` counts (None without an inventory object).
        self.name = name
        #: (effective role, how messages name the host).
        self.peer = peer
        self.has_inventory = has_inventory
        #: Per machine network, the hosts its report reached (bits by model index), and the report it came from.
        self.reach, self.reach_from = reach, reach_from
        #: The fields read from the document (``_READ``), as they were: a save that changed none costs a compare.
        self.fields = fields


class ClusterModel:
    def __init__(self) -> None:
        #: Moves when a cluster-wide fact (names, peers, networks, majority groups, members) changed.
        self.version = 0
        self.admissions = AdmissionQueue()
        self._hosts: dict[str, _Host] = {}
        self._index: dict[str, int] = {}
        self._networks: tuple[Network, ...] = ()
        self._names: Counter[str] = Counter()
        self._inventoried = 0
        #: field -> deriver's qualified name -> host id -> (the field's value, what was derived from it).
        self._facts: dict[str, dict[str, dict[str, tuple[Any, Any]]]] = {}
        #: host id -> (the report, the networks' names, ``majority.reached``) from the reply worker.
        self._offered: dict[str, tuple[Any, tuple[str, ...], dict[str, int]]] = {}
        self._groups: Groups | None = None
        self._membership = majority.Membership()
        #: Whether a name, a peer or the members changed since the version last moved.
        self._moved = False
        #: Whether every host was taken in since the model was made or its networks changed (``ensure``).
        self._synced = False
        self._cluster_seen: dict[str, Any] | None = None
        #: Moves with every change of the groups' inputs; the groups are current when their stamp equals it.
        self._stamp = 0
        #: What was parsed from the cluster document's texts, per parser: (the texts, the result) (``parsed``).
        self._parsed: dict[str, tuple[tuple[Any, ...], Any]] = {}
        #: The hosts a change of cluster-wide facts may have judged differently (read by the settler).
        self.due = DueHosts()

    def parsed(self, texts: tuple[Any, ...], parse: Callable[[tuple[Any, ...]], Any]) -> Any:
        """``parse(texts)`` (the cluster's networks, VIPs, the connectivity-check listing), kept while they stay
        the same (a host's evaluation reads the machine networks in five rules; docs/scale.md). Its value is only
        read."""
        held = self._parsed.get(parse.__qualname__)
        if held is None or held[0] != texts:
            held = self._parsed[parse.__qualname__] = (texts, parse(texts))
        return held[1]

    def machine_networks(self, cluster: dict[str, Any] | None) -> tuple[Network, ...]:
        networks: tuple[Network, ...] = self.parsed(_cidr_texts(cluster), _parse_cidrs)  # (machine_cidrs)
        return networks

    # -- facts ---------------------------------------------------------------------------------------------
    def fact(self, host: dict[str, Any], name: str, derive: Callable[[Any], Any]) -> Any:
        """``derive(host[name] decoded)``, remembered while the host's field holds the same value. ``derive``
        must return a value its callers only read."""
        raw = host.get(name)
        if not raw:
            return derive(None)
        table = self._facts.setdefault(name, {}).setdefault(derive.__qualname__, {})
        host_id = str(host.get("id") or "")
        cached = table.get(host_id)
        if cached is not None and _same(cached[0], raw):
            return cached[1]
        value = derive(decode(raw))
        table[host_id] = (raw, value)
        return value

    def prime(self, host: dict[str, Any], name: str, values: dict[str, Any]) -> None:
        """The facts of ``host[name]`` (by deriver's qualified name), derived when its reply was checked."""
        raw = host.get(name)
        if raw:
            for qualname, value in values.items():
                self._facts.setdefault(name, {}).setdefault(qualname, {})[str(host.get("id") or "")] = (raw, value)

    def offer_reach(self, host: dict[str, Any], networks: tuple[str, ...], peers: dict[str, int]) -> None:
        """What ``majority.reached`` gave for the host's current connectivity report over ``networks``."""
        if host.get("connectivity"):
            self._offered[str(host["id"])] = (host["connectivity"], networks, peers)

    def offer_report(self, host: dict[str, Any], report: Any) -> None:
        """The host's current connectivity report, decoded: its reach derived now rather than decoded again."""
        networks = self._networks
        self.offer_reach(host, tuple(str(n) for n in networks), majority.reached(report, networks, self._membership))

    # -- keeping up with the documents ---------------------------------------------------------------------
    def sync(self, cluster: dict[str, Any] | None, hosts: Sequence[dict[str, Any]]) -> None:
        """Up to ``cluster`` and ``hosts`` (all its hosts): an unchanged document costs an identity check."""
        networks = self.machine_networks(cluster)
        if networks != self._networks:
            self._networks = networks
            self._forget_hosts()
        seen: set[str] = set()
        for doc in hosts:
            host_id = str(doc.get("id"))
            seen.add(host_id)
            known = self._hosts.get(host_id)
            if known is None or known.doc is not doc:
                self._take(host_id, doc, known)
        if len(seen) != len(self._hosts):
            for gone in [h for h in self._hosts if h not in seen]:
                self._drop(gone)
            if len(self._index) > 2 * len(self._hosts) + 64:  # churn: indexes made afresh, and the groups
                self._forget_hosts()
                self._index.clear()
                self._groups = None
                self.sync(cluster, hosts)
        self._synced = True
        self._settle_version()

    def ensure(self, cluster: dict[str, Any] | None, hosts: Callable[[], Sequence[dict[str, Any]]]) -> None:
        """In full (``hosts()``) at first and when the machine networks change, else host by host (update)."""
        if cluster is not self._cluster_seen:
            self._cluster_seen = cluster
            if self.machine_networks(cluster) != self._networks:
                self._synced = False
        if not self._synced:
            self.sync(cluster, hosts())

    def update(self, doc: dict[str, Any]) -> None:
        """One host's document, new or changed (a stored one, or the copy being evaluated, which a reply's
        handler may have changed in place: taken again even when it is the document seen last)."""
        host_id = str(doc.get("id"))
        self._take(host_id, doc, self._hosts.get(host_id))
        self._settle_version()

    def remove(self, host_id: str) -> None:
        """A host that left the cluster (deleted, or bound elsewhere)."""
        if host_id in self._hosts:
            self._drop(host_id)
            self._settle_version()

    def _settle_version(self) -> None:
        self.due.counted(len(self._hosts), self._inventoried)
        if self._moved:
            self._moved = False
            self.version += 1

    def _forget_hosts(self) -> None:
        self._synced = False
        self._hosts.clear()
        self._names.clear()
        self._inventoried = 0
        self._stamp += 1
        self._moved = True
        self.due.all()

    def _take(self, host_id: str, doc: dict[str, Any], known: _Host | None) -> None:
        fields = tuple(doc.get(name) for name in _READ)
        if known is not None and all(a is b for a, b in zip(known.fields, fields, strict=True)):
            known.doc = doc  # (a save that changed nothing the model reads: most of them)
            return
        is_object, reported = self.fact(doc, "inventory", _hostname)
        requested = doc.get("requested_hostname")
        name = str(requested or reported or "") if is_object else None
        role = doc.get("role") or "auto-assign"
        if role == "auto-assign" and doc.get("suggested_role"):
            role = doc["suggested_role"]
        peer = (str(role), str(requested or reported or host_id))
        has_inventory = bool(doc.get("inventory"))
        raw = doc.get("connectivity")
        reach = known.reach if known is not None and _same(known.reach_from, raw) else self._reach(host_id, raw)
        if known is not None:
            self._forget_counts(known)
        if name is not None:
            self._names[name] += 1
        self._inventoried += has_inventory
        if known is None or known.reach != reach or known.has_inventory != has_inventory:
            self._stamp += 1
        if known is None or (known.name, known.peer, known.has_inventory) != (name, peer, has_inventory):
            self._moved = True
            if known is None or known.name != name:
                self.due.renamed(host_id, known.name if known is not None else None, name, self._names, self._hosts)
            if known is None or known.peer != peer:
                self.due.peer_changed(host_id)
        self._hosts[host_id] = _Host(doc, name, peer, has_inventory, reach, raw, fields)

    def _forget_counts(self, record: _Host) -> None:
        if record.name is not None:
            self._names[record.name] -= 1
            if not self._names[record.name]:
                del self._names[record.name]
        self._inventoried -= record.has_inventory

    def _drop(self, host_id: str) -> None:
        record = self._hosts.pop(host_id)
        self._forget_counts(record)
        self.due.renamed(host_id, record.name, None, self._names, self._hosts)
        self.due.dropped(host_id)
        self._offered.pop(host_id, None)
        for by_deriver in self._facts.values():
            for table in by_deriver.values():
                table.pop(host_id, None)
        self._stamp += 1
        self._moved = True

    def _bit(self, host_id: str) -> int:
        index = self._index.get(host_id)
        if index is None:
            index = self._index[host_id] = len(self._index)
        return 1 << index

    def _reach(self, host_id: str, raw: Any) -> tuple[int, ...]:
        if not raw or not self._networks:
            return (0,) * len(self._networks)
        names = tuple(str(n) for n in self._networks)
        offered = self._offered.pop(host_id, None)
        if offered is not None and _same(offered[0], raw) and offered[1] == names:
            peers = offered[2]
        else:
            peers = majority.reached(decode(raw), self._networks, self._membership)
        masks = [0] * len(names)
        bit = self._bit
        if len(names) == 1:  # (the usual case)
            masks[0] = sum(bit(peer) for peer, found in peers.items() if found)
        else:
            for peer, found in peers.items():
                for k in majority.bits(found):
                    masks[k] |= bit(peer)
        return tuple(masks)

    @property
    def synced(self) -> bool:
        """Whether every host of the cluster was taken in (by :meth:`sync`) since the networks last changed."""
        return self._synced

    # -- cluster-wide facts ----------------------------------------------------------------------------------
    @property
    def inventory_hosts(self) -> int:
        """How many hosts have an inventory (those the majority groups are computed over)."""
        return self._inventoried

    def hostname_taken(self, host_id: str, name: str) -> bool:
        """Does another host with an inventory go by ``name``?"""
        record = self._hosts.get(host_id)
        own = 1 if record is not None and record.name == name else 0
        return self._names.get(name, 0) - own > 0

    def peer(self, host_id: Any, of: str | None = None) -> tuple[str, str] | None:
        """(effective role, how messages name it) of a host of the cluster, or None. ``of``: the host whose
        evaluation asks, due again when the answer changes."""
        if of is not None and isinstance(host_id, str):
            self.due.ask(host_id, of)
        record = self._hosts.get(host_id) if isinstance(host_id, str) else None
        return record.peer if record is not None else None

    def label(self, host_id: Any, of: str | None = None) -> str:
        found = self.peer(host_id, of)
        return found[1] if found is not None else str(host_id)

    def in_majority(self, host_id: str, network: Network) -> bool | None:
        """Is the host in the majority group of ``network``; None while no group was computed for it."""
        groups = self._groups
        if groups is None or str(network) not in groups.networks:
            return None
        return host_id in groups.members[groups.networks.index(str(network))]

    # -- majority groups ---------------------------------------------------------------------------------------
    @property
    def groups_current(self) -> bool:
        return self._groups is not None and self._groups.stamp == self._stamp and \
            self._groups.networks == tuple(str(n) for n in self._networks)

    def group_inputs(self) -> GroupInputs:
        present = 0
        for host_id, record in self._hosts.items():
            if record.has_inventory:
                present |= self._bit(host_id)
        networks = tuple(str(n) for n in self._networks)
        reach: list[dict[int, int]] = []
        for k in range(len(networks)):
            reach.append({self._index[h]: r.reach[k] & present for h, r in self._hosts.items() if r.has_inventory})
        last = self._groups if self._groups is not None and self._groups.networks == networks else None
        previous = tuple((last.reach[k], last.mutual[k]) if last else None for k in range(len(networks)))
        ids = {index: host_id for host_id, index in self._index.items() if host_id in self._hosts}
        return GroupInputs(networks, tuple(reach), previous, ids, self._stamp)

    def take_groups(self, groups: Groups) -> None:
        """Groups computed from ``group_inputs`` (in whatever thread); the version moves if they changed."""
        last, self._groups = self._groups, groups
        self.due.regrouped(last, groups)
        if last is None or groups.members != last.members:
            self.version += 1

    def regroup(self) -> None:
        """Computes the groups now, unless they are current."""
        if not self.groups_current:
            self.take_groups(compute_groups(self.group_inputs()))


def _hostname(inventory: Any) -> tuple[bool, str | None]:
    """(the inventory is an object, the hostname it reports)."""
    if not isinstance(inventory, dict):
        return False, None
    name = inventory.get("hostname")
    return True, (str(name) if name else None)

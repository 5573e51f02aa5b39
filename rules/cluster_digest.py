"""What the cluster-wide validations need, computed once per cluster change instead of per host and per poll.

``hostname-unique`` and ``belongs-to-majority-group`` (and the same-role latency, packet-loss and MTU checks,
for their peer labels) read every host of the cluster. Computed per host on each poll, that is every peer's
~250 KB connectivity report parsed for every host: O(N^3) per poll at N hosts. The real service does not do
that either: its cluster monitor (``internal/network/connectivity_groups.go``, ``CreateL2MajorityGroup`` /
``CreateL3MajorityGroup``) computes, per machine CIDR, one majority group for the whole cluster from bit sets of
mutual links (each host's set of peers it reaches both ways, intersected until a full mesh remains), stores it
in the cluster's ``connectivity_majority_groups``, and the host validator only checks membership (pending while
the CIDR has no group yet).

:func:`digest` does the same from the documents, purely: ``digest(cluster, hosts, memo)`` gives a frozen
:class:`ClusterDigest`; the validations read it through ``HostView.digest`` and compute as before when it is
None. :class:`DigestMemo` keeps, per host, what was derived from its raw fields (the peers reached per CIDR as a
bit mask, the reported hostname), keyed on the raw string's length and hash, so an unchanged report is never
parsed again and no report text is kept alive. Group semantics:

- up to 12 hosts, exactly today's per-host rule (:func:`in_majority_group`): a host is in the majority if it is
  in *some* group of more than half the hosts that all reach each other, so two tying groups (reports being
  refreshed after a cut) do not fail anyone; exhaustive over combinations, as today;
- beyond 12, one greedy clique for the whole cluster (hosts in order of decreasing mutual-link count, then id,
  each kept if linked to all kept so far), as the real service keeps one group: O(N^2) bit operations.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rules.documents import effective_role, parse_json_field
from rules.network import machine_cidrs
from rules.stored_text import StoredText

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Clusters up to this size get the exact (exhaustive) majority rule; larger ones the greedy clique.
EXACT_LIMIT = 12


def _reachable(report: dict[str, Any] | None, remote: dict[str, Any], cidr: Network) -> bool:
    """Did ``report`` (one host's connectivity) reach ``remote`` inside ``cidr``: L2 for IPv4, L3 for IPv6."""
    if not report:
        return False
    entry = next((r for r in report.get("remote_hosts") or [] if r.get("host_id") == remote.get("id")), None)
    if entry is None:
        return False
    return _entry_reaches(entry, cidr)


def _entry_reaches(entry: dict[str, Any], cidr: Network) -> bool:
    key = "l2_connectivity" if cidr.version == 4 else "l3_connectivity"
    for item in entry.get(key) or []:
        address = item.get("remote_ip_address")
        if isinstance(address, str) and item.get("successful") and _inside(address, cidr):
            return True
    return False


@functools.lru_cache(maxsize=1 << 14)
def _inside(address: str, cidr: Network) -> bool:
    """Remembered: every report of a cluster names the same peer addresses, and parsing them each time was
    most of a 1,000-peer report's reach (2.4 ms)."""
    try:
        return ipaddress.ip_address(address) in cidr
    except ValueError:
        return False


def in_majority_group(host_id: str, hosts: list[dict[str, Any]], cidr: Network) -> bool:
    """Is ``host_id`` in a group of more than half the hosts that all reach each other (both ways) in ``cidr``?

    Any such group counts, not one chosen "largest": while reports are being refreshed (a host was just
    cut off, say), two groups can tie, and a host must not fail because the tie went the other way.
    Exhaustive for clusters of up to 12 hosts (the usual case), greedy beyond. This is the per-host path,
    used when no :class:`ClusterDigest` is at hand; it parses every report on each call.
    """
    reports = {h["id"]: parse_json_field(h, "connectivity") for h in hosts}
    by_id = {h["id"]: h for h in hosts}
    if host_id not in by_id:
        return False

    def linked(a: str, b: str) -> bool:
        return _reachable(reports[a], by_id[b], cidr) and _reachable(reports[b], by_id[a], cidr)

    neighbours = sorted(other for other in by_id if other != host_id and linked(host_id, other))
    needed = len(hosts) // 2  # members besides host_id for a group of more than half
    if len(neighbours) < needed:
        return False
    links = {(a, b) for a, b in itertools.combinations(neighbours, 2) if linked(a, b)}
    if len(hosts) <= EXACT_LIMIT:
        return any(all((a, b) in links for a, b in itertools.combinations(group, 2))
                   for group in itertools.combinations(neighbours, needed))
    members: list[str] = []
    for other in neighbours:
        if all((min(m, other), max(m, other)) in links for m in members):
            members.append(other)
    return len(members) >= needed


@dataclass(frozen=True)
class ClusterDigest:
    """A snapshot of the cluster-wide facts; treat its mappings as read-only."""

    #: real hostname -> how many hosts with an inventory have it.
    hostname_counts: Mapping[str, int]
    #: host id -> the real hostname counted for it (hosts with an inventory only).
    hostnames: Mapping[str, str]
    #: How many hosts have an inventory (those the majority groups are computed over).
    inventory_hosts: int
    #: str(machine CIDR) -> ids of the hosts in a majority group there.
    majority: Mapping[str, frozenset[str]]
    #: host id -> (effective role, name as messages print it), for every host of the cluster.
    peers: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def hostname_taken(self, host_id: str, name: str) -> bool:
        """Does another host with an inventory have ``name`` as its real hostname?"""
        own = 1 if self.hostnames.get(host_id) == name else 0
        return self.hostname_counts.get(name, 0) - own > 0

    def in_majority(self, host_id: str, cidr: Network) -> bool | None:
        """Is the host in a majority group of ``cidr``; None when the digest has no group for that CIDR."""
        members = self.majority.get(str(cidr))
        return None if members is None else host_id in members

    def label(self, host_id: Any) -> str:
        """How messages name a peer: its requested or reported hostname, else its id."""
        peer = self.peers.get(host_id) if isinstance(host_id, str) else None
        return peer[1] if peer else str(host_id)


_Key = tuple[int, int] | StoredText


def _key(raw: Any) -> _Key | None:
    """Identity of a raw JSON field without keeping it: (length, hash) of a text (hashes of str objects are
    cached by Python, so the same object costs nothing, and an equal new string is hashed once), a handle to a
    stored text itself. None for anything else (documents built in tests): derived again on each digest."""
    if isinstance(raw, StoredText):
        return raw
    return (len(raw), hash(raw)) if isinstance(raw, str) else None


class DigestMemo:
    """Per-host data derived from raw fields, kept between :func:`digest` calls of one cluster.

    Peers are bits of an int (one stable index per host id seen), so 1,000 reports of 1,000 peers take
    about 130 bytes each per CIDR. Hosts not passed to a digest call are dropped; when the index has grown
    to more than twice the live hosts (churn), it is rebuilt and the reports derived again once.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._reports: dict[str, tuple[_Key | None, tuple[str, ...], tuple[int, ...]]] = {}
        self._inventories: dict[str, tuple[_Key | None, bool, Any]] = {}
        #: The last groups per CIDR with the reach masks they came from: an unchanged cluster costs O(N).
        self._groups: dict[str, tuple[tuple[int, tuple[tuple[int, int], ...]], frozenset[str]]] = {}
        #: The last reach and mutual masks per CIDR: a few changed reports cost O(N) each, not O(N^2).
        self._links: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        #: How many raw fields were parsed (tests and the benchmark read it).
        self.parsed = 0

    def __len__(self) -> int:
        return len(self._reports) + len(self._inventories)

    def bit(self, host_id: str) -> int:
        index = self._index.get(host_id)
        if index is None:
            index = self._index[host_id] = len(self._index)
        return 1 << index

    def index(self, host_id: str) -> int:
        return (self.bit(host_id)).bit_length() - 1

    def prune(self, live: set[str]) -> None:
        """Forget hosts not in ``live``; rebuild the id index when churn has bloated it."""
        for table in (self._reports, self._inventories):
            for gone in [h for h in table if h not in live]:
                del table[gone]
        if len(self._index) > 2 * len(live) + 64:
            self._index = {}
            self._reports.clear()
            self._groups.clear()
            self._links.clear()

    def groups(self, cidr: str, reach: dict[int, int], ids: dict[int, str], size: int) -> frozenset[str]:
        """The majority group of ``cidr`` for these reach masks, from the last call when they are the same."""
        inputs = (size, tuple(sorted(reach.items())))
        cached = self._groups.get(cidr)
        if cached is not None and cached[0] == inputs:
            return cached[1]
        last = self._links.get(cidr)
        mutual = _mutual(reach) if last is None else _mutual_since(last[0], last[1], reach)
        self._links[cidr] = (reach, mutual)
        members = _exact(mutual, size) if size <= EXACT_LIMIT else _greedy(mutual, ids, size)
        group = frozenset(ids[i] for i in members)
        self._groups[cidr] = (inputs, group)
        return group

    def reach(self, host: dict[str, Any], cidrs: Sequence[Network]) -> tuple[int, ...]:
        """Per CIDR, the bit mask of peers the host's report reached (L2 for IPv4, L3 for IPv6)."""
        raw, names = host.get("connectivity"), tuple(str(c) for c in cidrs)
        key, cached = _key(raw), self._reports.get(host["id"])
        if cached is not None and key is not None and cached[0] == key and cached[1] == names:
            return cached[2]
        offered = _OFFERED.pop(host["id"], None)
        if offered is not None and key is not None and offered[0] == key and offered[1] == names:
            peers = offered[2]
        else:
            self.parsed += 1
            peers = reached(parse_json_field(host, "connectivity"), cidrs)
        masks = [0] * len(cidrs)
        for peer, bits in peers.items():
            for k in range(len(cidrs)):
                if bits >> k & 1:
                    masks[k] |= self.bit(peer)
        result = tuple(masks)
        self._reports[host["id"]] = (key, names, result)
        return result

    def inventory(self, host: dict[str, Any]) -> tuple[bool, Any]:
        """(the inventory is a JSON object, its reported hostname)."""
        raw = host.get("inventory")
        key, cached = _key(raw), self._inventories.get(host["id"])
        if cached is not None and key is not None and cached[0] == key:
            return cached[1], cached[2]
        self.parsed += 1
        inv = parse_json_field(host, "inventory")
        is_dict = isinstance(inv, dict)
        name = inv.get("hostname") if isinstance(inv, dict) else None
        self._inventories[host["id"]] = (key, is_dict, name)
        return is_dict, name


def reached(report: Any, cidrs: Sequence[Network]) -> dict[str, int]:
    """Per peer a connectivity report names, the bits (by position in ``cidrs``) of the CIDRs it reached that
    peer in, L2 for IPv4 and L3 for IPv6. Pure, so the reply worker computes it for the digest (3 ms of a
    thread holding the GIL per 1,000-peer report, 150 of them at once at 1,000 hosts, stalled the loop)."""
    out: dict[str, int] = {}
    for entry in (report.get("remote_hosts") or []) if isinstance(report, dict) else []:
        peer = entry.get("host_id") if isinstance(entry, dict) else None
        if not isinstance(peer, str) or peer in out:
            continue  # _reachable looks at the first entry for an id only
        out[peer] = sum(1 << k for k, cidr in enumerate(cidrs) if _entry_reaches(entry, cidr))
    return out


#: Reach the reply worker computed, by host id: (the report's key, the CIDRs' names, ``reached``); taken by
#: the next digest of the host's cluster instead of parsing the report again.
_OFFERED: dict[str, tuple[Any, tuple[str, ...], dict[str, int]]] = {}
_OFFERED_MAX = 20_000


def offer_reach(host: dict[str, Any], names: tuple[str, ...], peers: dict[str, int]) -> None:
    """What ``reached`` gave for the host's current connectivity report over the CIDRs named ``names``."""
    key = _key(host.get("connectivity"))
    if key is None:
        return
    if len(_OFFERED) >= _OFFERED_MAX:  # offered for hosts whose clusters are never digested
        _OFFERED.clear()
    _OFFERED[str(host["id"])] = (key, names, peers)


def _bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _mutual(reach: dict[int, int]) -> dict[int, int]:
    """Per host index, the mask of hosts it reaches and that reach it back (itself left out)."""
    return {a: _row(a, reach) for a in reach}


def _row(a: int, reach: dict[int, int]) -> int:
    back = 0
    for b in _bits(reach[a] & ~(1 << a)):
        if (reach.get(b, 0) >> a) & 1:
            back |= 1 << b
    return back


def _mutual_since(old_reach: dict[int, int], old_mutual: dict[int, int], reach: dict[int, int]) -> dict[int, int]:
    """``_mutual(reach)`` from the masks of the last call: only the rows of the hosts whose reach changed
    are computed again, and their bit in every other row (after one report at 1,000 hosts: about 1 ms rather
    than half a second)."""
    changed = [a for a in old_reach.keys() | reach.keys() if old_reach.get(a) != reach.get(a)]
    if 4 * len(changed) > len(reach):
        return _mutual(reach)
    mutual = {a: m for a, m in old_mutual.items() if a in reach}
    for a in changed:
        row = reach.get(a)
        if row is not None:
            mutual[a] = _row(a, reach)
        bit, row = 1 << a, row or 0
        for b in mutual:
            if b == a:
                continue
            if (row >> b) & 1 and (reach[b] >> a) & 1:
                mutual[b] |= bit
            else:
                mutual[b] &= ~bit
    return mutual


def _exact(mutual: dict[int, int], size: int) -> set[int]:
    """Hosts in some fully linked group of more than half of ``size`` hosts (exhaustive, small clusters)."""
    needed, members = size // 2, set()
    for me, links in mutual.items():
        neighbours = list(_bits(links))
        if len(neighbours) < needed:
            continue
        if any(all((mutual[a] >> b) & 1 for a, b in itertools.combinations(group, 2))
               for group in itertools.combinations(neighbours, needed)):
            members.add(me)
    return members


def _greedy(mutual: dict[int, int], ids: dict[int, str], size: int) -> set[int]:
    """One clique for the cluster, grown from the best-linked hosts; kept only if more than half."""
    order = sorted(mutual, key=lambda i: (-mutual[i].bit_count(), ids[i]))
    clique = 0
    for i in order:
        if clique & ~mutual[i] == 0:
            clique |= 1 << i
    return set(_bits(clique)) if clique.bit_count() > size // 2 else set()


def digest(cluster: dict[str, Any] | None, hosts: Sequence[dict[str, Any]], memo: DigestMemo) -> ClusterDigest:
    """The :class:`ClusterDigest` of ``cluster`` with ``hosts`` (every host of the cluster), reusing ``memo``."""
    memo.prune({h["id"] for h in hosts})
    counts: Counter[str] = Counter()
    names: dict[str, str] = {}
    peers: dict[str, tuple[str, str]] = {}
    with_inventory: list[dict[str, Any]] = []
    for host in hosts:
        is_dict, reported = memo.inventory(host)
        requested = host.get("requested_hostname")
        peers[host["id"]] = (effective_role(host), str(requested or reported or host.get("id")))
        if is_dict:
            name = str(requested or reported or "")
            counts[name] += 1
            names[host["id"]] = name
        if host.get("inventory"):
            with_inventory.append(host)
    cidrs = machine_cidrs(cluster)
    by_index = {memo.index(h["id"]): h for h in with_inventory}
    ids = {i: str(h["id"]) for i, h in by_index.items()}
    present = sum(1 << i for i in by_index)
    reach = {i: memo.reach(h, cidrs) for i, h in by_index.items()}
    majority: dict[str, frozenset[str]] = {}
    for k, cidr in enumerate(cidrs):
        in_cidr = {i: masks[k] & present for i, masks in reach.items()}
        majority[str(cidr)] = memo.groups(str(cidr), in_cidr, ids, len(with_inventory))
    return ClusterDigest(hostname_counts=dict(counts), hostnames=names, inventory_hosts=len(with_inventory),
                         majority=majority, peers=peers)

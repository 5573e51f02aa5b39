"""The majority group of a machine network: the real service's rule, at every cluster size.

``belongs-to-majority-group`` passes for the hosts of one group per machine network, which the real service's
cluster monitor computes (``internal/network/connectivity_groups.go``, ``CreateL2MajorityGroup``) and the host
validator only looks up. The rule, as it computes it:

- Hosts are ordered by id. Two hosts are *linked* when each one's connectivity report reaches the other inside
  the network: an L2 entry (``l2_connectivity``) with a successful address in it, and for an IPv6 network an
  L3 entry too (ARP's counterpart, NDP, is not always answered). Any entry for the peer counts.
- Each host with at least ``MIN_GROUP_SIZE`` (3) hosts in {itself and the hosts it is linked with} is a
  candidate set. Equal sets are one group; its *participants* are the hosts whose own set it is.
- The largest group is taken (ties: the one with more participants, then the one whose members come first in
  id order). If every member participates it is a full mesh: that is the majority group. Otherwise all groups
  of that size are dropped, and the taken group is intersected with each original group it was not made of
  that is not smaller than the largest group left; intersections of at least ``MIN_GROUP_SIZE`` hosts join
  the groups (merged with an equal one), and the largest is taken again.
- No group of at least ``MIN_GROUP_SIZE`` hosts: the network has an empty majority group.

So it is not "more than half": with two equal cliques the one holding the host with the smallest id is the
group, whatever the cluster's size, and a host's verdict does not change when more hosts join either clique.
The real service visits its original groups in Go's map order, which varies from run to run and can decide
which intersections are tried; here they are visited largest first, then by participants, then as found, so
the outcome is deterministic. Pure functions of ints used as bit sets (bit ``i`` is the host of index ``i``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The real service's minGroupSize (2 only for two-node clusters with fencing, which this service lacks).
MIN_GROUP_SIZE = 3


def bits(mask: int) -> Iterator[int]:
    """The indexes of the bits set in ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Group:
    __slots__ = ("members", "participants", "primaries", "size")

    def __init__(self, members: int, participants: int, primaries: int = 0) -> None:
        self.members, self.participants, self.primaries = members, participants, primaries
        self.size = members.bit_count()


def majority_group(mutual: Mapping[int, int], rank: Callable[[int], Any],
                   min_size: int = MIN_GROUP_SIZE) -> int:
    """The majority group's members as a bit set (0: none). ``mutual[i]``: the hosts host ``i`` is linked with
    (itself left out), for every host that has a report; ``rank(i)``: host ``i``'s place in id order."""
    groups: dict[int, dict[int, _Group]] = {}  # size -> members -> group

    def add_or_merge(group: _Group) -> None:
        same = groups.setdefault(group.size, {})
        found = same.get(group.members)
        if found is None:
            same[group.members] = group
        else:
            found.participants = found.members & (found.participants | group.participants)
            found.primaries |= group.primaries

    for me, links in mutual.items():
        members = links | (1 << me)
        if members.bit_count() >= min_size:
            add_or_merge(_Group(members, 1 << me))
    primaries = sorted((g for same in groups.values() for g in same.values()),
                       key=lambda g: (-g.size, -g.participants.bit_count()))
    for i, group in enumerate(primaries):
        group.primaries = 1 << i

    def first_in_id_order(a: int, b: int) -> bool:
        """Whether set ``a`` comes before ``b`` (same size): its members, in id order, are smaller first."""
        differ = a ^ b
        lowest = min(bits(differ), key=rank)
        return bool((a >> lowest) & 1)

    while groups:
        size = max(groups)
        if size < min_size:
            return 0
        taken: _Group | None = None
        for group in groups[size].values():
            if taken is None or group.participants.bit_count() > taken.participants.bit_count() or (
                    group.participants.bit_count() == taken.participants.bit_count()
                    and first_in_id_order(group.members, taken.members)):
                taken = group
        assert taken is not None
        if taken.participants.bit_count() == taken.size:
            return taken.members
        del groups[size]
        biggest = max(groups, default=0)
        for i, primary in enumerate(primaries):
            if primary.size < biggest:
                break  # the primaries come largest first: none after this one is big enough either
            if (taken.primaries >> i) & 1:
                continue
            members = taken.members & primary.members
            smaller = _Group(members, members & (taken.participants | primary.participants),
                             taken.primaries | primary.primaries)
            if min_size <= smaller.size < size:
                add_or_merge(smaller)
                biggest = max(biggest, smaller.size)
    return 0


# -- what a report reaches -------------------------------------------------------------------------------------
class Membership:
    """Which networks each address is inside, remembered per list of networks: every report of a cluster
    names the same peer addresses, and parsing them each time was most of the cost of a report's reach."""

    def __init__(self, limit: int = 1 << 16) -> None:
        self._tables: dict[tuple[Network, ...], dict[str, int]] = {}
        self._limit = limit

    def table(self, networks: tuple[Network, ...]) -> dict[str, int]:
        """address -> the bits (by position in ``networks``) of the networks it is inside, as far as known."""
        table = self._tables.get(networks)
        if table is None or len(table) > self._limit:
            table = self._tables[networks] = {}
        return table


def _inside(address: str, networks: tuple[Network, ...]) -> int:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0
    return sum(1 << k for k, network in enumerate(networks) if ip in network)


def reached(report: Any, networks: Sequence[Network], membership: Membership | None = None) -> dict[str, int]:
    """Per peer a connectivity report names, the bits (by position in ``networks``) of the networks it reached
    that peer in (see the module docstring). Pure, so a reply worker computes it off the event loop."""
    networks = tuple(networks)
    table = (membership or Membership()).table(networks)
    ipv6 = sum(1 << k for k, network in enumerate(networks) if network.version == 6)
    out: dict[str, int] = {}
    for entry in (report.get("remote_hosts") or []) if isinstance(report, dict) else []:
        peer = entry.get("host_id") if isinstance(entry, dict) else None
        if not isinstance(peer, str):
            continue
        found = 0
        for kind, kept in (("l2_connectivity", -1), ("l3_connectivity", ipv6)):
            if not kept:
                continue
            for item in entry.get(kind) or []:
                if not isinstance(item, dict) or not item.get("successful"):
                    continue
                address = item.get("remote_ip_address")
                if not isinstance(address, str):
                    continue
                inside = table.get(address)
                if inside is None:
                    inside = table[address] = _inside(address, networks)
                found |= inside & kept
        out[peer] = out.get(peer, 0) | found
    return out


def mutual_links(reach: Mapping[int, int]) -> dict[int, int]:
    """Per host index, the hosts it reaches and that reach it back (itself left out)."""
    return {a: _row(a, reach) for a in reach}


def _row(a: int, reach: Mapping[int, int]) -> int:
    back = 0
    for b in bits(reach[a] & ~(1 << a)):
        if (reach.get(b, 0) >> a) & 1:
            back |= 1 << b
    return back


def mutual_links_since(old_reach: Mapping[int, int], old_mutual: Mapping[int, int],
                       reach: Mapping[int, int]) -> dict[int, int]:
    """``mutual_links(reach)`` from those of ``old_reach``: only the rows of the hosts whose reach changed are
    computed again, and their bit in every other row (1 ms rather than half a second at 1,000 hosts)."""
    changed = [a for a in old_reach.keys() | reach.keys() if old_reach.get(a) != reach.get(a)]
    if 4 * len(changed) > len(reach):
        return mutual_links(reach)
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


class GroupInputs:
    """What computing a cluster's majority groups needs (``ClusterModel.group_inputs``), copied, so that it
    may run in another thread."""

    __slots__ = ("ids", "networks", "previous", "reach", "stamp")

    def __init__(self, networks: tuple[str, ...], reach: tuple[dict[int, int], ...],
                 previous: tuple[tuple[dict[int, int], dict[int, int]] | None, ...], ids: dict[int, str],
                 stamp: int) -> None:
        self.networks, self.reach, self.previous, self.ids, self.stamp = networks, reach, previous, ids, stamp


class Groups:
    """The majority group of each network, with the reach and links it came from (the next computation
    updates the links of the reports that changed instead of making them afresh)."""

    __slots__ = ("members", "mutual", "networks", "reach", "stamp")

    def __init__(self, networks: tuple[str, ...], reach: tuple[dict[int, int], ...],
                 mutual: tuple[dict[int, int], ...], members: tuple[frozenset[str], ...], stamp: int) -> None:
        self.networks, self.reach, self.mutual, self.members, self.stamp = networks, reach, mutual, members, stamp


def compute_groups(inputs: GroupInputs) -> Groups:
    """The majority group of each network (``majority_group``); pure, for a worker thread."""
    mutual, members = [], []
    ids = inputs.ids
    for reach, previous in zip(inputs.reach, inputs.previous, strict=True):
        links = mutual_links(reach) if previous is None else \
            mutual_links_since(previous[0], previous[1], reach)
        group = majority_group(links, rank=ids.__getitem__)
        mutual.append(links)
        members.append(frozenset(ids[i] for i in bits(group)))
    return Groups(inputs.networks, inputs.reach, tuple(mutual), tuple(members), inputs.stamp)

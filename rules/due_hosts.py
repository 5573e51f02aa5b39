"""Which hosts of a cluster a change of its model may have judged differently.

A host's verdicts read the cluster's model (``cluster_model``) in a few places only: whether another host
goes by its name (``hostname-unique``), the role and name of the peers its own report flags (the same-role
latency and packet-loss checks, ``mtu-valid``), whether it is in its network's majority group, and whether the
cluster has more than one host and at least three with an inventory. A big cluster's hosts are evaluated
between requests, and again when what they are judged by moved. Judged by the model's version alone, every
host of a 1,000-host discovery was due again after every monitor pass, since some host got its name or its
inventory in each (docs/scale.md); :class:`DueHosts` names the hosts such a change concerns instead, and
says "every host" only when a count the rules compare with, or the networks, changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rules.majority import Groups


class _Named(Protocol):
    name: str | None


class DueHosts:
    """Hosts due again since :meth:`take`; kept by the model (``ClusterModel.due``), on the loop's thread."""

    __slots__ = ("asked", "everyone", "hosts", "shape")

    def __init__(self) -> None:
        #: The hosts named so far, and whether it is every host.
        self.hosts: set[str] = set()
        self.everyone = False
        #: (more than one host, at least 3 with an inventory): the counts rules compare with.
        self.shape = (False, False)
        #: host id -> the hosts whose evaluation read its role or label (``ClusterModel.peer`` with ``of``).
        self.asked: dict[str, set[str]] = {}

    def take(self) -> set[str] | None:
        """The hosts due since the last call (None: every host); a host :meth:`judged` since is not."""
        if self.everyone:
            self.everyone, self.hosts = False, set()
            return None
        due, self.hosts = self.hosts, set()
        return due

    def judged(self, host_id: str) -> None:
        """The host was just evaluated against the model as it is now."""
        self.hosts.discard(host_id)

    def all(self) -> None:
        """Every host (the machine networks changed, the model was made afresh)."""
        self.everyone = True
        self.asked.clear()

    def counted(self, hosts: int, inventoried: int) -> None:
        shape = (hosts > 1, inventoried >= 3)
        if shape != self.shape:
            self.shape, self.everyone = shape, True

    def ask(self, peer: str, of: str) -> None:
        self.asked.setdefault(peer, set()).add(of)

    def peer_changed(self, host_id: str) -> None:
        """The host's role or label changed, or it came or left: the hosts that read it are due."""
        self.hosts.update(self.asked.pop(host_id, ()))

    def renamed(self, host_id: str, old: str | None, new: str | None, names: Mapping[str, int],
                records: Mapping[str, _Named]) -> None:
        """The hosts whose ``hostname-unique`` the host's new name changed (``names``: the counts, already
        updated): the one left alone with its old name, the one it now collides with. Found by a scan of
        ``records``: names rarely collide, so it rarely runs."""
        for name, alone in ((old, 1), (new, 2)):
            if name is not None and names.get(name, 0) == alone:
                self.hosts.update(h for h, r in records.items() if r.name == name and h != host_id)

    def regrouped(self, last: Groups | None, groups: Groups) -> None:
        """New majority groups: the hosts that entered or left one (every host when the networks changed)."""
        if last is None or last.networks != groups.networks:
            self.everyone = True
            return
        for before, after in zip(last.members, groups.members, strict=True):
            self.hosts.update(before ^ after)

    def dropped(self, host_id: str) -> None:
        self.peer_changed(host_id)
        self.hosts.discard(host_id)

"""What every rule reads: a host document in its neighbourhood, and the helpers for the API's document shapes.

Documents are the spec models' JSON (``host``, ``cluster``, ``infra-env``) as the store keeps them. A rule
reaches beyond its :class:`HostView` only through ``view.service``, the narrow port the orchestrator
implements (:class:`ServicePort`): settings to read, an event to record, a host status to set, the OS image
to offer; and what it knows of the other hosts comes from ``view.model``, the cluster's model
(``cluster_model``). Rules never see the store or HTTP, and judge time by ``view.now``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from rules.cluster_model import ClusterModel, decode
from rules.majority import Network
from rules.requirements import is_sno as is_sno  # here for the rules that read documents; defined with the sizes

#: Validation outcome: (status, message) with status one of success, failure, pending, error, disabled.
Outcome = tuple[str, str]


class ServicePort(Protocol):
    """What rules may ask of the service (the orchestrator's ``ReferenceService`` implements it)."""

    settings: Any

    def event(self, message: str, host: dict[str, Any] | None = None, severity: str = "info") -> None: ...

    def set_status(self, host: dict[str, Any], status: str, info: str | None = None) -> None: ...

    def os_image_digest(self) -> str | None:
        """The SHA-256 of the OS image the service hands out, or None when it has none."""


class WithHost(Sequence[dict[str, Any]]):
    """A cluster's host documents with one of them replaced by the copy being evaluated, without copying
    the list (at 1,000 hosts, building it for every evaluation was a noticeable part of a poll)."""

    def __init__(self, hosts: Sequence[dict[str, Any]], host: dict[str, Any]) -> None:
        self._hosts, self._host, self._id = hosts, host, host.get("id")

    def __len__(self) -> int:
        return len(self._hosts)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._swap(h) for h in self._hosts[index]]
        return self._swap(self._hosts[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._swap(h) for h in self._hosts)

    def _swap(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._host if doc.get("id") == self._id else doc


class HostView:
    """One host document in its neighbourhood: what every rule reads (see the module docstring). A plain class,
    not a dataclass: ``agent check`` would import dataclasses (with inspect, ast and dis) for it (issue 29)."""

    def __init__(self, host: dict[str, Any], infra_env: dict[str, Any], cluster: dict[str, Any] | None = None,
                 hosts: Sequence[dict[str, Any]] | None = None, service: Any = None,
                 model: ClusterModel | None = None, now: float | None = None) -> None:
        self.host, self.infra_env, self.cluster = host, infra_env, cluster
        #: Every host of the cluster (or of the infra-env when unbound), this one included.
        self.hosts: Sequence[dict[str, Any]] = [] if hosts is None else hosts
        #: The service port (see the module docstring); None where a rule is evaluated on documents alone.
        self.service = service
        #: What the rules know of the cluster beyond this host (``cluster_model``): the service's, brought up to
        #: date with ``hosts``; when none is given, one made from ``hosts`` (documents evaluated on their own).
        self.model = ClusterModel() if model is None else model
        #: The time the rules judge by (``time.time()``), the caller's: rules keep no clock of their own.
        self.now = time.time() if now is None else now
        self._decoded: dict[str, tuple[Any, Any]] = {}
        if not self.model.synced:  # documents evaluated on their own: a model of just them
            self.model.sync(self.cluster, self.hosts)
            self.model.regroup()

    def json(self, name: str) -> Any:
        """The host's JSON field ``name`` decoded, once per view while it holds the same value: one evaluation
        reads the inventory in a dozen rules. Read it, or copy it before changing it."""
        raw = self.host.get(name)
        held = self._decoded.get(name)
        if held is not None and held[0] is raw:
            return held[1]
        value = decode(raw)
        self._decoded[name] = (raw, value)
        return value

    @property
    def inventory(self) -> dict[str, Any] | None:
        inv = self.json("inventory")
        return inv if isinstance(inv, dict) else None

    @property
    def machine_networks(self) -> tuple[Network, ...]:
        """The cluster's machine networks (``cluster_model.machine_cidrs``), parsed once by the model."""
        return self.model.machine_networks(self.cluster)

    @property
    def role(self) -> str:
        role = self.host.get("role") or "auto-assign"
        return str(role)

    @property
    def others(self) -> list[dict[str, Any]]:
        return [h for h in self.hosts if h.get("id") != self.host.get("id")]

    @property
    def settings(self) -> Any:
        """The service's settings, or None when there is no service."""
        return getattr(self.service, "settings", None)


def effective_role(host: dict[str, Any]) -> str:
    """The host's role, its suggested role while it is auto-assign."""
    role = host.get("role") or "auto-assign"
    if role == "auto-assign" and host.get("suggested_role"):
        role = host["suggested_role"]
    return str(role)


def host_name(host: dict[str, Any]) -> str:
    """How events and messages name a host: its requested hostname, else the reported one, else its id."""
    if host.get("requested_hostname"):
        return str(host["requested_hostname"])
    inv = parse_json_field(host, "inventory") or {}
    return str(inv.get("hostname") or host.get("id"))


def disk_key(disk: dict[str, Any]) -> str:
    """The identifier skip_formatting_disks and disks_to_be_formatted use: the disk's id, else its path."""
    return str(disk.get("id") or disk.get("path") or "")


def skipped_formatting(host: dict[str, Any]) -> list[str]:
    """The host's skip_formatting_disks (a comma-separated string in the API) as a list."""
    return [d for d in str(host.get("skip_formatting_disks") or "").split(",") if d]


def parse_json_field(doc: dict[str, Any], name: str) -> Any:
    """Host fields that hold JSON are strings on the wire (as in the real service); decode one, or None. Rules
    read their own host's fields with ``HostView.json`` and other hosts' through ``view.model``."""
    return decode(doc.get(name))


#: The attribute the hook decorators (``deriver`` here, the others in ``registry``) mark functions with: a
#: tuple of (kind, key, what) that a ``registry.Rulebook`` reads. Marks only: importing an area fills no table.
HOOK_MARK = "_rule_hooks"

_Derive = TypeVar("_Derive", bound=Callable[[Any], Any])


def deriver(name: str) -> Callable[[_Derive], _Derive]:
    """Marks a function rules pass to ``view.model.fact`` for field ``name``, so that the rulebook's
    ``derive_all`` computes it when a reply sets the field (``ClusterModel.prime``): for a big reply, in the
    worker process that checked it (``reply_workers``)."""

    def mark(derive: _Derive) -> _Derive:
        derive.__dict__[HOOK_MARK] = (*derive.__dict__.get(HOOK_MARK, ()), ("derive", name, None))
        return derive

    return mark

"""What every rule reads: a host document in its neighbourhood, and the helpers for the API's document shapes.

Documents are the spec models' JSON (``host``, ``cluster``, ``infra-env``) as the store keeps them. A rule
reaches beyond its :class:`HostView` only through ``view.service``, the narrow port the orchestrator
implements (:class:`ServicePort`): settings to read, an event to record, a host status to set, the OS image
to offer. Rules never see the store or HTTP.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from common import json_codec
from rules.stored_text import StoredText

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


@dataclass
class HostView:
    host: dict[str, Any]
    infra_env: dict[str, Any]
    cluster: dict[str, Any] | None = None
    #: Every host of the cluster (or of the infra-env when unbound), this one included.
    hosts: Sequence[dict[str, Any]] = field(default_factory=list)
    #: The service port (see the module docstring); None where a rule is evaluated on documents alone.
    service: Any = None
    #: The cluster's ``cluster_digest.ClusterDigest`` when the caller has one: the cluster-wide validations
    #: read it instead of every other host's documents. None computes them from ``hosts`` as before.
    digest: Any = None

    @property
    def inventory(self) -> dict[str, Any] | None:
        inv = parse_json_field(self.host, "inventory")
        return inv if isinstance(inv, dict) else None

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


def is_sno(cluster: dict[str, Any] | None) -> bool:
    """A single-node cluster, by either spelling the API has had for it."""
    if not cluster:
        return False
    return cluster.get("control_plane_count") == 1 or cluster.get("high_availability_mode") == "None"


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


#: The last decoded JSON fields, by their text: one evaluation of a host reads its inventory in a dozen
#: validations and builders, and a 20 KB inventory (a 250 KB connectivity report at 1,000 hosts) took most of a
#: poll's time to decode again each time. Small, so it holds what the current request reads, not the cluster.
_DECODED: OrderedDict[str, Any] = OrderedDict()
_DECODED_MAX = 32
#: Texts longer than this are decoded each time, not remembered: a decoded 1,000-peer report is a few MB of
#: objects, and 32 of them were most of the service's memory at 1,000 hosts. The rules read such reports
#: through ``derived``, which remembers what they need of them.
_DECODED_MAX_TEXT = 64 << 10
_DECODED_LOCK = threading.Lock()


def parse_json_field(doc: dict[str, Any], name: str) -> Any:
    """Host fields that hold JSON are strings on the wire (as in the real service); decode one, or None.

    The value may be shared with other callers (see ``_DECODED``): read it, or copy it before changing it."""
    raw = doc.get(name)
    if not raw:
        return None
    if isinstance(raw, StoredText):
        raw = raw.text()
    if not isinstance(raw, str):
        return raw
    with _DECODED_LOCK:
        if raw in _DECODED:
            _DECODED.move_to_end(raw)
            return _DECODED[raw]
    try:
        value = json_codec.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if len(raw) <= _DECODED_MAX_TEXT:
        with _DECODED_LOCK:
            _DECODED[raw] = value
            while len(_DECODED) > _DECODED_MAX:
                _DECODED.popitem(last=False)
    return value


_DERIVED: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_DERIVED_MAX = 50_000
#: The functions registered with ``deriver``, per field: what ``prime`` computes when a reply sets the field.
_DERIVERS: dict[str, dict[str, Callable[[Any], Any]]] = {}

_Derive = TypeVar("_Derive", bound=Callable[[Any], Any])


def deriver(name: str) -> Callable[[_Derive], _Derive]:
    """Registers a function rules pass to ``derived`` for field ``name``, so that it is computed when a reply
    sets the field (``prime``): for a big reply, in the worker process that checked it (``reply_workers``)."""

    def register(derive: _Derive) -> _Derive:
        _DERIVERS.setdefault(name, {})[derive.__qualname__] = derive
        return derive

    return register


def derive_all(name: str, decoded: Any) -> dict[str, Any]:
    """What every registered deriver of field ``name`` makes of its decoded value."""
    return {qualname: derive(decoded) for qualname, derive in _DERIVERS.get(name, {}).items()}


def derived(host: dict[str, Any], name: str, derive: Callable[[Any], Any]) -> Any:
    """``derive(decoded field)``, remembered per host and function while the stored JSON string is the same:
    a rule that reads every host of a cluster (the IP collisions, a connectivity-check's peer list) compares a
    string instead of decoding thousands. ``derive`` must return a value its callers only read."""
    raw = host.get(name)
    if not raw:
        return derive(None)
    key = (name, str(host.get("id") or ""), derive.__qualname__)
    cached = _DERIVED.get(key)
    if cached is not None and cached[0] == raw:
        return cached[1]
    value = derive(parse_json_field(host, name))
    _remember(key, raw, value)
    return value


def _remember(key: tuple[str, str, str], raw: Any, value: Any) -> None:
    if len(_DERIVED) >= _DERIVED_MAX:
        _DERIVED.clear()
    _DERIVED[key] = (raw, value)


def prime(host: dict[str, Any], name: str, decoded: Any, values: dict[str, Any] | None = None) -> None:
    """What the rules derive from ``host[name]``: ``values`` when the reply's worker derived them
    (``derive_all``), else computed now from ``decoded`` (that text, already decoded by the reply's check). A
    250 KB connectivity report is then not decoded again by each rule that reads it."""
    raw = host.get(name)
    if not raw:
        return
    for qualname, value in (values if values is not None else derive_all(name, decoded)).items():
        _remember((name, str(host.get("id") or ""), qualname), raw, value)

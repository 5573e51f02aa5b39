"""Extension points of the reference service: validations, step arguments and reply handlers.

The service core (``app``, ``lifecycle``) knows the protocol and the host state machine; everything that is
about one area (hardware, network, pre-install checks, installation) lives in its own module and registers
here with decorators. A host's state is then derived from the registered validations, the steps it is sent
come from the registered argument builders, and its replies are stored by the registered handlers.

Hooks receive a :class:`HostView`: the host document (spec ``host`` field names), its cluster and infra-env
documents and every host of the same cluster, read-only except ``view.host`` which reply handlers update.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Validation outcome: (status, message) with status one of success, failure, pending, error, disabled.
Outcome = tuple[str, str]


@dataclass
class HostView:
    host: dict[str, Any]
    infra_env: dict[str, Any]
    cluster: dict[str, Any] | None = None
    #: Every host of the cluster (or of the infra-env when unbound), this one included.
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: The ReferenceService (settings, store) for hooks that need more than this host's neighbourhood.
    service: Any = None

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


def is_sno(cluster: dict[str, Any] | None) -> bool:
    """A single-node cluster, by either spelling the API has had for it."""
    if not cluster:
        return False
    return cluster.get("control_plane_count") == 1 or cluster.get("high_availability_mode") == "None"


def disk_key(disk: dict[str, Any]) -> str:
    """The identifier skip_formatting_disks and disks_to_be_formatted use: the disk's id, else its path."""
    return str(disk.get("id") or disk.get("path") or "")


def skipped_formatting(host: dict[str, Any]) -> list[str]:
    """The host's skip_formatting_disks (a comma-separated string in the API) as a list."""
    return [d for d in str(host.get("skip_formatting_disks") or "").split(",") if d]


def parse_json_field(doc: dict[str, Any], name: str) -> Any:
    """Host fields that hold JSON are strings on the wire (as in the real service); decode one, or None."""
    raw = doc.get(name)
    if not raw:
        return None
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class Validation:
    id: str
    category: str
    func: Callable[[HostView], Outcome | None]
    #: Blocking validations gate ``known``; non-blocking ones are shown only (ntp-synced, mtu-valid, ...).
    blocking: bool = True
    #: Part of hasMinRequiredHardware: failing it makes the host ``insufficient`` even before other checks.
    hardware_gate: bool = False
    #: Applies to hosts of an infra-env with no cluster (the pool) too.
    unbound: bool = False


VALIDATIONS: dict[str, Validation] = {}
#: Extra HTTP routes of area modules (starlette.routing.Route objects), mounted by the app.
ROUTES: list[Any] = []
#: Host status -> the step types issued to it, in order, as the real service's instruction manager (day-1,
#: bound hosts). Steps whose argument builder returns None (or has none registered) are left out.
STATE_STEPS: dict[str, list[str]] = {
    "discovering": ["inventory"],
    "known": [
        "connectivity-check", "tang-connectivity-check", "free-network-addresses", "dhcp-lease-allocate",
        "inventory", "ntp-synchronizer", "domain-resolution", "verify-vips",
    ],
    "insufficient": [
        "inventory", "connectivity-check", "tang-connectivity-check", "free-network-addresses",
        "dhcp-lease-allocate", "ntp-synchronizer", "domain-resolution", "verify-vips",
    ],
    "pending-for-input": [
        "inventory", "connectivity-check", "tang-connectivity-check", "free-network-addresses",
        "dhcp-lease-allocate", "ntp-synchronizer", "domain-resolution", "verify-vips",
    ],
    "disconnected": ["inventory"],
    "preparing-for-installation": [
        "dhcp-lease-allocate", "installation-disk-speed-check", "container-image-availability",
    ],
    "installing": ["install"],
    "error": ["logs-gather", "stop-installation"],
    "cancelled": ["logs-gather", "stop-installation"],
    # hosts of an infra-env with no cluster
    "discovering-unbound": ["inventory", "ntp-synchronizer"],
    "insufficient-unbound": ["inventory", "ntp-synchronizer"],
    "known-unbound": ["inventory", "ntp-synchronizer"],
    "disconnected-unbound": ["inventory"],
}
#: Statuses polled less often (120 s in the real service) and those told to exit.
SLOW_STATES = {"disconnected", "disconnected-unbound", "error", "cancelled", "disabled", "resetting"}
EXIT_STATES = {"binding", "unbinding", "unbinding-pending-user-action"}
STEP_ARGUMENTS: dict[str, Callable[[HostView], list[str] | None]] = {}
REPLY_HANDLERS: dict[str, Callable[[HostView, Any, dict[str, Any]], None]] = {}


def validation(
    id: str, category: str, *, blocking: bool = True, hardware_gate: bool = False, unbound: bool = False
) -> Callable[[Callable[[HostView], Outcome | None]], Callable[[HostView], Outcome | None]]:
    """Register a host validation; the function returns (status, message), or None when it does not apply."""

    def register(func: Callable[[HostView], Outcome | None]) -> Callable[[HostView], Outcome | None]:
        VALIDATIONS[id] = Validation(id, category, func, blocking, hardware_gate, unbound)
        return func

    return register


def step_arguments(
    step_type: str,
) -> Callable[[Callable[[HostView], list[str] | None]], Callable[[HostView], list[str] | None]]:
    """Register how the arguments of a step are built for a host; returning None skips the step."""

    def register(func: Callable[[HostView], list[str] | None]) -> Callable[[HostView], list[str] | None]:
        STEP_ARGUMENTS[step_type] = func
        return func

    return register


def reply_handler(
    step_type: str,
) -> Callable[[Callable[[HostView, Any, dict[str, Any]], None]], Callable[[HostView, Any, dict[str, Any]], None]]:
    """Register what a reply does to the host: ``func(view, parsed_output, reply)``; it updates ``view.host``.

    It is called for successful replies (exit code 0) with the output decoded, and for failed ones with
    ``parsed_output`` None, so a handler can record failures where the real service does.
    """

    def register(
        func: Callable[[HostView, Any, dict[str, Any]], None],
    ) -> Callable[[HostView, Any, dict[str, Any]], None]:
        REPLY_HANDLERS[step_type] = func
        return func

    return register

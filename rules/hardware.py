"""The real service's hardware validations: requirements per role, disks, truncation, hostnames.

They use the real ids, categories, thresholds and message texts (``internal/host/validator.go``), because
people and tools read ``validations_info`` and ``status_info`` from both services alike.
"""

from __future__ import annotations

import re
from typing import Any

from common.hostnames import FORBIDDEN
from rules.disks import complete_eligibility, eligibility_copy, eligible_disks
from rules.documents import (
    HostView,
    Outcome,
    disk_key,
    effective_role,
    skipped_formatting,
)
from rules.registry import validation
from rules.requirements import (
    MEMINFO_TOLERANCE,
    MEMORY_TOLERANCE_MIB,
    bytes_to_string,
    minimum_requirements,
    role_requirements,
)

HOSTNAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}(?:[.][a-z0-9-]{1,63})*$"
#: The names the agent replaces and the service refuses are the same list.
FORBIDDEN_HOSTNAMES = FORBIDDEN


@validation("no-skip-installation-disk", "hardware")
def no_skip_installation_disk(view: HostView) -> Outcome:
    disk = view.host.get("installation_disk_id")
    if disk and disk in skipped_formatting(view.host):
        return "failure", ("Requesting to skip the formatting of the installation disk is not allowed. The "
                           "installation disk must be formatted. Please either change this host's installation disk "
                           "or do not skip the formatting of the installation disk")
    return "success", "No request to skip formatting of the installation disk"


@validation("no-skip-missing-disk", "hardware")
def no_skip_missing_disk(view: HostView) -> Outcome:
    """A disk kept from formatting that is gone may be back under a new id: the request must be made again
    knowingly, or that disk would be formatted after all."""
    inv = view.inventory
    if inv is None:
        return "pending", "Host inventory not available yet"
    present = {disk_key(d) for d in inv.get("disks") or []}
    if any(d not in present for d in skipped_formatting(view.host)):
        return "failure", ("One or more of the disks that you have requested to skip the formatting of are no "
                           "longer present on this host. To ensure they haven't just changed their identity, please "
                           "remove your request to skip their formatting and then if needed add them back using the "
                           "new ID")
    return "success", "All disks that have skipped formatting are present in the host inventory"


# -- validations -----------------------------------------------------------------------------------
def valid_inventory(view: HostView) -> dict[str, Any] | None:
    """The inventory if the service would accept it as valid: it has CPU, memory and at least one disk."""
    inv = view.inventory
    if not isinstance(inv, dict) or not inv.get("cpu") or not inv.get("memory") or not inv.get("disks"):
        return None
    return inv


def real_hostname(host: dict[str, Any], inventory: dict[str, Any]) -> str:
    """The name the host will get: the user's requested hostname if set, else the one it reported."""
    return str(host.get("requested_hostname") or inventory.get("hostname") or "")


def _memory_ok(inv: dict[str, Any], required_mib: int) -> bool:
    mem = inv.get("memory") or {}
    tolerance = MEMORY_TOLERANCE_MIB << 20
    if mem.get("physical_bytes_method") == "meminfo":
        tolerance += int((required_mib << 20) * MEMINFO_TOLERANCE)
    return int(mem.get("physical_bytes") or 0) >= (required_mib << 20) - tolerance


@validation("has-inventory", "hardware", hardware_gate=True, unbound=True)
def has_inventory(view: HostView) -> Outcome:
    if valid_inventory(view) is not None:
        return "success", "Valid inventory exists for the host"
    if isinstance(view.inventory, dict) and (view.inventory.get("truncation") or {}).get("type") == "full":
        return "failure", "Inventory has been received for the host but it is fully truncated"
    return "failure", "Inventory has not been received for the host"


def _truncation(view: HostView, kind: str) -> Outcome:
    inv = view.inventory
    if not isinstance(inv, dict):
        return "pending", "Missing inventory"
    truncation = inv.get("truncation") or {}
    if truncation.get("type") == kind:
        return "failure", f"Inventory is truncated ({kind}): {', '.join(truncation.get('reasons') or [])}"
    return "success", f"Inventory is not {'fully' if kind == 'full' else 'partially'} truncated"


@validation("inventory-not-fully-truncated", "hardware", hardware_gate=True, unbound=True)
def inventory_not_fully_truncated(view: HostView) -> Outcome:
    """Blocking: what is left of a fully truncated inventory cannot be validated (nor installed to)."""
    return _truncation(view, "full")


@validation("inventory-not-partially-truncated", "hardware", blocking=False, unbound=True)
def inventory_not_partially_truncated(view: HostView) -> Outcome:
    """A warning: a partial inventory lost only what the validations do not need."""
    return _truncation(view, "partial")


@validation("has-min-cpu-cores", "hardware", hardware_gate=True, unbound=True)
def has_min_cpu_cores(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    need, _ = minimum_requirements(view.cluster)
    count = int((inv.get("cpu") or {}).get("count") or 0)
    if count >= need:
        return "success", "Sufficient CPU cores"
    return "failure", (
        "The host is not eligible to participate in Openshift Cluster because the minimum required "
        f"CPU cores for any role is {need}, found only {count}"
    )


@validation("has-min-memory", "hardware", hardware_gate=True, unbound=True)
def has_min_memory(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    _, need_mib = minimum_requirements(view.cluster)
    if _memory_ok(inv, need_mib):
        return "success", "Sufficient minimum RAM"
    have = int((inv.get("memory") or {}).get("physical_bytes") or 0)
    return "failure", (
        "The host is not eligible to participate in Openshift Cluster because the minimum required "
        f"RAM for any role is {bytes_to_string(need_mib << 20)}, found only {bytes_to_string(have)}"
    )


@validation("has-min-valid-disks", "hardware", hardware_gate=True, unbound=True)
def has_min_valid_disks(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    current = eligibility_copy(inv)
    complete_eligibility(current, role=effective_role(view.host), cluster=view.cluster)
    if eligible_disks(current):
        return "success", "Sufficient disk capacity"
    return (
        "failure",
        "No eligible disks were found, please check specific disks to see why they are not eligible",
    )


@validation("has-cpu-cores-for-role", "hardware")
def has_cpu_cores_for_role(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory or role"
    role = effective_role(view.host)
    need = role_requirements(role, view.cluster).cpu_cores
    count = int((inv.get("cpu") or {}).get("count") or 0)
    if count >= need:
        return "success", f"Sufficient CPU cores for role {role}"
    return "failure", f"Require at least {need} CPU cores for {role} role, found only {count}"


@validation("has-memory-for-role", "hardware")
def has_memory_for_role(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory or role"
    role = effective_role(view.host)
    need_mib = role_requirements(role, view.cluster).ram_mib
    if _memory_ok(inv, need_mib):
        return "success", f"Sufficient RAM for role {role}"
    have = int((inv.get("memory") or {}).get("physical_bytes") or 0)
    return "failure", (
        f"Require at least {bytes_to_string(need_mib << 20)} RAM for role {role}, found only {bytes_to_string(have)}"
    )


@validation("hostname-unique", "hardware")
def hostname_unique(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    name = real_hostname(view.host, inv)
    if view.model.hostname_taken(view.host["id"], name):  # the cluster's hostname counts
        return "failure", f"Hostname {name} is not unique in cluster"
    return "success", f"Hostname {name} is unique in cluster"


def hostname_problem(name: str) -> str | None:
    """Why a hostname is refused, in the service's words; None when it is allowed."""
    if name in FORBIDDEN_HOSTNAMES:
        return f"The host name {name} is forbidden"
    if len(name) > 253 or not re.match(HOSTNAME_PATTERN, name):
        return f"Hostname {name} is forbidden, hostname should match pattern {HOSTNAME_PATTERN}"
    return None


@validation("hostname-valid", "hardware", unbound=True)
def hostname_valid(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "failure", "Missing inventory"
    name = real_hostname(view.host, inv)
    problem = hostname_problem(name)
    if problem:
        return "failure", problem
    return "success", f"Hostname {name} is allowed"

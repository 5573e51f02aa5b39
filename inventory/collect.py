"""Runs the collectors, each isolated, and shapes their parts into the inventory the service expects.

Each collector runs in its own thread with its own time budget. One that raises or overruns its budget
leaves its fields out and is logged (and named in the returned problems); the rest of the inventory is still
reported, because a host with a flaky BMC or a hung disk must still be discoverable. Threads that overrun are
abandoned, not killed (Python cannot kill a thread): they are daemon threads, and the step's process ends
soon after the reply, which also ends any command they started (the runner kills the whole process tree).

The output follows Go's encoding of ``models.Inventory``: keys sorted, empty scalars left out (``omitempty``),
arrays always present, ``not_eligible_reasons`` null for eligible disks.
"""

# No "from __future__ import annotations": the NamedTuples here are made from evaluated annotations (common.host).
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from common.host import Host
from inventory import (
    bmc,
    boot,
    cpu,
    disks,
    gpus,
    hostname,
    interfaces,
    memory,
    routes,
    system_vendor,
    tpm,
)
from inventory.options import Options

if TYPE_CHECKING:
    import logging

CollectFunc = Callable[[Host, Options], dict[str, Any]]


class Collector(NamedTuple):
    name: str
    func: CollectFunc
    #: Seconds this collector may take before its part is given up.
    budget: float


COLLECTORS: tuple[Collector, ...] = (
    Collector("cpu", cpu.collect, 10),
    Collector("memory", memory.collect, 10),
    Collector("disks", disks.collect, 30),
    Collector("interfaces", interfaces.collect, 10),
    Collector("routes", routes.collect, 10),
    Collector("boot", boot.collect, 10),
    Collector("system_vendor", system_vendor.collect, 10),
    Collector("gpus", gpus.collect, 10),
    Collector("bmc", bmc.collect, 30),
    Collector("tpm", tpm.collect, 5),
    Collector("hostname", hostname.collect, 5),
)
#: Arrays Go always encodes (``[]`` or ``null``), even when empty.
ARRAYS = frozenset({"disks", "gpus", "interfaces", "routes", "flags", "ipv4_addresses", "ipv6_addresses"})


def _log() -> "logging.Logger":
    """The logger, imported on first failure: logging is a cost at every start of ``agent inventory``."""
    import logging

    return logging.getLogger("inventory")


def run_collectors(
    host: Host,
    options: Options,
    collectors: Sequence[Collector],
) -> tuple[dict[str, Any], list[str]]:
    """The merged parts of all collectors that finished in time, and one line per collector that did not."""
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}

    def work(c: Collector) -> None:
        try:
            results[c.name] = c.func(host, options)
        except Exception as exc:  # any failure of one collector must only cost its own part
            _log().warning("inventory collector %s failed: %s: %s", c.name, type(exc).__name__, exc, exc_info=True)
            errors[c.name] = f"{type(exc).__name__}: {exc}"

    start = time.monotonic()
    threads = [
        (c, threading.Thread(target=work, args=(c,), name=f"inventory-{c.name}", daemon=True)) for c in collectors
    ]
    for _, t in threads:
        t.start()
    problems = []
    merged: dict[str, Any] = {}
    for c, t in threads:
        t.join(max(0.0, start + c.budget - time.monotonic()))
        if t.is_alive():
            _log().warning("inventory collector %s did not finish within %gs; its part is left out", c.name, c.budget)
            problems.append(f"{c.name}: did not finish within {c.budget:g}s")
        elif c.name in errors:
            problems.append(f"{c.name}: {errors[c.name]}")
        else:
            merged.update(results.get(c.name, {}))
    return merged, problems


def go_shape(value: Any, key: str = "") -> Any:
    """Go's JSON of the models: sorted keys, zero scalars and nils omitted except where Go keeps them."""
    if isinstance(value, dict):
        out = {}
        for k in sorted(value):
            v = value[k]
            if k == "not_eligible_reasons":
                out[k] = v or None
            elif k == "installation_eligibility" or k in ARRAYS:
                out[k] = go_shape(v if v is not None else [], k)
            elif (
                v is None
                or v == ""
                or v is False
                or (isinstance(v, int | float) and not isinstance(v, bool) and v == 0)
            ):
                continue
            else:
                out[k] = go_shape(v, k)
        return out
    if isinstance(value, list):
        return [go_shape(v, key) for v in value]
    return value


def _drop_smart(inv: dict[str, Any]) -> None:
    for disk in inv.get("disks", []):
        disk.pop("smart", None)


def _drop_ineligible_disks(inv: dict[str, Any]) -> None:
    inv["disks"] = [d for d in inv.get("disks", []) if d.get("installation_eligibility", {}).get("eligible")]


def _drop_unaddressed_virtual_nics(inv: dict[str, Any]) -> None:
    inv["interfaces"] = [
        n
        for n in inv.get("interfaces", [])
        if n.get("type") in ("physical", "vlan", "bond") or n.get("ipv4_addresses") or n.get("ipv6_addresses")
    ]


def _drop_routes(inv: dict[str, Any]) -> None:
    inv["routes"] = []


def _drop_cpu_flags(inv: dict[str, Any]) -> None:
    if "cpu" in inv:
        inv["cpu"]["flags"] = []


#: What goes first when an inventory is too large, least useful bulk first.
_TRUNCATION_STAGES: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
    ("SMART data of the disks removed", _drop_smart),
    ("disks not eligible for installation removed", _drop_ineligible_disks),
    ("virtual interfaces without addresses removed", _drop_unaddressed_virtual_nics),
    ("routes removed", _drop_routes),
    ("CPU flags removed", _drop_cpu_flags),
)


def truncate(inventory: dict[str, Any], max_size: int) -> dict[str, Any]:
    """Shrink an inventory whose JSON exceeds ``max_size`` bytes, saying what was dropped in ``truncation``.

    The least useful bulk goes first (SMART dumps, ineligible disks, unaddressed virtual interfaces, routes,
    CPU flags): a "partial" inventory still lets the service validate the host. When that is not enough, only
    the hardware summary is kept ("full"), which the service reports as a truncated inventory.
    """

    def size(inv: dict[str, Any]) -> int:
        return len(json.dumps(inv, separators=(",", ":")))

    if max_size <= 0 or size(inventory) <= max_size:
        return inventory
    inv: dict[str, Any] = json.loads(json.dumps(inventory))
    reasons: list[str] = []
    for reason, stage in _TRUNCATION_STAGES:
        before = size(inv)
        stage(inv)
        if size(inv) < before:
            reasons.append(reason)
        if size({**inv, "truncation": {"type": "partial", "reasons": reasons}}) <= max_size:
            inv["truncation"] = {"type": "partial", "reasons": reasons}
            return inv
    keep = ("hostname", "cpu", "memory", "system_vendor", "boot", "tpm_version")
    full = {k: inv[k] for k in keep if k in inv}
    full.update(disks=[], interfaces=[], routes=[], gpus=[])
    full["truncation"] = {
        "type": "full",
        "reasons": [
            *reasons,
            f"inventory still larger than {max_size} bytes: only the hardware summary kept",
        ],
    }
    return dict(sorted(full.items()))  # Go's struct order, as every other inventory


def inventory(
    host: Host,
    options: Options | None = None,
    collectors: Sequence[Collector] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The host's inventory in the Go agent's shape, and what could not be collected."""
    options = options or Options()
    collectors = COLLECTORS if collectors is None else collectors
    inv, problems = run_collectors(host, options, collectors)
    if "hostname" in inv:
        inv["hostname"] = hostname.replace_localhost(str(inv["hostname"]), inv.get("interfaces") or [])
    for name in ("disks", "gpus", "interfaces", "routes"):
        if any(c.name == name for c in collectors):
            inv.setdefault(name, [])
    return go_shape(inv), problems

"""The reference service's rules: pure functions over the API's documents, no I/O and no service dependency.

Host and cluster validations with the real service's ids, thresholds and messages, the state machines, which
steps each host state issues and with which arguments, what each step reply does to a host, and the install
progress rules. A rule is a function of a host's view and its cluster's model (``documents.HostView``,
``cluster_model.ClusterModel``): no module state, no store, no clock of its own; what must be remembered
between calls (derived facts, majority groups, the admission queue) is the model's, which the service owns.
An area's decorators mark its hooks and fill no table: whoever evaluates hosts builds a ``registry.Rulebook``
of the areas it needs and owns it. No area needs the ``service`` extra's dependencies, so the agent uses the
same rules (``disks.service_disk_reasons``, ``agent check``'s rulebook of the hardware area).
"""

from __future__ import annotations

#: The areas (validations are evaluated and shown in registration order: core, hardware, network, preinstall).
AREAS = ("core", "hardware", "network", "preinstall", "install")
#: The modules that define hooks, in the order their validations are evaluated and shown (``registry.Rulebook``;
#: disks defines the inventory's reply handler and no validation).
AREA_MODULES = ("core", "disks", "hardware", "install", "ip_collisions", "network", "network_validations",
                "preinstall")


def load_areas() -> list[str]:
    """Imports every rule area ahead of the first request (a rulebook built later finds them imported) and says
    which there are. Not at this package's import: ``agent inventory --format table`` and ``agent check`` use
    the disk and hardware rules alone, and all areas cost them ~0.1 s of CPU, twice the Go agent's whole
    inventory."""
    import importlib

    for name in AREA_MODULES:
        importlib.import_module(f"rules.{name}")
    return list(AREAS)

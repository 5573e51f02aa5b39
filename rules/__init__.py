"""The reference service's rules: pure functions over the API's documents, no I/O and no service dependency.

Host and cluster validations with the real service's ids, thresholds and messages, the state machines, which
steps each host state issues and with which arguments, what each step reply does to a host, and the install
progress rules. A rule is a function of a host's view and its cluster's model (``documents.HostView``,
``cluster_model.ClusterModel``): no module state, no store, no clock of its own; what must be remembered
between calls (derived facts, majority groups, the admission queue) is the model's, which the service owns.
Every area registers its hooks when imported (``registry``; :func:`load_areas` imports them all); none needs
the ``service`` extra's dependencies, so the agent uses the same rules (``disks.service_disk_reasons``).
"""

from __future__ import annotations

#: The areas (validations are evaluated and shown in registration order: core, hardware, network, preinstall).
AREAS = ("core", "hardware", "network", "preinstall", "install")
#: The modules that register hooks, in the order their validations are evaluated and shown.
AREA_MODULES = ("core", "hardware", "install", "ip_collisions", "network", "network_validations", "preinstall")


def load_areas() -> list[str]:
    """Import every rule area (each registers its hooks on import); the first read of a registry table does it.

    Not at this package's import: ``agent inventory --format table`` and ``agent check`` use the disk and
    hardware rules alone, and all areas cost them ~0.1 s of CPU, twice the Go agent's whole inventory."""
    import importlib

    from rules import registry

    if not registry.published():
        for name in AREA_MODULES:
            importlib.import_module(f"rules.{name}")
        registry.publish(tuple(f"rules.{name}" for name in AREA_MODULES))
    return list(AREAS)

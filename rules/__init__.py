"""The reference service's rules: pure functions over the API's documents, no I/O and no service dependency.

Host and cluster validations with the real service's ids, thresholds and messages, the state machines, which
steps each host state issues and with which arguments, what each step reply does to a host, and the install
progress rules. A rule is a function of a host's view and its cluster's model (``documents.HostView``,
``cluster_model.ClusterModel``): no module state, no store, no clock of its own; what must be remembered
between calls (derived facts, majority groups, the admission queue) is the model's, which the service owns.
Importing this package registers every area's hooks (``registry``); it needs none of the ``service`` extra's
dependencies, so the agent uses the same rules (``disks.service_disk_reasons``).
"""

from __future__ import annotations

from rules import (  # noqa: F401  (each area registers its hooks on import)
    core,
    hardware,
    install,
    ip_collisions,
    network,
    network_validations,
    preinstall,
)

#: The areas (validations are evaluated and shown in registration order: core, hardware, network, preinstall).
AREAS = ("core", "hardware", "network", "preinstall", "install")


def load_areas() -> list[str]:
    """The rule areas; importing this package has registered them all."""
    return list(AREAS)

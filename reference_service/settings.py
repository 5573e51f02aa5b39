"""What a reference service is told at start (the command line and the environment set it, ``cli``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass
class Settings:
    next_step_seconds: int = 60
    #: The agent image the service expects; None accepts any (no upgrade-agent step, compatible-agent passes).
    agent_image: str | None = None
    #: "none" (no auth, for local use) or "token" (per-infra-env agent token, admin token for users).
    auth: str = "none"
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: Test mode: record every request and allow fault injection through /api/reference/faults.
    test_mode: bool = False
    #: Dry-run installs: a host that reports Rebooting is installed (no controller will report Done).
    dry_run_install: bool = False
    #: Keep inventory interfaces of virtual types (veth, bridge...), as the real ENABLE_VIRTUAL_INTERFACES.
    enable_virtual_interfaces: bool = False
    #: Step types never issued, as the real service's DISABLED_STEPS (comma-separated in the environment).
    disabled_steps: frozenset[str] = frozenset()
    #: Bytes the inventory JSON may take, and the smallest disk it lists (the real AGENT_INVENTORY_MAX_SIZE and
    #: AGENT_INVENTORY_DISK_MIN_SIZE); 0: no limit, and the inventory step gets no flag for it.
    inventory_max_size: int = 0
    inventory_disk_min_size: int = 0
    #: Seconds a request body may go without a byte before it is refused (408): a silent sender would
    #: otherwise hold one of the few slots big bodies are read in (``http.routing``) for as long as it liked.
    body_stall_seconds: float = 30.0
    #: Hosts one infra-env (one agent token) may register; past it a new host is refused with 429. 10,000 hosts
    #: registered by one token in 24 s made every page megabytes and slowed every other agent's polls.
    max_hosts_per_infra_env: int = 5000
    #: The discovery ISO made by container/iso/build-iso.sh, served per infra-env (reference_service.iso).
    discovery_iso: str | None = None
    #: Registries (HOST:PORT) the discovery hosts' podman may pull from over plain HTTP (a lab's registry).
    insecure_registries: tuple[str, ...] = ()

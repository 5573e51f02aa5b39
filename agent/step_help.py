"""What ``agent step NAME --help`` says, and how ``agent step`` reads the arguments a person types.

The arguments are those the service sends in an instruction's ``args``, each one a shell word, as the Go
agent's binaries take them (``free_addresses '["10.0.0.0/24"]'``). One JSON list holding all of them is
accepted too (what ``--wire`` and the history show); each form is tried against the step's own argument
check, the form as given first, so ``'["10.0.0.0/24"]'`` is the one argument free-network-addresses takes.
``agent step inventory`` with no argument describes this host (its host id is derived as the daemon does).
"""

from __future__ import annotations

import json
import sys

from agent.config import AgentConfig

#: One working example per step, in the Go binary's form (each element is one shell-quoted argument).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "api-vip-connectivity-check": ('{"url": "http://api.cluster.example.com:22624/config/worker"}',),
    "connectivity-check": ('[{"host_id": "6fde0f02-fb37-b620-d208-51bf93374c7d", "nics": [{"name": "eth0", '
                           '"mac": "52:54:00:12:34:56", "ip_addresses": ["10.0.0.12"]}]}]',),
    "container-image-availability": ('{"images": ["quay.io/coreos/etcd:v3.5.13"], "timeout": 60}',),
    "dhcp-lease-allocate": ('{"interface": "eth0", "api_vip_mac": "00:1a:4a:10:00:01", '
                            '"ingress_vip_mac": "00:1a:4a:10:00:02"}',),
    "domain-resolution": ('{"domains": [{"domain_name": "api.cluster.example.com"}]}',),
    "download-boot-artifacts": ('{"host_fs_mount_dir": "/host", "kernel_url": "http://svc/vmlinuz", '
                                '"initrd_url": "http://svc/initrd.img", "rootfs_url": "http://svc/rootfs.img"}',),
    "free-network-addresses": ('["10.0.0.0/24"]',),
    "installation-disk-speed-check": ('{"path": "/dev/sdb"}', "480.00"),
    "inventory": ("6fde0f02-fb37-b620-d208-51bf93374c7d",),
    "logs-gather": ('{"cluster_id": "0ba7a0fa-2a23-4a4b-9e3c-2c5a2b5f7a10", "infra_env_id": '
                    '"0ba7a0fa-2a23-4a4b-9e3c-2c5a2b5f7a11", "host_id": "6fde0f02-fb37-b620-d208-51bf93374c7d", '
                    '"bootstrap": false, "installer_gather": false}',),
    "ntp-synchronizer": ('{"ntp_source": "time.example.com,10.0.0.1"}',),
    "reboot-for-reclaim": ('{"host_fs_mount_dir": "/host"}',),
    "stop-installation": (),
    "tang-connectivity-check": ('{"tang_servers": "[{\\"url\\": \\"http://tang.example.com:7500\\", '
                                '\\"thumbprint\\": \\"PLjNyRdGw03zlRoGjQYMahSZGu9\\"}]"}',),
    "upgrade-agent": ('{"agent_image": "quay.io/edge-infrastructure/assisted-installer-agent:latest"}',),
    "verify-vips": ('[{"vip": "10.0.0.100", "vip_type": "api"}, {"vip": "10.0.0.101", "vip_type": "ingress"}]',),
}


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def step_help(name: str) -> str:
    """The step's purpose, what it takes, and a command line that works, for a person at a terminal."""
    from agent.step_cli import step_list, unknown_step
    from steps import registry

    rows = {n: (purpose, origin) for n, purpose, origin in step_list()}
    if name not in rows:
        raise unknown_step(name, sorted(rows))
    purpose, origin = rows[name]
    cls = registry.load(name)
    doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip()
    lines = [f"agent step {name}: {purpose} ({origin})", ""]
    example = EXAMPLES.get(name)
    if example is not None:
        lines += ["It takes the arguments the service sends in the instruction's args, each one shell word "
                  "(the Go agent's form); one JSON list of them all works too.", "",
                  "Example:", "  agent step " + " ".join([name, *map(_quote, example)]), ""]
    else:
        lines += ["It takes the arguments the service sends in the instruction's args, each one shell word, or "
                  "one JSON list of them all; see below for what they are.", ""]
    if doc:
        lines += ["About it:", *("  " + line if line else "" for line in doc.splitlines()), ""]
    lines.append("Flags: --wire prints the reply exactly as the service would get it; 'agent step --help' "
                 "lists the others.")
    return "\n".join(lines)


def step_arguments(name: str, given: list[str], config: AgentConfig) -> list[str]:
    """The step's arguments from what a person typed: as given when the step takes them so, else the one JSON
    list spread out; inventory with none gets this host's id."""
    if name == "inventory" and not [a for a in given if not a.startswith("--")]:
        from agent.identity import derive_host_id
        from common.host import Host

        return [config.host_id or derive_host_id(Host.at(config.host_root))[0], *given]
    spread: list[str] | None = None
    if len(given) == 1:
        try:
            decoded = json.loads(given[0])
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            spread = [a if isinstance(a, str) else json.dumps(a) for a in decoded]
    if spread is None or _accepts(name, given):
        return given
    return spread if _accepts(name, spread) else given


def _accepts(name: str, args: list[str]) -> bool:
    """Whether the step's own argument check takes ``args`` (a plugin that fails to load: say yes, the run
    will tell)."""
    from common.errors import InvalidStepArguments
    from steps import registry

    try:
        step = registry.load(name)()
    except Exception:
        return True
    try:
        step.parse_args(list(args))
    except InvalidStepArguments:
        return False
    except Exception:
        return True
    return True

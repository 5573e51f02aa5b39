"""Rules every host needs whatever the area: inventory and upgrade steps, connection validations, and
default storage of replies whose area module registers no handler of its own."""

from __future__ import annotations

import json
from typing import Any

from rules.documents import HostView, Outcome
from rules.registry import default_reply_handler, step_arguments, validation

#: Where the real service keeps each reply (host fields holding JSON strings).
REPLY_FIELDS = {
    "inventory": "inventory",
    "connectivity-check": "connectivity",
    "free-network-addresses": "free_addresses",
    "ntp-synchronizer": "ntp_sources",
    "domain-resolution": "domain_name_resolutions",
    "api-vip-connectivity-check": "api_vip_connectivity",
    "tang-connectivity-check": "tang_connectivity",
}
#: Host clock this far behind or ahead of the service fails time-synced-between-host-and-service.
MAX_BEHIND, MAX_AHEAD = 20 * 60, 60 * 60


@step_arguments("inventory")
def inventory_args(view: HostView) -> list[str]:
    args = [view.host["id"]]
    settings = view.settings
    if settings and settings.inventory_max_size > 0:
        args.append(f"--output-max-size={settings.inventory_max_size}")
    if settings and settings.inventory_disk_min_size > 0:
        args.append(f"--disk-min-size={settings.inventory_disk_min_size}")
    return args


@step_arguments("upgrade-agent")
def upgrade_agent_args(view: HostView) -> list[str] | None:
    image = view.settings.agent_image if view.settings else None
    return [json.dumps({"agent_image": image})] if image else None


@default_reply_handler(*REPLY_FIELDS)
def store_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    """Default: keep a successful output in the host field the real service uses for it."""
    name = REPLY_FIELDS.get(str(reply.get("step_type")))
    if name and output is not None and int(reply.get("exit_code") or 0) == 0:
        view.host[name] = reply.get("output", "")


@validation("connected", "network", unbound=True)
def connected(view: HostView) -> Outcome:
    last = float(view.host.get("_checked_in", view.now))
    if view.now - last < 180:
        return "success", "Host is connected"
    return "failure", "Host is disconnected"


@validation("media-connected", "hardware")
def media_connected(view: HostView) -> Outcome:
    if view.host.get("media_status") == "disconnected":
        return "failure", ("Failed to read the installation media. It was probably disconnected: make sure "
                           "the discovery image is still attached")
    return "success", "Media device is connected"


@validation("compatible-agent", "network")
def compatible_agent(view: HostView) -> Outcome:
    expected = view.settings.agent_image if view.settings else None
    if not expected or view.host.get("discovery_agent_version") == expected:
        return "success", "Host agent compatibility checked"
    return "failure", "This host's agent is not compatible with the service; it is being upgraded"


@validation("time-synced-between-host-and-service", "network")
def time_synced(view: HostView) -> Outcome:
    ts = view.host.get("timestamp")
    if not ts:
        return "pending", "Missing host time, the host has not reported it yet"
    skew = int(ts) - view.now
    if skew < -MAX_BEHIND or skew > MAX_AHEAD:
        return "failure", (f"Host clock is not synchronized, there is more than "
                           f"{MAX_BEHIND // 60} minutes gap between clocks, please configure an NTP server")
    return "success", "Host clock is synchronized with service"

"""The Go agent's dry-run variables, read in one place so many agents can share one machine as distinct hosts.

A swarm (the real project's assisted-swarm, or ours) runs dozens of agents side by side; without these they would
all derive the same host id from the same motherboard and report the same hostname, MAC and address, and the
service would see one host. The names and meanings are the Go agent's (go-agent-behaviour.md 1.1,
``src/config/dry_run_config.go``, ``src/inventory/dry_inventory.go``):

* ``DRY_ENABLE``: dry-run on (same as ``--dry-run``); the others below matter only when it is.
* ``DRY_HOST_ID``: registered instead of the id derived from the hardware (and instead of ``--host-id``).
* ``DRY_FORCED_HOSTNAME``: the inventory's ``hostname``.
* ``DRY_FORCED_MAC_ADDRESS`` / ``DRY_FORCED_HOST_IPV4``: written into the first physical interface that has
  an IPv4 address (its MAC, and its first IPv4 address); every other interface is dropped from the inventory,
  as the Go agent does, so two simulated hosts never share a MAC or an address through a second NIC. With an
  IPv4 forced, that interface's IPv6 addresses are dropped too (they are the machine's, shared by every
  simulated host; the Go agent has no forced IPv6 variable to replace them with).
* ``DRY_FAKE_REBOOT_MARKER_PATH``: a reboot creates this file instead of rebooting; once it exists the agent
  stops, as the Go agent stops re-registering when it finds the marker after its step runner exits.

Differences from the Go agent, on purpose: an empty forced value leaves the collected one in place (Go writes the
empty string, which the service rejects), and a forced IPv4 without a prefix length keeps the replaced
address's prefix (inventory addresses are CIDRs). Everything here is pure: the values come in resolved
(agent.settings declares the variables and the flags).
"""

from __future__ import annotations  # the records are common.records': their annotations are never evaluated

from collections.abc import Mapping

from common.records import NamedTuple
from common.uuids import is_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from typing import Any

ENV_ENABLE = "DRY_ENABLE"
ENV_HOST_ID = "DRY_HOST_ID"
ENV_FORCED_MAC = "DRY_FORCED_MAC_ADDRESS"
ENV_FORCED_HOSTNAME = "DRY_FORCED_HOSTNAME"
ENV_FORCED_IPV4 = "DRY_FORCED_HOST_IPV4"
ENV_REBOOT_MARKER = "DRY_FAKE_REBOOT_MARKER_PATH"

_TRUE = ("1", "t", "true", "yes", "y", "on")  # Go's strconv.ParseBool, which envconfig uses


class DrySettings(NamedTuple):
    """A NamedTuple, not a dataclass: every agent start reads these (docs/agent-cost.md)."""

    enabled: bool = False
    host_id: str = ""
    mac_address: str = ""
    hostname: str = ""
    host_ipv4: str = ""
    reboot_marker: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, flag: bool = False) -> DrySettings:
        """``flag`` is ``--dry-run``: either it or ``DRY_ENABLE`` turns dry-run on."""
        return cls.of(flag or env.get(ENV_ENABLE, "").strip().lower() in _TRUE, host_id=env.get(ENV_HOST_ID, ""),
                      mac_address=env.get(ENV_FORCED_MAC, ""), hostname=env.get(ENV_FORCED_HOSTNAME, ""),
                      host_ipv4=env.get(ENV_FORCED_IPV4, ""), reboot_marker=env.get(ENV_REBOOT_MARKER, ""))

    @classmethod
    def of(cls, enabled: bool, *, host_id: str = "", mac_address: str = "", hostname: str = "", host_ipv4: str = "",
           reboot_marker: str = "") -> DrySettings:
        """The settings from values as given (by flags, agent.conf or the environment), normalised."""
        return cls(enabled=enabled, host_id=host_id.strip(), mac_address=mac_address.strip().lower(),
                   hostname=hostname.strip(), host_ipv4=host_ipv4.strip(), reboot_marker=reboot_marker.strip())

    @property
    def forced_host_id(self) -> str:
        """The id to register with, or "" to derive one as usual."""
        return self.host_id if self.enabled else ""

    @property
    def reboot_marker_path(self) -> str:
        """Where a dry-run reboot is recorded, or "" when no marker was asked for."""
        return self.reboot_marker if self.enabled else ""

    def forces_inventory(self) -> bool:
        return self.enabled and bool(self.hostname or self.mac_address or self.host_ipv4)


def _forced_cidr(forced: str, replaced: str) -> str:
    """``forced`` as a CIDR: its own prefix length if it has one, else the replaced address's."""
    if "/" in forced:
        return forced
    _, _, prefix = replaced.partition("/")
    return f"{forced}/{prefix}" if prefix else forced


def _target_interface(interfaces: list[Any]) -> int | None:
    """The first physical interface with an IPv4 address (the Go agent's choice), else the first with one."""
    with_v4 = [i for i, nic in enumerate(interfaces) if isinstance(nic, dict) and nic.get("ipv4_addresses")]
    physical = [i for i in with_v4 if interfaces[i].get("type", "physical") == "physical"]
    candidates = physical or with_v4
    return candidates[0] if candidates else None


def apply_to_inventory(inventory: dict[str, Any], settings: DrySettings) -> dict[str, Any]:
    """The inventory as a dry-run host reports it; the input is not modified."""
    if not settings.forces_inventory():
        return inventory
    import copy  # here, and ipaddress below: every agent start reads these settings, few use them

    out = copy.deepcopy(inventory)
    if settings.hostname:
        out["hostname"] = settings.hostname
    interfaces = out.get("interfaces")
    if not isinstance(interfaces, list) or not (settings.mac_address or settings.host_ipv4):
        return out
    index = _target_interface(interfaces)
    if index is None:
        return out
    nic = interfaces[index]
    if settings.mac_address:
        nic["mac_address"] = settings.mac_address
    if settings.host_ipv4:
        nic["ipv4_addresses"] = [_forced_cidr(settings.host_ipv4, str(nic["ipv4_addresses"][0])),
                                 *nic["ipv4_addresses"][1:]]
        nic["ipv6_addresses"] = []  # the machine's own: every simulated host would hold (and collide on) them
    out["interfaces"] = [nic]
    return out


def validate(settings: DrySettings) -> list[str]:
    """Problems with forced values a person should fix before the agent starts (empty list: fine)."""
    problems = []
    if settings.host_id and not is_uuid(settings.host_id):
        problems.append(f"{ENV_HOST_ID} {settings.host_id!r} is not a UUID")
    if settings.host_ipv4:
        try:
            import ipaddress

            ipaddress.IPv4Interface(settings.host_ipv4)
        except ValueError:
            problems.append(f"{ENV_FORCED_IPV4} {settings.host_ipv4!r} is not an IPv4 address (a.b.c.d[/len])")
    if settings.mac_address:
        parts = settings.mac_address.split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
            problems.append(f"{ENV_FORCED_MAC} {settings.mac_address!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return problems

"""``dhcp-lease-allocate``: lease the cluster's API and ingress VIPs from the machine network's DHCP server.

The service asks for it when a cluster lets DHCP choose its VIPs. As the Go agent does, each VIP gets a
macvlan (private mode) named ``api`` / ``ingress`` on the given NIC, carrying the MAC the service generated
for that VIP, so the DHCP server sees two more clients; the lease the service kept from the last run is asked
for again, so a VIP keeps its address. The exchange itself is in-process (steps.lib.dhcp), not dhclient. The
macvlans are removed at the end, also after a failure.

Errors read as the Go agent's: the request is checked as go-openapi checks a DhcpAllocationRequest
(``validation failure list:`` ...), and the links are looked up and made through netlink (a lookup by name as
Go's netlink.LinkByName; the writes through pyroute2, as Go's vishvananda/netlink) so a bad interface gets the
kernel's answer (a 16-character name: ``numerical result out of range``; a missing one: ``Link not found``), not
``ip``'s wording.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from common.errors import InvalidStepArguments, StepError
from steps.base import Step, StepContext, StepResult, expect_args, json_arg
from steps.connectivity_check import require_live
from steps.lib.go_errors import errno_text, go_quote, json_kind, validation_failures

STEP = "dhcp-lease-allocate"
#: Per VIP, as the Go agent's ``timeout 28 dhclient``.
PER_VIP_SECONDS = 28.0
#: What Go's vishvananda/netlink says when the kernel answers ENODEV to a link lookup.
LINK_NOT_FOUND = "Link not found"
_HEX = set("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class DhcpRequest:
    interface: str
    macs: dict[str, str]  # "api" / "ingress" -> MAC
    leases: dict[str, str | None]


def go_mac(text: str) -> bool:
    """Whether Go's net.ParseMAC (strfmt's "mac" format) takes ``text``: 6, 8 or 20 octets written
    ``xx:xx:..``, ``xx-xx-..`` or ``xxxx.xxxx...``."""
    if len(text) < 14:
        return False
    if text[2] in ":-":
        sep, width = text[2], 2
    elif text[4] == ".":
        sep, width = ".", 4
    else:
        return False
    groups = text.split(sep)
    octets = len(groups) * width // 2
    return octets in (6, 8, 20) and all(len(g) == width and set(g) <= _HEX for g in groups)


def _colons(mac: str) -> str:
    """A MAC Go accepts, written as the kernel and DHCP take it: lower-case octets joined by colons."""
    digits = "".join(c for c in mac.lower() if c in _HEX or c.isdigit())
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def _string_field(obj: dict[str, Any], name: str, go_type: str) -> str | None:
    """A string field as Go's json.Unmarshal reads it into the model (its error text when the type is wrong)."""
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidStepArguments(f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                                   f"DhcpAllocationRequest.{name} of type {go_type}")
    return value


def parse_request(raw: str) -> DhcpRequest:
    """The request, checked as the Go agent's ValidateCommon does: unmarshal, then the model's Validate."""
    obj = json_arg(STEP, raw, dict)
    fields = {name: _string_field(obj, name, go_type) for name, go_type in (
        ("api_vip_mac", "strfmt.MAC"), ("ingress_vip_mac", "strfmt.MAC"), ("interface", "string"),
        ("api_vip_lease", "string"), ("ingress_vip_lease", "string"))}
    problems = []
    for name in ("api_vip_mac", "ingress_vip_mac"):
        value = fields[name]
        if value is None:
            problems.append(f"{name} in body is required")
        elif not go_mac(value):
            problems.append(f"{name} in body must be of type mac: {go_quote(value)}")
    if fields["interface"] is None:
        problems.append("interface in body is required")
    if problems:
        raise InvalidStepArguments(validation_failures(problems))
    macs = {vip: _colons(str(fields[f"{vip}_vip_mac"])) for vip in ("api", "ingress")}
    if macs["api"] == macs["ingress"]:  # ours: the Go agent would lease one address for both VIPs
        raise InvalidStepArguments(f"{STEP}: api_vip_mac and ingress_vip_mac must differ")
    return DhcpRequest(str(fields["interface"]), macs,
                       {vip: fields[f"{vip}_vip_lease"] or None for vip in ("api", "ingress")})


def kernel_error(exc: Exception) -> str:
    """A netlink failure in Go's words: the errno's text, or vishvananda's "Link not found" for ENODEV."""
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if code == errno.ENODEV:
        return LINK_NOT_FOUND
    return errno_text(code) if isinstance(code, int) and code > 0 else str(exc)


def _lookup(name: str) -> dict[str, Any] | None:
    """The link called ``name`` as the kernel answers a lookup by name; None when there is none."""
    from inventory.netlink import link_by_name

    try:
        return link_by_name(name)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise


@contextlib.contextmanager
def macvlan(ctx: StepContext, name: str, parent: str, mac: str) -> Iterator[None]:
    """The VIP's own link, there only for the exchange: made, brought up and deleted through netlink.

    The lookups are single netlink requests (inventory.netlink, as Go's LinkByName); only the writes need
    pyroute2, whose import costs more than the rest of the step when the parent does not exist."""
    try:
        found = _lookup(parent)
        if found is None:
            raise StepError(LINK_NOT_FOUND, code="no-such-interface")
        existing = _lookup(name)
    except OSError as exc:
        raise StepError(kernel_error(exc), code="no-such-interface") from None
    from pyroute2 import NetlinkError

    with ctx.host.netlink() as ipr:
        if existing is not None:
            if (existing.get("address") or "") != mac:
                raise StepError(f"{STEP}: the host already has an interface named {name}", code="macvlan-failed")
            ipr.link("del", index=existing["index"])  # ours, left over by an interrupted run
        try:
            ipr.link("add", ifname=name, kind="macvlan", link=found["index"], address=mac, macvlan_mode="private")
            index = ipr.link_lookup(ifname=name)[0]
        except NetlinkError as exc:
            raise StepError(kernel_error(exc), code="macvlan-failed") from None
        try:
            try:
                ipr.link("set", index=index, state="up")
            except NetlinkError as exc:
                raise StepError(kernel_error(exc), code="macvlan-failed") from None
            yield
        finally:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)


class DhcpLeaseAllocateStep(Step[DhcpRequest]):
    step_type = STEP
    default_timeout = 2 * PER_VIP_SECONDS + 10

    def parse_args(self, args: list[str]) -> DhcpRequest:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: DhcpRequest, ctx: StepContext) -> StepResult:
        from steps.lib import dhcp
        from steps.lib.net_probes import raw_sockets

        require_live(ctx.host, STEP)
        output: dict[str, Any] = {}
        for vip in ("api", "ingress"):
            mac = params.macs[vip]
            with macvlan(ctx, vip, params.interface, mac), raw_sockets(STEP):
                deadline = time.monotonic() + min(PER_VIP_SECONDS, max(1.0, ctx.remaining() - 1.0))
                lease = dhcp.acquire(vip, mac, hostname=f"{mac.replace(':', '-')}-{vip}",
                                     previous=dhcp.previous_address(params.leases[vip]), deadline=deadline)
            output[f"{vip}_vip_address"] = lease.address
            output[f"{vip}_vip_lease"] = lease.to_text(vip)
        return StepResult(output)

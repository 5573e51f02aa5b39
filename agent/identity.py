"""The host id, derived exactly as the Go agent derives it so a host keeps its id across agents and reboots.

Rules, first match wins: md5 of the motherboard serial, formatted as a UUID; else the system UUID
(lower-cased); else md5 of the smallest MAC of any interface (the permanent MAC for bond members); else a fixed
fallback. Serials and UUIDs that vendors ship as placeholders are rejected, or every board of a model would
share one id (the most reported cause of host-id collisions).
"""

from __future__ import annotations

from common.host import Host
from common.uuids import is_uuid

FALLBACK_ID = "deaddead-dead-dead-dead-deaddeaddead"

PLACEHOLDER_SERIALS = frozenset(
    {
        "",
        "unknown",
        "none",
        "(none)",
        "-",
        "unspecified base board serial number",
        "unspecified system serial number",
        "default string",
        "not specified",
        "pca_number.acc",  # HPE ProLiant Gen11
        "to be filled by o.e.m.",  # ASUS and others; rejected by the Go agent since OCPBUGS-106189
    }
)
PLACEHOLDER_UUIDS = frozenset(
    {
        "unknown",
        "00000000-0000-0000-0000-000000000000",
        "03000200-0400-0500-0006-000700080009",  # Kaloom
    }
)


def md5_uuid(text: str) -> str:
    """md5 of ``text`` laid out as a UUID, without version bits: the Go agent's format."""
    h = _md5_hex(text.encode())
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _md5_hex(data: bytes) -> str:
    """CPython's own MD5 (the ``_md5`` extension hashlib falls back on): ``import hashlib`` loads OpenSSL's
    libcrypto first, about 5 ms of CPU on the way to the first register (issue 29), for a digest that is an id,
    not a security measure (so FIPS mode has no say in it either). hashlib where a Python lacks ``_md5``."""
    try:
        from _md5 import md5  # type: ignore[import-not-found]
    except ImportError:
        from hashlib import md5
    return str(md5(data, usedforsecurity=False).hexdigest())


def board_serial(host: Host) -> str | None:
    raw = host.read_text("/sys/class/dmi/id/board_serial")
    if raw is None:
        return None
    serial = raw.strip()
    return None if serial.lower() in PLACEHOLDER_SERIALS else serial


def system_uuid(host: Host) -> str | None:
    raw = host.read_attr("/sys/class/dmi/id/product_uuid")
    if raw is None or raw.lower() in PLACEHOLDER_UUIDS:
        return None
    return raw.lower() if is_uuid(raw) else None


def permanent_macs(host: Host) -> list[str]:
    """The MAC of every interface, permanent MAC for bond members; all-zero and empty MACs are left out."""
    macs = []
    for name in host.listdir("/sys/class/net"):
        base = f"/sys/class/net/{name}"
        mac = host.read_attr(f"{base}/bonding_slave/perm_hwaddr") or host.read_attr(f"{base}/address")
        if not mac:
            continue
        mac = mac.lower()
        if all(part == "00" for part in mac.split(":")):
            continue
        macs.append(mac)
    return sorted(macs)


def derive_host_id(host: Host) -> tuple[str, str]:
    """(host id, which rule produced it), the rule for logs a person reads when ids collide."""
    serial = board_serial(host)
    if serial is not None:
        return md5_uuid(serial), "motherboard serial"
    sys_uuid = system_uuid(host)
    if sys_uuid is not None:
        return sys_uuid, "system UUID"
    macs = permanent_macs(host)
    if macs:
        return md5_uuid(macs[0]), f"smallest MAC address ({macs[0]})"
    return FALLBACK_ID, "fallback (no serial, UUID or MAC found)"

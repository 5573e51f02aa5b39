"""Boot: firmware mode, Secure Boot state, kernel command line, PXE interface and boot device type."""

from __future__ import annotations

from typing import Any

from agent.host import Host
from agent.inventory.options import Options

SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def secure_boot_state(raw: bytes | None) -> str:
    """The efivar is 4 attribute bytes then one value byte: 0 disabled, 1 enabled."""
    if raw is None:
        return "NotSupported"
    if len(raw) != 5:
        return "Unknown"
    return {0: "Disabled", 1: "Enabled"}.get(raw[4], "Unknown")


def pxe_interface(cmdline: str) -> str:
    for arg in cmdline.split():
        if arg.startswith("BOOTIF="):
            return arg[len("BOOTIF=") :]
    return ""


def device_type(host: Host) -> str:
    """``ephemeral`` when the live root is a loop device (the ISO booted into RAM), else ``persistent``."""
    if not host.which("findmnt"):
        return ""
    result = host.run(["findmnt", "--noheadings", "--output", "SOURCE", "/sysroot"], timeout=5)
    if not result.ok or not result.stdout.strip():
        return ""
    return "ephemeral" if result.stdout.strip().startswith("/dev/loop") else "persistent"


def collect(host: Host, options: Options) -> dict[str, Any]:
    cmdline = (host.read_text("/proc/cmdline") or "").strip()
    return {
        "boot": {
            "current_boot_mode": "uefi" if host.is_dir("/sys/firmware/efi") else "bios",
            "secure_boot_state": secure_boot_state(host.read_bytes(SECURE_BOOT_VAR)),
            "command_line": cmdline,
            "pxe_interface": pxe_interface(cmdline),
            "device_type": device_type(host),
        }
    }

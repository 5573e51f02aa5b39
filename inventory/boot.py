"""Boot: firmware mode, Secure Boot state, kernel command line, PXE interface and boot device type."""

from __future__ import annotations

from typing import Any

from common.host import Host
from inventory.options import Options

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


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    if "\\" not in field:
        return field
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def mount_source(mountinfo: str, target: str) -> str | None:
    """The source of what is mounted at ``target`` (the topmost mount, as ``findmnt TARGET``), or None."""
    source = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or _unescape(fields[4]) != target or "-" not in fields[6:]:
            continue
        after = fields[fields.index("-", 6) + 1 :]
        if len(after) >= 2:
            source = _unescape(after[1])
    return source


def device_type(host: Host) -> str:
    """``ephemeral`` when the live root is a loop device (the ISO booted into RAM), else ``persistent``.

    What ``findmnt --output SOURCE /sysroot`` says, read from /proc/self/mountinfo as findmnt reads it: the
    command cost ~8 ms of every ``agent inventory``. A recorded tree without that file replays the command.
    """
    mountinfo = host.read_text("/proc/self/mountinfo")
    if mountinfo is not None:
        source = mount_source(mountinfo, "/sysroot")
    elif host.which("findmnt"):
        result = host.run(["findmnt", "--noheadings", "--output", "SOURCE", "/sysroot"], timeout=5)
        source = result.stdout.strip() if result.ok else None
    else:
        return ""
    if not source:
        return ""
    return "ephemeral" if source.startswith("/dev/loop") else "persistent"


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

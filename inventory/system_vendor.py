"""System vendor: manufacturer, product and serial from DMI, and whether the machine is virtual.

Missing DMI values are reported as ``unknown``, as the Go agent (ghw) does: the service compares product names
against platform lists and would otherwise see an empty string. Whether the machine is virtual is what
``systemd-detect-virt --vm`` would say, read from the files it reads (inventory.virt): no command runs.
"""

from __future__ import annotations

from typing import Any

from common.host import Host
from inventory.options import Options
from inventory.virt import detect_vm

DMI = "/sys/class/dmi/id"
UNKNOWN = "unknown"


def _dmi(host: Host, name: str) -> str:
    return host.read_attr(f"{DMI}/{name}") or UNKNOWN


def is_virtual(host: Host) -> bool:
    return detect_vm(host)


def _s390x(host: Host) -> tuple[str, str] | None:
    """IBM Z has no DMI: the manufacturer is in /proc/cpuinfo, the machine kind in /proc/sysinfo."""
    cpuinfo = host.read_text("/proc/cpuinfo") or ""
    vendor = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("vendor_id") and ":" in line
        ),
        "",
    )
    if not vendor.startswith("IBM/S390"):
        return None
    sysinfo = host.read_text("/proc/sysinfo") or ""
    product = "LPAR"
    if "VM00 Control Program: z/VM" in sysinfo:
        product = "z/VM"
    elif "VM00 Control Program: KVM/Linux" in sysinfo:
        product = "KVM/Linux"
    return "IBM/S390", product


def collect(host: Host, options: Options) -> dict[str, Any]:
    manufacturer = _dmi(host, "sys_vendor")
    product = _dmi(host, "product_name")
    if host.read_attr(f"{DMI}/product_family") in ("oVirt", "RHV"):
        product = "oVirt"
    if host.read_attr(f"{DMI}/chassis_asset_tag") == "OracleCloud.com":
        manufacturer = "OracleCloud.com"
    if manufacturer == UNKNOWN and (z := _s390x(host)) is not None:
        manufacturer, product = z
    return {
        "system_vendor": {
            "manufacturer": manufacturer,
            "product_name": product,
            "serial_number": _dmi(host, "product_serial"),
            "virtual": is_virtual(host),
        }
    }

"""GPUs: PCI display controllers and processing accelerators, named from the pci.ids database.

The classes are the Go agent's defaults: VGA (0300), 3D (0302), other display (0380) and processing
accelerators (1200). pci.ids is only read when there is a GPU: parsing it costs more than everything else.
"""

from __future__ import annotations

import os
from typing import Any

from common.host import Host
from inventory.options import Options

GPU_CLASSES = ("0300", "0302", "0380", "1200")
PCI_IDS = ("/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids")


def pci_names(text: str, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(vendor id, device id) -> (vendor name, device name) for the wanted pairs, from pci.ids text."""
    vendors = {v for v, _ in wanted}
    out: dict[tuple[str, str], tuple[str, str]] = {}
    vendor_id, vendor_name = "", ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("C "):
            break  # the device classes section follows the vendors
        if not line.startswith("\t"):
            vendor_id, _, vendor_name = line.partition("  ")
            vendor_id = vendor_id.lower()
            if vendor_id in vendors:
                for v, d in wanted:
                    if v == vendor_id:
                        out.setdefault((v, d), (vendor_name.strip(), ""))
            continue
        if vendor_id in vendors and not line.startswith("\t\t"):
            device_id, _, device_name = line.strip().partition("  ")
            key = (vendor_id, device_id.lower())
            if key in wanted:
                out[key] = (vendor_name.strip(), device_name.strip())
    return out


def collect(host: Host, options: Options) -> dict[str, Any]:
    found = []
    for dev in host.listdir("/sys/bus/pci/devices"):
        base = f"/sys/bus/pci/devices/{dev}"
        pci_class = (host.read_attr(f"{base}/class") or "").lower().removeprefix("0x")
        if pci_class[:4] not in GPU_CLASSES:
            continue
        vendor = (host.read_attr(f"{base}/vendor") or "").lower().removeprefix("0x")
        device = (host.read_attr(f"{base}/device") or "").lower().removeprefix("0x")
        found.append((os.path.basename(dev), vendor, device))
    names: dict[tuple[str, str], tuple[str, str]] = {}
    if found:
        text = next((t for p in PCI_IDS if (t := host.read_text(p)) is not None), "")
        names = pci_names(text, {(v, d) for _, v, d in found})
    gpus = []
    for address, vendor, device in found:
        vendor_name, device_name = names.get((vendor, device), ("", ""))
        gpus.append(
            {
                "address": address,
                "vendor_id": vendor,
                "device_id": device,
                "vendor": vendor_name,
                "name": device_name,
            }
        )
    return {"gpus": gpus}

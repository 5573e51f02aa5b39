"""CPU: architecture, count, model, frequency and flags, from /proc/cpuinfo and cpufreq in sysfs.

The Go agent asks ``lscpu -J``; lscpu itself reads these same files, so reading them directly gives the same
numbers without a subprocess, and works on recorded fixture trees.
"""

from __future__ import annotations

import os
from typing import Any

from common.host import Host
from inventory.options import Options


def _blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip().lower(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def architecture(host: Host, blocks: list[dict[str, str]]) -> str:
    """The kernel's machine name (``x86_64``, ``aarch64``, ``ppc64le``, ``s390x``), as ``uname -m`` says."""
    arch = host.read_attr("/proc/sys/kernel/arch")
    if arch:
        return arch
    first = blocks[0] if blocks else {}
    if "vendor_id" in first and "ibm/s390" in first["vendor_id"].lower():
        return "s390x"
    if "cpu architecture" in first:
        return "aarch64"
    if first.get("cpu", "").upper().startswith("POWER"):
        return "ppc64le"
    if "flags" in first:
        return "x86_64" if " lm " in f" {first['flags']} " else "i686"
    return os.uname().machine if host.is_live else ""


def collect(host: Host, options: Options) -> dict[str, Any]:
    blocks = _blocks(host.read_text("/proc/cpuinfo") or "")
    processors = [b for b in blocks if "processor" in b]
    first = processors[0] if processors else (blocks[0] if blocks else {})
    model = first.get("model name") or first.get("cpu") or first.get("machine") or ""
    flags = (first.get("flags") or first.get("features") or "").split()
    mhz = [float(b["cpu mhz"]) for b in processors if _is_number(b.get("cpu mhz"))]
    for entry in host.listdir("/sys/devices/system/cpu"):  # cpu[0-9]*, without pathlib's glob
        if not (entry.startswith("cpu") and entry[3:4].isdigit()):
            continue
        khz = host.read_attr(f"/sys/devices/system/cpu/{entry}/cpufreq/cpuinfo_max_freq")
        if khz and khz.isdigit():
            mhz.append(int(khz) / 1000.0)
    cpu: dict[str, Any] = {
        "architecture": architecture(host, blocks),
        "count": len(processors),
        "flags": flags,
        "model_name": model,
    }
    if mhz:
        cpu["frequency"] = max(mhz)
    return {"cpu": cpu}


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True

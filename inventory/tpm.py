"""TPM version: what the service checks before it allows TPM-based disk encryption."""

from __future__ import annotations

from typing import Any

from common.host import Host
from inventory.options import Options


def collect(host: Host, options: Options) -> dict[str, Any]:
    major = host.read_attr("/sys/class/tpm/tpm0/tpm_version_major")
    return {"tpm_version": {"1": "1.2", "2": "2.0"}.get(major or "", "none")}

"""Ignition and kernel arguments: the Ignition got before the first byte is written, then both placed on the
written image's ``boot`` partition and read back, as ``coreos-installer install --ignition-file ...
--append-karg ...`` does (the filesystem work itself is :mod:`steps.lib.bootfs`)."""

from __future__ import annotations

import hashlib
from typing import Any

from common.errors import InvalidStepArguments
from steps.base import StepContext
from steps.lib import bootfs
from steps.write_image.errors import WriteFailed
from steps.write_image.params import STEP, WriteImageParams, check_ignition


def ignition_for(params: WriteImageParams, ctx: StepContext) -> bytes | None:
    """The Ignition to place: the one given, the host's own from the service, or none."""
    if params.ignition is not None:
        return params.ignition.encode()
    if not params.ignition_from_service:
        return None
    ie = params.infra_env_id or ctx.config.infra_env_id
    host = params.host_id or ctx.config.host_id
    if not ie or not host:
        raise InvalidStepArguments(f"{STEP}: ignition_from_service needs infra_env_id and host_id")
    resp = ctx.client.request(
        "GET", f"/v2/infra-env/{ie}/hosts/{host}/downloads/ignition",
        headers={"Accept": "application/octet-stream"},
    )
    data = resp.content
    check_ignition(data, WriteFailed)
    return data


def needs_placement(params: WriteImageParams, ignition: bytes | None) -> bool:
    return ignition is not None or bool(params.append_kargs) or bool(params.delete_kargs)


def place(
    ctx: StepContext, device: str, table: bootfs.GptTable, ignition: bytes | None, params: WriteImageParams
) -> dict[str, Any]:
    """Place and read back; returns the reply's ``boot_partition``, ``ignition_sha256`` and ``kargs``."""
    boot = table.find(bootfs.BOOT_PARTITION_NAME)
    if boot is None:
        raise WriteFailed(f"the image has no partition named {bootfs.BOOT_PARTITION_NAME!r}")
    part = bootfs.reread_partitions(ctx.host, device, boot.number)
    with bootfs.mounted(ctx.host, part, read_only=False) as root:
        if ignition is not None:
            bootfs.place_ignition(root, ignition)
        if params.append_kargs or params.delete_kargs:
            bootfs.edit_kargs(root, params.append_kargs, params.delete_kargs)
    with bootfs.mounted(ctx.host, part, read_only=True) as root:
        if ignition is not None and (root / bootfs.IGNITION_PATH).read_bytes() != ignition:
            raise WriteFailed("the Ignition read back from the boot partition is not the one written")
        kargs = bootfs.read_kargs(root)
    for entry, args in kargs.items():
        if any(a not in args for a in params.append_kargs) or any(a in args for a in params.delete_kargs):
            raise WriteFailed(f"the kernel arguments read back from {entry} are not what was written")
    output: dict[str, Any] = {"boot_partition": part}
    if ignition is not None:
        output["ignition_sha256"] = hashlib.sha256(ignition).hexdigest()
    output["kargs"] = kargs
    return output

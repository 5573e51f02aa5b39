"""The ``write_image_request`` argument, checked whole before anything touches the disk."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from common.errors import AgentError, InvalidStepArguments
from steps.base import get_field, json_arg, uuid_field

STEP = "write-image"
COMPRESSIONS = ("auto", "none", "gzip", "xz", "zstd")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class WriteImageParams:
    image_url: str
    target_device: str
    compression: str = "auto"
    image_sha256: str | None = None
    raw_sha256: str | None = None
    image_size: int | None = None
    disk_id: str | None = None
    disk_size_bytes: int | None = None
    ignition: str | None = None
    ignition_from_service: bool = False
    append_kargs: list[str] = field(default_factory=list)
    delete_kargs: list[str] = field(default_factory=list)
    format_disks: list[str] = field(default_factory=list)
    infra_env_id: str | None = None
    host_id: str | None = None
    role: str = ""
    timeout: float = DEFAULT_TIMEOUT


def _str_list(obj: dict[str, Any], name: str) -> list[str]:
    value = get_field(STEP, obj, name, list, required=False, default=[])
    for item in value:
        if not isinstance(item, str) or not item or any(c.isspace() for c in item):
            raise InvalidStepArguments(f"{STEP}: {name} must list kernel arguments without spaces: {item!r}")
    return list(value)


def parse_params(args: list[str]) -> WriteImageParams:
    if len(args) != 1:
        raise InvalidStepArguments(f"{STEP} expects 1 argument (write_image_request), got {len(args)}")
    obj = json_arg(STEP, args[0], dict)
    url = get_field(STEP, obj, "image_url", str)
    parts = urlsplit(url)
    web = parts.scheme in ("http", "https") and bool(parts.netloc)
    if not (url.startswith("/") or web or parts.scheme == "file"):
        raise InvalidStepArguments(
            f"{STEP}: image_url must be http(s)://, file:// or a path on the service (/...), got {url!r}"
        )
    target = get_field(STEP, obj, "target_device", str)
    if not target.startswith("/dev/") or "\0" in target:
        raise InvalidStepArguments(f"{STEP}: target_device must be a path under /dev/, got {target!r}")
    compression = get_field(STEP, obj, "compression", str, required=False, default="auto")
    if compression not in COMPRESSIONS:
        raise InvalidStepArguments(
            f"{STEP}: compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}"
        )
    sums = {}
    for name in ("image_sha256", "raw_sha256"):
        value = get_field(STEP, obj, name, str, required=False)
        if value is not None and not SHA256_RE.match(value):
            raise InvalidStepArguments(f"{STEP}: {name} must be 64 hexadecimal digits, got {value!r}")
        sums[name] = value.lower() if value else None
    if not any(sums.values()):
        raise InvalidStepArguments(f"{STEP}: image_sha256 or raw_sha256 is required (no unverified writes)")
    sizes = {}
    for name in ("image_size", "disk_size_bytes"):
        value = get_field(STEP, obj, name, int, required=False)
        if value is not None and value <= 0:
            raise InvalidStepArguments(f"{STEP}: {name} must be a positive number of bytes, got {value}")
        sizes[name] = value
    disk_id = get_field(STEP, obj, "disk_id", str, required=False)
    if disk_id is not None and not disk_id.startswith("/dev/"):
        raise InvalidStepArguments(f"{STEP}: disk_id must be a path under /dev/, got {disk_id!r}")
    format_disks = get_field(STEP, obj, "format_disks", list, required=False, default=[])
    for item in format_disks:
        if not isinstance(item, str) or not item.startswith("/dev/") or "\0" in item:
            raise InvalidStepArguments(f"{STEP}: format_disks must list paths under /dev/, got {item!r}")
    ignition = get_field(STEP, obj, "ignition", str, required=False)
    from_service = get_field(STEP, obj, "ignition_from_service", bool, required=False, default=False)
    if ignition is not None and from_service:
        raise InvalidStepArguments(f"{STEP}: give either ignition or ignition_from_service, not both")
    if ignition is not None:
        check_ignition(ignition.encode(), InvalidStepArguments)
    ids = {name: uuid_field(STEP, obj, name, required=False) for name in ("infra_env_id", "host_id")}
    timeout = get_field(STEP, obj, "timeout_seconds", (int, float), required=False, default=DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise InvalidStepArguments(f"{STEP}: timeout_seconds must be positive, got {timeout}")
    return WriteImageParams(
        image_url=url, target_device=target, compression=compression, image_sha256=sums["image_sha256"],
        raw_sha256=sums["raw_sha256"], image_size=sizes["image_size"], disk_id=disk_id,
        disk_size_bytes=sizes["disk_size_bytes"], ignition=ignition, ignition_from_service=from_service,
        append_kargs=_str_list(obj, "append_kargs"), delete_kargs=_str_list(obj, "delete_kargs"),
        format_disks=list(format_disks), infra_env_id=ids["infra_env_id"], host_id=ids["host_id"],
        role=get_field(STEP, obj, "role", str, required=False, default=""), timeout=float(timeout),
    )


def check_ignition(data: bytes, error: type[AgentError]) -> None:
    """An Ignition config is a JSON object with ``ignition.version``; anything else would brick first boot."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise error(f"{STEP}: the Ignition config is not valid JSON: {exc}") from exc
    version = doc.get("ignition", {}).get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str):
        raise error(f"{STEP}: the Ignition config has no ignition.version")

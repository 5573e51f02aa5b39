"""``download-boot-artifacts``: put the discovery kernel and initrd in an installed host's /boot, with a boot
entry for them, so that ``reboot-for-reclaim`` boots the host back into discovery (the real service's step).

As the Go agent: nothing is done when the files and the entry are already there; /boot is remounted
read-write when it is a read-only mount (as on CoreOS); each file is downloaded with the agent's TLS
settings, retried, and put in place only once complete (a temporary name, then a rename), so a failed
download leaves no truncated kernel for the firmware to try. The boot entry is the Go agent's, word for word.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from common import progress
from common.errors import InvalidStepArguments, StepError
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg

STEP = "download-boot-artifacts"
ENTRY = "boot/loader/entries/00-assisted-discovery.conf"
FILES = ("vmlinuz", "initrd")
ATTEMPTS = 3
DONE = "Successfully downloaded boot artifacts"


@dataclass(frozen=True)
class ArtifactsRequest:
    host_fs_mount_dir: str
    kernel_url: str
    initrd_url: str
    rootfs_url: str


def parse_request(raw: str) -> ArtifactsRequest:
    obj = json_arg(STEP, raw, dict)
    root = get_field(STEP, obj, "host_fs_mount_dir", str)
    if not root.startswith("/") or "\0" in root or ".." in root.split("/"):
        raise InvalidStepArguments(f"{STEP}: host_fs_mount_dir must be an absolute path, got {root!r}")
    urls = {}
    for name in ("kernel_url", "initrd_url", "rootfs_url"):
        url = get_field(STEP, obj, name, str)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url) or "'" in url:
            raise InvalidStepArguments(f"{STEP}: {name} must be an http(s) URL, got {url!r}")
        urls[name] = url
    return ArtifactsRequest(os.path.normpath(root), urls["kernel_url"], urls["initrd_url"], urls["rootfs_url"])


def boot_entry(rootfs_url: str, arch: str) -> str:
    common = "random.trust_cpu=on ignition.firstboot ignition.platform.id=metal"
    if arch == "s390x":
        options = f"{common} coreos.live.rootfs_url={rootfs_url} ai.ip_cfg_override=1"
    else:
        options = f"{common} 'coreos.live.rootfs_url={rootfs_url}'"
    return (f"title Assisted Installer Discovery\nversion 999\noptions {options}\n"
            "linux /boot/discovery/vmlinuz\ninitrd /boot/discovery/initrd\n")


class DownloadBootArtifactsStep(Step[ArtifactsRequest]):
    step_type = STEP
    default_timeout = 30 * 60.0

    def parse_args(self, args: list[str]) -> ArtifactsRequest:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: ArtifactsRequest, ctx: StepContext) -> StepResult:
        root = params.host_fs_mount_dir
        if not ctx.host.is_dir(os.path.join(root, "boot")):
            raise StepError(f"{STEP}: {root} has no /boot folder", code="no-boot-folder")
        wanted = [os.path.join(root, "boot/discovery", f) for f in FILES] + [os.path.join(root, ENTRY)]
        if all(ctx.host.exists(p) for p in wanted):
            return StepResult(DONE)
        self._writable_boot(ctx, os.path.join(root, "boot"))
        folder = ctx.host.path(os.path.join(root, "boot/discovery"))
        folder.mkdir(parents=True, exist_ok=True)
        for name, url in zip(FILES, (params.kernel_url, params.initrd_url), strict=True):
            self._download(ctx, url, str(folder / name))
        entry = ctx.host.path(os.path.join(root, ENTRY))
        entry.parent.mkdir(parents=True, exist_ok=True)
        _replace(str(entry), [boot_entry(params.rootfs_url, platform.machine()).encode()])
        return StepResult(DONE)

    @staticmethod
    def _writable_boot(ctx: StepContext, boot: str) -> None:
        """CoreOS mounts /boot read-only; remount it read-write when it is such a mount."""
        path = str(ctx.host.path(boot))
        if os.path.ismount(path) and os.statvfs(path).f_flag & os.ST_RDONLY:
            result = ctx.host.run(["mount", "-o", "remount,rw", path], timeout=60)
            if not result.ok:
                raise StepError(f"{STEP}: cannot remount {boot} read-write: {result.stderr.strip()}",
                                code="boot-read-only")

    @staticmethod
    def _download(ctx: StepContext, url: str, dest: str) -> None:
        import requests

        from common.service_client import build_session

        session = build_session(ctx.config, token=False)  # image service URLs carry their own authorization
        error = ""
        for attempt in range(ATTEMPTS):
            try:
                with session.get(url, stream=True, timeout=(10, 60)) as resp:
                    resp.raise_for_status()
                    length = resp.headers.get("Content-Length", "")
                    total = int(length) if length.isdigit() else None
                    with progress.meter(f"downloading {os.path.basename(dest)}", total,
                                        show=ctx.config.progress) as shown:
                        _replace(dest, progress.counted(resp.iter_content(1 << 20), shown))
                return
            except (requests.RequestException, OSError) as exc:
                error = str(exc)
            if attempt + 1 < ATTEMPTS and ctx.remaining() > 10:
                time.sleep(min(5.0 * (attempt + 1), ctx.remaining() / 4))
        raise StepError(f"{STEP}: failed to download {url} after {ATTEMPTS} attempts: {error}",
                        code="download-failed")


def _replace(path: str, chunks: Iterable[bytes]) -> None:
    """Write then rename: the file is whole or absent, never half-written."""
    tmp = f"{path}.part"
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

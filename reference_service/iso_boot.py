"""Booting without the full ISO: the minimal ISO, the boot artifacts and the iPXE script, as the real image service
and assisted-service hand them out.

The real services: ``/boot-artifacts/kernel`` and ``/boot-artifacts/rootfs`` (``?arch=&version=``, public, one
file per version), ``/images/{infra_env_id}/pxe-initrd`` (the initrd with the infra-env's Ignition appended as a
cpio), the ``ipxe-script`` file naming those three, and the minimal ISO: kernel and initrd only, the root file
system fetched from ``rootfs_url`` at boot. Here ``container/iso/build-iso.sh`` makes the minimal ISO beside the
full one, with two reserved areas the service fills per download as it fills the full ISO's (no ISO is made per
infra-env): a second initrd (``/live/assisted.img``) holding the Ignition as a cpio, and the end of the kernel's
command line, which gets ``fetch=ROOTFS_URL`` (Debian live-boot's name for the real ISO's
``coreos.live.rootfs_url``). On the booted host the initramfs keeps the Ignition in ``/run/assisted``
(``container/iso/initrd-ignition``) where ``ignition-apply`` reads it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import ServiceRefusal
from reference_service.iso import MARKER

#: live-boot fetches a root only from a URL ending in ``.squashfs`` (its file type test): the rootfs URL gets a
#: harmless last query parameter saying so.
FETCH_SUFFIX = "&file=filesystem.squashfs"
#: The kernel arguments the live system boots with (container/iso/isolinux.cfg's, but the initrd).
LIVE_KARGS = "boot=live console=tty0 console=ttyS0,115200n8 net.ifnames=1 mitigations=off init_on_alloc=0 nowatchdog"


def _cpio_entry(name: str, data: bytes, mode: int) -> bytes:
    """One member of a ``newc`` cpio archive (what the kernel unpacks from an initrd)."""
    fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(f"{v:08x}".encode() for v in fields) + name.encode() + b"\0"
    head += bytes(-len(head) % 4)
    return head + data + bytes(-len(data) % 4)


def ignition_cpio(ignition: dict[str, Any]) -> bytes:
    """A cpio holding ``assisted/ignition.img`` (the area's format: marker line, Ignition JSON), for an initrd."""
    body = MARKER + b" initrd\n" + json.dumps(ignition, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    return (_cpio_entry("assisted", b"", 0o40700) + _cpio_entry("assisted/ignition.img", body, 0o100600)
            + _cpio_entry("TRAILER!!!", b"", 0))


def network_cpio(files: list[dict[str, Any]]) -> bytes:
    """Ignition files (``data:`` URLs) as a cpio: the minimal ISO's extra initrd of static network configs."""
    out, dirs = b"", set()
    for f in files:
        path = str(f["path"]).lstrip("/")
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                out += _cpio_entry(d, b"", 0o40755)
        source = str(f["contents"]["source"])
        data = base64.b64decode(source.split(";base64,", 1)[1]) if ";base64," in source else \
            source.split(",", 1)[1].encode()
        out += _cpio_entry(path, data, 0o100000 | int(f.get("mode", 0o644)))
    return out + _cpio_entry("TRAILER!!!", b"", 0)


def fetch_url(rootfs_url: str) -> str:
    return rootfs_url + FETCH_SUFFIX


def ipxe_script(*, kernel_url: str, initrd_url: str, rootfs_url: str) -> str:
    """The ``ipxe-script`` file: the real service's lines (``initrd --name initrd``, the kernel with
    ``initrd=initrd coreos.live.rootfs_url=``), with the arguments the Debian live system needs after them."""
    for url in (kernel_url, initrd_url, rootfs_url):
        if any(c.isspace() for c in url):
            raise ServiceRefusal(400, f"{url!r}: a URL with spaces cannot go on a kernel command line")
    return (f"#!ipxe\ninitrd --name initrd {initrd_url}\n"
            f"kernel {kernel_url} initrd=initrd coreos.live.rootfs_url={rootfs_url} {LIVE_KARGS} "
            f"fetch={fetch_url(rootfs_url)}\nboot\n")


@dataclass(frozen=True)
class BootFiles:
    """What ``build-iso.sh`` wrote beside the full ISO (its ``.json`` names them): the minimal ISO with its two
    reserved areas, and the kernel, initrd and root file system."""

    minimal_iso: Path
    area_offset: int
    area_size: int
    kargs_offset: int
    kargs_size: int
    kernel: Path
    initrd: Path
    rootfs: Path

    @classmethod
    def load(cls, iso_path: Path) -> BootFiles:
        meta = json.loads(Path(f"{iso_path}.json").read_text())
        if "minimal_iso" not in meta:
            raise ValueError("it was built without the minimal ISO and boot artifacts: run container/iso/build-iso.sh")
        here = iso_path.parent
        files = cls(here / meta["minimal_iso"], int(meta["minimal_area_offset"]), int(meta["area_size"]),
                    int(meta["minimal_kargs_offset"]), int(meta["minimal_kargs_size"]), here / meta["kernel"],
                    here / meta["initrd"], here / meta["rootfs"])
        with open(files.minimal_iso, "rb") as fh:
            fh.seek(files.area_offset)
            if fh.read(len(MARKER)) != MARKER:
                raise ValueError(f"{files.minimal_iso}: no reserved area at offset {files.area_offset}")
        return files

    def area(self, ignition: dict[str, Any]) -> bytes:
        """The minimal ISO's second initrd: the Ignition's cpio, NULs after it (the kernel skips them)."""
        body = ignition_cpio(ignition)
        if len(body) > self.area_size:
            raise ServiceRefusal(400, f"the infra-env's Ignition takes {len(body)} bytes; the ISO's area holds "
                                 f"{self.area_size}")
        return body + bytes(self.area_size - len(body))

    def kargs(self, rootfs_url: str) -> bytes:
        """The end of the minimal ISO's kernel command line: ``fetch=`` the rootfs, spaces after it."""
        text = f"fetch={fetch_url(rootfs_url)}".encode()
        if len(text) > self.kargs_size or any(c in text for c in b" \t\r\n"):
            raise ServiceRefusal(400, f"the rootfs URL does not fit the minimal ISO's kernel command line "
                                 f"({len(text)} of {self.kargs_size} bytes, no spaces)")
        return text + b" " * (self.kargs_size - len(text))

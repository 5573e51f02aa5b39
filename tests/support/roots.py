"""Root filesystems to run the copied host binary in: an empty one, and a Debian bullseye one (glibc 2.31).

Why: the stock ``agent.service`` copies ``/usr/bin/agent`` out of the image and runs it on the discovery host,
whose C library is not ours (RHCOS 9 has glibc 2.34). A root with nothing but the binary proves it brings
everything it needs; bullseye's older glibc proves it does not use the build machine's. The bullseye root is
made with debootstrap once and kept in ``.image-cache/`` (a tarball, unpacked per test).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.image import ROOT

CACHE = ROOT / ".image-cache"
MIRROR = "http://deb.debian.org/debian"
BULLSEYE = CACHE / "bullseye-minbase.tar"
DEBOOTSTRAP_TIMEOUT = 1200


def _unmount_under(path: Path) -> None:
    with open("/proc/mounts") as fh:
        mounts = [line.split()[1] for line in fh]
    for mount in sorted((m for m in mounts if m == str(path) or m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, timeout=60)


def bullseye_tarball() -> Path:
    """Debian bullseye minbase (glibc 2.31), made once with debootstrap from Debian's mirror."""
    if BULLSEYE.exists():
        return BULLSEYE
    CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bullseye-", dir=CACHE))
    try:
        proc = subprocess.run(["debootstrap", "--variant=minbase", "bullseye", str(work), MIRROR],
                              capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        _unmount_under(work)
        subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", f"{BULLSEYE}.tmp", "."], check=True,
                       timeout=600)
        Path(f"{BULLSEYE}.tmp").rename(BULLSEYE)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return BULLSEYE


@contextlib.contextmanager
def chroot_root(binary: Path, tarball: Path | None = None) -> Iterator[Path]:
    """A root holding ``binary`` as ``/usr/bin/agent`` (over ``tarball``'s files, or alone), with ``/proc``,
    ``/sys``, ``/dev`` and a tmpfs ``/tmp`` mounted; all unmounted and removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="aroot-"))
    try:
        if tarball is not None:
            subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True, timeout=600)
        for name in ("proc", "sys", "dev", "tmp", "usr/bin"):
            (root / name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, root / "usr" / "bin" / "agent")
        (root / "usr" / "bin" / "agent").chmod(0o755)
        for argv in (["mount", "-t", "proc", "proc", str(root / "proc")],
                     ["mount", "--rbind", "/sys", str(root / "sys")],
                     ["mount", "--make-rslave", str(root / "sys")],
                     ["mount", "--rbind", "/dev", str(root / "dev")],
                     ["mount", "--make-rslave", str(root / "dev")],
                     ["mount", "-t", "tmpfs", "tmpfs", str(root / "tmp")]):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        yield root
    finally:
        _unmount_under(root)
        # never through a mount that failed to go: /dev and /sys are the machine's
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], capture_output=True, timeout=300)

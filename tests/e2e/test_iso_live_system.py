"""The discovery ISO's live system as ``container/iso/build-iso.sh`` builds it (cached in ``.image-cache/iso``; a
clean clone builds it here, as tests/e2e/test_lab.py would): what each boot of it must make its own.

The files are read from the root file system the ISO carries (its ``rootfs`` boot artifact, the same squashfs),
without booting it: tests/e2e/test_lab.py boots it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reference_service.lab_build import BUILD_TIMEOUT
from tests.support.paths import ROOT

pytestmark = [
    pytest.mark.timeout(BUILD_TIMEOUT + 600),
    pytest.mark.skipif(os.geteuid() != 0, reason="building the ISO needs root (chroot, mounts)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("debootstrap", "mksquashfs", "unsquashfs", "xorriso")),
                       reason="needs the ISO's tools (scripts/setup.sh)"),
]

PRESET_DIRS = ("etc/systemd/system-preset", "run/systemd/system-preset", "usr/lib/systemd/system-preset")


def live_root(into: Path, *paths: str) -> Path:
    """``paths`` of the built ISO's live root file system, extracted under ``into`` (links as links)."""
    built = subprocess.run(["bash", str(ROOT / "container" / "iso" / "build-iso.sh")], capture_output=True,
                           text=True, timeout=BUILD_TIMEOUT, cwd=ROOT)
    assert built.returncode == 0, built.stderr[-4000:]
    iso = Path(built.stdout.strip().splitlines()[-1])
    rootfs = iso.parent / json.loads(Path(f"{iso}.json").read_text())["rootfs"]
    subprocess.run(["unsquashfs", "-q", "-n", "-no-xattrs", "-d", str(into), str(rootfs), *paths], check=True,
                   capture_output=True, timeout=300)
    return into


def test_each_boot_makes_its_own_machine_id_and_first_boot_asks_and_enables_nothing(tmp_path: Path) -> None:
    """One /etc/machine-id built into the image made every host booted from it the same machine (journald's,
    D-Bus's, networkd's DHCP DUID). Empty, systemd makes one at each boot, as on other live images (a boot of this
    ISO in QEMU logged "Initializing machine ID from random generator"). Should systemd take that for a first
    boot, its wizard would stop the boot to ask for a locale on the console and its presets would enable every
    unit the image leaves disabled: neither may."""
    root = live_root(tmp_path / "root", "etc/machine-id", "var/lib/dbus/machine-id",
                     "etc/systemd/system/systemd-firstboot.service", *PRESET_DIRS)
    assert (root / "etc" / "machine-id").read_bytes() == b""
    dbus = root / "var" / "lib" / "dbus" / "machine-id"
    assert not dbus.exists() or (dbus.is_symlink() and os.readlink(dbus) == "/etc/machine-id")
    assert os.readlink(root / "etc" / "systemd" / "system" / "systemd-firstboot.service") == "/dev/null"
    # systemd reads the preset files of all three directories in the order of their names; the first line
    # that matches a unit decides, and first boot only enables
    presets = sorted((p for d in PRESET_DIRS if (root / d).is_dir() for p in (root / d).iterdir()),
                     key=lambda p: p.name)
    lines = [line.strip() for p in presets for line in p.read_text().splitlines()]
    assert next((line for line in lines if line and not line.startswith("#")), "") == "disable *"

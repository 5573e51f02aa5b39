"""``agent record-host DIR``: record this host as a fixture tree the inventory can later be run on.

The inventory is run once through a host seam that notes every path it touches and every command it runs;
exactly those files are then copied into DIR as a tree (symlinks kept as symlinks, made relative so they
resolve inside DIR), the commands' outputs go to ``DIR/.recorded/commands.json`` and a netlink dump to
``DIR/.recorded/netlink.json``: the formats :meth:`common.host.Host.at` replays. What is recorded is therefore
what the collectors need, no more (no guessing which of the thousands of sysfs files matter).

Block devices are not copied: a disk's node becomes a one-sector file carrying only its MBR boot signature, so
``bootable`` replays without a byte of the disk's content. Git keeps no empty directories, so a directory the
inventory only tests for (``/sys/firmware/efi``) gets a ``.keep`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.argparser import Parser
from common.errors import ConfigError
from common.host import RECORDED_DIR, CommandResult, Host, SubprocessRunner
from inventory import netlink
from inventory.collect import inventory

MAX_FILE = 1 << 20
#: Paths whose content is copied as a plain file, not through their symlinks (/etc/mtab -> /proc/self/mounts).
FLATTEN = ("/proc/", "/etc/mtab")
MOUNT_TABLES = ("/etc/mtab", "/proc/1/mounts")


class RecordingRunner(SubprocessRunner):
    """Runs commands for real and keeps what they returned."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        result = super().run(argv, timeout=timeout, input=input, env=env)
        record = {
            "argv": list(result.argv),
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
        }
        with self._lock:
            self.records.append(record)
        return result


class RecordingHost(Host):
    """A live host that remembers which host paths were looked at, and how."""

    def __init__(self, root: Path, commands: RecordingRunner) -> None:
        super().__init__(root, commands)
        self.touched: dict[str, set[str]] = {}
        self._record_lock = threading.Lock()

    def _note(self, how: str, p: str) -> None:
        with self._record_lock:
            self.touched.setdefault(how, set()).add(os.path.normpath("/" + p.lstrip("/")))

    def read_bytes(self, p: str, default: bytes | None = None) -> bytes | None:
        self._note("read", p)
        return super().read_bytes(p, default)

    def exists(self, p: str) -> bool:
        self._note("exists", p)
        return super().exists(p)

    def is_dir(self, p: str) -> bool:
        self._note("is_dir", p)
        return super().is_dir(p)

    def listdir(self, p: str) -> list[str]:
        self._note("listdir", p)
        return super().listdir(p)

    def readlink(self, p: str) -> str | None:
        target = super().readlink(p)
        if target is not None:
            self._note("exists", p)
        return target

    def glob(self, pattern: str) -> list[str]:
        found = super().glob(pattern)
        for p in found:
            self._note("exists", p)
        return found


class TreeWriter:
    """Copies host paths into a fixture tree, recreating the symlinks met on the way."""

    def __init__(self, host: Host, dest: Path) -> None:
        self.host = host
        self.dest = dest

    def _target(self, host_path: str) -> Path:
        return self.dest / host_path.lstrip("/")

    def _link(self, host_path: str, target: str) -> None:
        if target.startswith("/"):
            target = os.path.relpath(target, os.path.dirname(host_path))
        out = self._target(host_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.is_symlink() and not out.exists():
            out.symlink_to(target)

    def resolve(self, host_path: str) -> str:
        """Recreate every symlink on the way to ``host_path``; return the path with them resolved."""
        parts = [p for p in host_path.split("/") if p]
        current = ""
        for i, part in enumerate(parts):
            candidate = f"{current}/{part}"
            target = self.host.readlink(candidate)
            if target is None:
                current = candidate
                continue
            self._link(candidate, target)
            base = "/" if target.startswith("/") else current or "/"
            rest = "/".join(parts[i + 1 :])
            return self.resolve(os.path.normpath(os.path.join(base, target, rest)))
        return current or "/"

    def copy(self, host_path: str, how: str) -> None:
        flatten = host_path.startswith(FLATTEN)
        real = host_path if flatten else self.resolve(host_path)
        src = self.host.path(real)
        out = self._target(host_path if flatten else real)
        try:
            st = os.stat(src)
        except OSError:
            return
        if stat.S_ISDIR(st.st_mode):
            out.mkdir(parents=True, exist_ok=True)
            if how == "listdir":
                for entry in os.listdir(src):
                    target = self.host.readlink(f"{real}/{entry}")
                    if target is not None:
                        self._link(f"{real}/{entry}", target)
            elif how == "is_dir" and not any(out.iterdir()):
                (out / ".keep").touch()
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISBLK(st.st_mode):
            out.write_bytes(bytes(510) + b"\x55\xaa" if _has_boot_signature(src) else b"")
        elif stat.S_ISREG(st.st_mode) or flatten:
            data = self.host.read_bytes(real) if how in ("read", "exists") else None
            if data is not None and host_path in MOUNT_TABLES:
                # only block-device mounts matter to the inventory; the rest is noise about this machine
                data = b"".join(line for line in data.splitlines(keepends=True) if line.startswith(b"/dev/"))
            if data is not None:
                out.write_bytes(data[:MAX_FILE])
            elif not out.exists():
                out.touch()
        elif not out.exists():
            out.touch()  # a character device (an IPMI node): only its existence matters


def _has_boot_signature(path: Path) -> bool:
    try:
        with open(path, "rb", buffering=0) as fh:
            return fh.read(512)[510:512] == b"\x55\xaa"
    except OSError:
        return False


def record(dest: Path, root: str = "/") -> dict[str, Any]:
    """Record the host at ``root`` into ``dest``; returns the inventory that was taken while recording."""
    runner = RecordingRunner()
    host = RecordingHost(Path(root), runner)
    inv, _problems = inventory(host)
    dest.mkdir(parents=True, exist_ok=True)
    writer = TreeWriter(Host(Path(root)), dest)
    order = {"listdir": 0, "is_dir": 1, "exists": 2, "read": 3}
    for how in sorted(host.touched, key=order.__getitem__):
        for p in sorted(host.touched[how]):
            writer.copy(p, how)
    rec = dest / RECORDED_DIR
    rec.mkdir(exist_ok=True)
    (rec / "commands.json").write_text(json.dumps(runner.records, indent=1) + "\n")
    (rec / "netlink.json").write_text(json.dumps(netlink.dump(), indent=1) + "\n")
    return inv


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="agent record-host", description=__doc__.split("\n\n")[0])
    d = p.add_argument("dir", help="where to write the fixture tree (a new or empty directory)")
    r = p.add_argument("--root", default="/", help="root of the host's filesystem (default /)")
    for action in (d, r):
        action.complete = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}  # type: ignore[attr-defined]
    return p


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    dest = Path(ns.dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} is not an empty directory", hint="record into a new directory")
    record(dest, ns.root)
    print(f"recorded this host into {dest}")
    return 0

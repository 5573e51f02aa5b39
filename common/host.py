"""The one seam through which the agent touches the machine it runs on.

Every read of ``/sys``, ``/proc``, ``/dev``, ``/etc`` and ``/run``, every external command and every netlink
query goes through a :class:`Host`. A ``Host`` has a configurable root: ``/`` on a real host, ``/host`` in the
container image (which bind-mounts the host there), or a fixture tree recorded from another machine. A
fixture tree may carry a ``.recorded/`` folder with ``commands.json`` (argv -> exit code, stdout, stderr) and
``netlink.json`` (links, addresses, routes); when it does, commands and netlink are replayed from it instead
of touching this machine, so collectors are tested on what other machines looked like.
"""

from __future__ import annotations  # CommandResult is common.records': its annotations are never evaluated

import json
import os
from collections.abc import Mapping, Sequence

from common.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records): the daemon's start loads no typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Protocol

# subprocess, shutil
# and pathlib are imported where they are used, not here: ``agent inventory`` runs no command on most hosts and
# reads through str paths, and those imports (signal, selectors, bz2, lzma, urllib.parse...) were a tenth of its
# start-up (bench/inventory_speed.py).

RECORDED_DIR = ".recorded"


class CommandResult(NamedTuple):
    """What a command did. ``exit_code`` is -1 when it could not be started, as in the Go agent."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


if TYPE_CHECKING:  # what a Host runs commands with, for the type checker (the runners do not derive from it)

    class CommandRunner(Protocol):
        def run(
            self,
            argv: Sequence[str],
            *,
            timeout: float,
            input: str | None = None,
            env: Mapping[str, str] | None = None,
        ) -> CommandResult: ...

        def which(self, name: str) -> str | None: ...


def kill_tree(pid: int, *, grace: float = 2.0) -> int:
    """SIGTERM a process and all its descendants, SIGKILL what survives ``grace``; returns how many were hit.

    Descendants are found before anything is signalled: once the parent dies they are re-parented and can no
    longer be found through it. That also catches children that left the process group with setsid().
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return len(procs)


class SubprocessRunner:
    """Runs real commands: never through a shell, always with a timeout, the whole tree killed at the end."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        import subprocess

        args = tuple(str(a) for a in argv)
        full_env = None if env is None else {**os.environ, **env}
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                env=full_env,
            )
        except OSError as exc:
            return CommandResult(args, -1, "", f"{exc.strerror or exc}: {args[0]}")
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid, grace=1.0)
            out, err = proc.communicate()
            return CommandResult(args, -1, out, (err + f"\n{args[0]} timed out after {timeout:g}s").strip(), True)
        return CommandResult(args, proc.returncode, out, err)

    def which(self, name: str) -> str | None:
        """``shutil.which`` for a plain name, without importing shutil (bz2, lzma, zlib) at every agent start."""
        if "/" in name:
            return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
        for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
            candidate = os.path.join(folder or os.curdir, name)
            if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
                return candidate
        return None


class RecordedRunner:
    """Replays commands recorded on another machine; a command that was not recorded is 'not installed'."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._records = {tuple(r["argv"]): r for r in records}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RecordedRunner:
        try:
            with open(path, encoding="utf-8") as fh:
                return cls(json.load(fh))
        except FileNotFoundError:
            return cls([])

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        args = tuple(str(a) for a in argv)
        rec = self._records.get(args)
        if rec is None:
            return CommandResult(args, -1, "", f"executable file not found: {args[0]}")
        return CommandResult(args, int(rec.get("exit_code", 0)), rec.get("stdout", ""), rec.get("stderr", ""))

    def which(self, name: str) -> str | None:
        for argv in self._records:
            if argv and os.path.basename(argv[0]) == name:
                return str(argv[0])
        return None


class Host:
    """A view of one machine rooted at ``root``. Paths given to its methods are absolute host paths.

    A plain class, not a dataclass: importing dataclasses (and the inspect module it pulls in) is a cost at
    every start of ``agent inventory``, whose whole run is measured against the Go agent's (bench/inventory_speed.py).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        commands: CommandRunner | None = None,
        recorded_netlink: dict[str, Any] | None = None,
    ) -> None:
        # Kept as a str: a Path is made on demand (``root``, ``path()``), pathlib is not imported to read sysfs.
        self._root = "/" if root is None else os.path.normpath(os.fspath(root))
        self.commands: CommandRunner = SubprocessRunner() if commands is None else commands
        #: Recorded netlink data of a fixture tree, or None to ask the kernel.
        self.recorded_netlink = recorded_netlink

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self._root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"

    @classmethod
    def at(cls, root: str | os.PathLike[str] = "/") -> Host:
        """A host rooted at ``root``, replaying commands and netlink if the tree carries recordings."""
        rec = os.path.join(root, RECORDED_DIR)
        if os.path.isdir(rec):
            netlink = None
            try:
                with open(os.path.join(rec, "netlink.json"), encoding="utf-8") as fh:
                    netlink = json.load(fh)
            except FileNotFoundError:
                pass
            return cls(root, RecordedRunner.load(os.path.join(rec, "commands.json")), netlink)
        return cls(root)

    @property
    def is_live(self) -> bool:
        """True when this is the machine we run on, not a recording."""
        return isinstance(self.commands, SubprocessRunner) and self.recorded_netlink is None

    # -- files -------------------------------------------------------------------------------------------
    def path(self, p: str | os.PathLike[str]) -> Path:
        """Where the host path ``p`` is on this machine's filesystem."""
        from pathlib import Path

        return Path(self.fs_path(p))

    def fs_path(self, p: str | os.PathLike[str]) -> str:
        """:meth:`path` as a string: the readers below run thousands of times per inventory, Path objects cost."""
        rel = os.fspath(p).lstrip("/")
        return os.path.join(self._root, rel) if rel else self._root

    def read_bytes(self, p: str, default: bytes | None = None) -> bytes | None:
        try:
            with open(self.fs_path(p), "rb", buffering=0) as fh:
                return fh.read()
        except OSError:
            return default

    def read_text(self, p: str, default: str | None = None) -> str | None:
        data = self.read_bytes(p)
        return default if data is None else data.decode("utf-8", errors="replace")

    def read_attr(self, p: str) -> str | None:
        """A sysfs-style attribute: stripped text, or None when missing, unreadable or empty."""
        text = self.read_text(p)
        if text is None:
            return None
        text = text.strip().strip("\x00").strip()
        return text or None

    def exists(self, p: str) -> bool:
        return os.path.lexists(self.fs_path(p))

    def is_dir(self, p: str) -> bool:
        return os.path.isdir(self.fs_path(p))

    def listdir(self, p: str) -> list[str]:
        """Sorted entries of a directory; empty when it does not exist."""
        try:
            return sorted(os.listdir(self.fs_path(p)))
        except OSError:
            return []

    def readlink(self, p: str) -> str | None:
        try:
            return os.readlink(self.fs_path(p))
        except OSError:
            return None

    def realpath(self, p: str) -> str:
        """Resolve symlinks the way the host would, never escaping ``root``; returns a host path."""
        parts = [x for x in p.split("/") if x]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/" + "/".join([*resolved, part])
            target = self.readlink(candidate)
            if target is None:
                resolved.append(part)
                continue
            hops += 1
            if hops > 40:
                raise OSError(f"too many levels of symbolic links: {p}")
            if target.startswith("/"):
                resolved = []
            parts = [x for x in target.split("/") if x] + parts
        return "/" + "/".join(resolved)

    def glob(self, pattern: str) -> list[str]:
        """Host paths matching a glob pattern, sorted."""
        root = self._root.rstrip("/")
        return sorted("/" + str(m)[len(root) :].lstrip("/") for m in self.root.glob(pattern.lstrip("/")))

    # -- commands ----------------------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run a command without a shell. Arguments are passed as they are: never interpolated."""
        return self.commands.run(argv, timeout=timeout, input=input, env=env)

    def which(self, name: str) -> str | None:
        return self.commands.which(name)

    # -- netlink writes ----------------------------------------------------------------------------------
    def netlink(self) -> Any:
        """A pyroute2 ``IPRoute`` on this process's network namespace, for the few netlink writes steps make
        (dhcp-lease-allocate's macvlans): the kernel's own errors come back (errno and its text), where an
        ``ip`` subprocess would add its own wording. Only a live host has links to change; use as a context
        manager so its socket is closed."""
        from common.errors import HostAccessError

        if not self.is_live:
            raise HostAccessError("a recorded host tree has no links to change", code="not-live")
        from pyroute2 import IPRoute

        return IPRoute()

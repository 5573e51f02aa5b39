"""Pool initializers for tests that kill a pool's parent before its worker has imported its modules: each first
marks, in the file ``$TEST_WORKER_READY`` names, that the worker's imports are done, then does what the real
initializer does. A test waits for that mark (however long the imports take under load) and only then bounds how
long the worker has to end: the part left is a few system calls, not hundreds of ms of imports that stretch
to many seconds at load 20 on 2 cores."""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any

#: The environment variable naming the file the mark is written to (a spawned worker inherits the environment).
READY_ENV = "TEST_WORKER_READY"


def mark_ready() -> None:
    """Write this worker's pid to the mark file: its modules are imported, its initializer runs now."""
    Path(os.environ[READY_ENV]).write_text(str(os.getpid()))


def mark_then_run(initializer: str, *args: Any) -> None:
    """The pool initializer named ``initializer`` (``package.module.function``), run with ``args`` once its
    module is imported and the mark written: what the worker would have run, a mark of its imports before it."""
    module, name = initializer.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)
    mark_ready()
    real(*args)


def wait_ready(mark: Path, pids: list[int], timeout: float = 240.0) -> bool:
    """Whether the mark was written before every one of ``pids`` ended: an event, waited for up to ``timeout``
    seconds (a backstop under pytest's 300 s per test, never reached by a worker that imports at all)."""
    deadline = time.monotonic() + timeout
    while not mark.exists():
        if not any(alive(p) for p in pids) or time.monotonic() > deadline:
            return mark.exists()
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    """Running: not ended, and not a zombie waiting for its parent to read its status."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

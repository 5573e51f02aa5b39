"""A helper process (a pool's worker) that ends when the process that started it does, however that one ends.

The kernel's PR_SET_PDEATHSIG only fires for a parent that dies *after* it is set, and a spawned worker sets it
once it has imported its modules (hundreds of ms): a parent killed in that window left its worker running for
ever (a pool's worker holds both ends of its own call queue, so it never reads an end of file) and
multiprocessing's resource tracker with it, parented to init. So the worker also checks that its parent is still
the one that started it, at once and every CHECK_SECONDS (a re-parented process has another parent pid). Used by
the service's reply worker and the swarm's (tests/support/swarm_hosts.py ends the swarm with SIGKILL)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
#: How often the worker checks that the process that started it is still its parent.
CHECK_SECONDS = 1.0


def end_with_parent(parent: int) -> None:
    """A pool's initializer (``initargs=(os.getpid(),)``): from now on this process ends with ``parent``."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=_watch, args=(parent,), name="watch-parent", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(CHECK_SECONDS)
    os._exit(0)

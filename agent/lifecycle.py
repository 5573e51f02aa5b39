"""How a long-running ``agent`` process lives and stops: signals, sleeps that wake for a stop, the watchdog.

Shared by the daemon's poll loop (agent.daemon) and the discovery image's launcher (agent.launcher), which
differ in what they do between registrations but must stop alike: at once on SIGTERM, whatever they wait for.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from agent.notify import Notifier
from agent.state import StateLock
from common.errors import StateLocked
from common.lazy_log import LOGGING, WARNING, LazyLogger, redact_url

log = LazyLogger("agent")


class Lifecycle:
    def __init__(self, notifier: Notifier, abort: Callable[[], None] | None = None) -> None:
        self.notifier = notifier
        #: gives up the main thread's request in flight (ServiceClient.abort), called by the signal handler
        self.abort = abort or (lambda: None)
        self.lock: StateLock | None = None
        self.stop = threading.Event()  # stop polling (SIGTERM, or the service said exit)
        self.terminate = threading.Event()  # a signal asked us to stop: running steps get only the grace period
        self.cancel = threading.Event()  # kill running steps (grace period over)
        self._signalled = False

    def start(self, url: str, token: str, state: str | os.PathLike[str] | None) -> bool:
        """What every loop does first; False when another agent already uses this state directory (its steps
        are its own: none is reaped, nothing is run)."""
        self.install_signal_handlers()
        if state:  # "" keeps no state
            try:
                self.lock = StateLock.acquire(state)
            except StateLocked as exc:
                log.error("%s", exc.describe())
                return False
        self.notifier.ready(f"registering with {redact_url(url)}")
        if not token:
            # written with the first record after the register (common.lazy_log), in this order
            LOGGING.hold("agent", WARNING, "Agent Authentication Token not set (PULL_SECRET_TOKEN is empty)")
        return True

    def release(self) -> None:
        """Let go of the state directory (another agent, or this process's next run, may take it)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            log.info("stopping: %s", reason)
            self.notifier.stopping(f"stopping: {reason}")
        self.stop.set()

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Python runs a handler again, nested, when a second signal comes while this one runs (one kill of the
        # process group reaches the agent up to three times: directly and through the static binary's two
        # bootloaders, which forward it): a nested Event.set() would wait forever for the lock the outer one
        # holds. So only the first signal does anything (a plain attribute, set before any lock is taken).
        if self._signalled:
            return
        self._signalled = True
        self.terminate.set()
        self.request_stop(signal.Signals(signum).name)
        self.abort()  # a request in flight (retries included) is given up: the Go agent exits at once

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped, pinging the watchdog meanwhile; False when a stop interrupted it."""
        end = time.monotonic() + max(0.0, seconds)
        chunk = self.notifier.watchdog_interval or 3600.0
        while True:
            self.notifier.watchdog()
            left = end - time.monotonic()
            if left <= 0:
                return not self.stop.is_set()
            if self.stop.wait(min(left, chunk)):
                return False

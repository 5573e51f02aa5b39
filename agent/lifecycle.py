"""How a long-running ``agent`` process lives and stops: signals, sleeps that wake for a stop, the watchdog.

Shared by the daemon's poll loop (agent.daemon) and the discovery image's launcher (agent.launcher), which
differ in what they do between registrations but must stop alike: at once on SIGTERM, whatever they wait for.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from agent.notify import Notifier

log = logging.getLogger("agent")


class Lifecycle:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.stop = threading.Event()  # stop polling (SIGTERM, or the service said exit)
        self.terminate = threading.Event()  # a signal asked us to stop: running steps get only the grace period
        self.cancel = threading.Event()  # kill running steps (grace period over)

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
        self.terminate.set()
        self.request_stop(signal.Signals(signum).name)

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

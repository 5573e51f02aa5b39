"""sd_notify(3) in plain Python: READY, STATUS and WATCHDOG for a ``Type=notify`` unit.

Silent when ``NOTIFY_SOCKET`` is unset (run by hand, in tests, in a container) and never raises: a broken
notification socket must not stop the agent, systemd's watchdog will notice on its own.
"""

from __future__ import annotations

import _socket  # not the socket module: its enums cost ~5 ms of CPU on the way to the first register
import os

from common.lazy_log import LazyLogger

log = LazyLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._warned = False
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        #: Seconds between watchdog pings (half the unit's WatchdogSec), or None when no watchdog is set.
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2_000_000

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines (``ready="1"`` becomes ``READY=1``); True when the datagram went out."""
        if not self.address:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
            try:
                sock.sendto(payload, target)
            finally:
                sock.close()
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def watchdog(self) -> None:
        if self.watchdog_interval is not None:
            self.send(watchdog="1")

    def stopping(self, status: str) -> None:
        self.send(stopping="1", status=status)

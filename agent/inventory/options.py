"""What a collector gets besides the host: the step's options, and one netlink snapshot for all."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from agent.host import Host
from agent.inventory import netlink


@dataclass
class Options:
    #: Disks smaller than this many bytes are left out of the inventory (the service's --disk-min-size).
    disk_min_size: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _netlink: netlink.Snapshot | None = field(default=None, repr=False)

    def netlink(self, host: Host) -> netlink.Snapshot:
        """One netlink dump for all collectors that need it (interfaces, routes), taken on first use."""
        with self._lock:
            if self._netlink is None:
                self._netlink = netlink.snapshot(host)
            return self._netlink

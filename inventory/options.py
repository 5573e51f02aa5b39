"""What a collector gets besides the host: the step's options, and one netlink snapshot for all."""

from __future__ import annotations

import threading

from common.host import Host
from inventory import netlink


class Options:
    def __init__(self, disk_min_size: int = 0) -> None:
        #: Disks smaller than this many bytes are left out of the inventory (the service's --disk-min-size).
        self.disk_min_size = disk_min_size
        self._lock = threading.Lock()
        self._netlink: netlink.Snapshot | None = None

    def netlink(self, host: Host) -> netlink.Snapshot:
        """One netlink dump for all collectors that need it (interfaces, routes), taken on first use."""
        with self._lock:
            if self._netlink is None:
                self._netlink = netlink.snapshot(host)
            return self._netlink

"""How often a host is handed connectivity-check: the real service's per-cluster admission queue.

A connectivity-check's arguments list every other host of the cluster, and its reply reports on every one of
them, so in a big cluster handing it out on every poll costs the square of the hosts (at 1,000 hosts each poll
would carry and provoke a thousand-peer report). The real service (``hostcommands/connectivity_check_cmd.go``)
hands it out on every poll while the cluster has at most :data:`MAX_PER_MINUTE` hosts; beyond that, at most
that many admissions per cluster in any sliding minute, in the order the hosts asked (a host that asked and was
refused keeps its place in the waiting line). Measured on the real service at 1,000 hosts polling every 10 s:
connectivity-check in 176 of 4,200 polls.

The queue is part of each cluster's model (``cluster_model.ClusterModel.admissions``), which the service
keeps in its process as the real service keeps its map (a restart only lets one more minute's worth through);
the time is the caller's, so the rule is tested without sleeping.
"""

from __future__ import annotations

from collections import deque

#: The real service's maxConnectivityRequestsPerMinute; also the cluster size up to which nothing is throttled.
MAX_PER_MINUTE = 150
WINDOW_SECONDS = 60.0


class AdmissionQueue:
    """One cluster's admissions: when the last ones were let through, and who waits, first come first served."""

    def __init__(self, limit: int = MAX_PER_MINUTE) -> None:
        self.limit = limit
        self._admitted: deque[float] = deque()
        #: Hosts that asked and are waiting (dict: ordered, O(1) membership and removal).
        self._waiting: dict[str, None] = {}

    def allowed(self, host_id: str, cluster_size: int, now: float) -> bool:
        """Whether this poll of ``host_id`` may carry a connectivity-check (``now``: seconds, any clock)."""
        if cluster_size <= self.limit:
            return True
        while self._admitted and now - self._admitted[0] > WINDOW_SECONDS:
            self._admitted.popleft()
        self._waiting.setdefault(host_id)
        free = self.limit - len(self._admitted)
        if free <= 0:
            return False
        # index of host_id in the waiting line < free slots (the real rule), without scanning past them
        for position, waiting_id in enumerate(self._waiting):
            if position >= free:
                return False
            if waiting_id == host_id:
                del self._waiting[host_id]
                self._admitted.append(now)
                return True
        return False

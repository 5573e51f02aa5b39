"""Timers and readable sockets in one loop, in the calling thread: how hundreds of probes share one deadline."""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import time
from collections.abc import Callable


class Reactor:
    def __init__(self) -> None:
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._readers: dict[int, tuple[socket.socket, Callable[[socket.socket], None]]] = {}

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def add_reader(self, sock: socket.socket, fn: Callable[[socket.socket], None]) -> None:
        self._readers[sock.fileno()] = (sock, fn)

    def run(self, finished: Callable[[], bool], deadline: float) -> None:
        """Serve sockets and timers until ``finished()`` or the monotonic ``deadline``.

        Sockets are read before due timers run: after a late wake-up on a busy machine, an answer that came
        in time is already queued (and stamped by the kernel) and must count before a timer gives up on it.
        """
        while not finished():
            now = time.monotonic()
            if now >= deadline:
                return
            wait = deadline - now
            if self._timers:
                wait = min(wait, max(0.0, self._timers[0][0] - now))
            if self._readers:
                ready, _, _ = select.select(list(self._readers), [], [], wait)
                for fd in ready:
                    sock, fn = self._readers[fd]
                    fn(sock)
            else:
                time.sleep(min(wait, 0.05))
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now and not finished():
                heapq.heappop(self._timers)[2]()

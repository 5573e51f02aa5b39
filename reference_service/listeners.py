"""The service's listening sockets: several on one port (``SO_REUSEPORT``), so that a busy loop still accepts
connections at the rate hosts open them.

libuv, under uvloop, accepts one connection each time a listening socket is reported readable, once per turn of
the loop (libuv pull request 3696, since 1.45), where asyncio's own loop takes up to a hundred at once. When
every turn is long, in saturation say, hosts that were still registering waited in the listen queue: with one
socket, 1,000 hosts polling back to back kept the others' registrations waiting p50 17.5 s, p99 32.8 s (the
swarm's saturation run). The kernel spreads new connections over the sockets of a ``SO_REUSEPORT`` group, and
each is accepted from on every turn: with 8 sockets the same run registered p50 1.2 s / p99 7.8 s, with 32 p50
0.36 s / p99 2.0 s (docs/scale.md). libuv's maintainers suggest this very arrangement for accepting faster.

A ``SO_REUSEPORT`` group takes only sockets of the same user, and only sockets that asked to join: the port is
first bound alone, without the option, so that a port another program (or another instance of this service)
listens on is still refused with a clear message rather than shared.
"""

from __future__ import annotations

import socket

#: Sockets listening on the service's port.
LISTENERS = 32
#: Each socket's listen queue: hosts connect in bursts (a rack booting); with 128 the connections beyond it had
#: their SYN dropped and were retried after 1, 3 and 7 s.
BACKLOG = 4096


def listen(host: str, port: int, count: int = LISTENERS) -> list[socket.socket]:
    """``count`` sockets listening on ``host``:``port`` (``port`` 0: a free one); OSError when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as alone:  # taken by anybody: refused here
        alone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        alone.bind((host, port))
        port = alone.getsockname()[1]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets

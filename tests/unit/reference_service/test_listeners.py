"""The service's listening sockets: one port, several sockets (so a busy loop accepts as fast as hosts connect),
and a port somebody else holds still refused."""

from __future__ import annotations

import errno
import socket

import pytest

from reference_service import listeners


def test_a_port_gets_several_sockets_and_connections_are_spread_over_them() -> None:
    socks = listeners.listen("127.0.0.1", 0, count=8)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 8 and len(ports) == 1
        port = ports.pop()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        accepted = []
        for s in socks:
            s.setblocking(False)
            taken = 0
            while True:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    break
                conn.close()
                taken += 1
            accepted.append(taken)
        for c in clients:
            c.close()
        # every connection was queued on one of them, and more than one socket had some to accept: the loop
        # accepts one per socket per turn, so that many per turn
        assert sum(accepted) == 200
        assert sum(1 for n in accepted if n) >= 4, accepted
    finally:
        for s in socks:
            s.close()


def test_a_port_in_use_is_refused_not_shared() -> None:
    socks = listeners.listen("127.0.0.1", 0, count=4)
    port = socks[0].getsockname()[1]
    try:
        with pytest.raises(OSError) as second:  # another instance of the service
            listeners.listen("127.0.0.1", port)
        assert second.value.errno == errno.EADDRINUSE
    finally:
        for s in socks:
            s.close()
    with socket.socket() as other:  # another program, listening without SO_REUSEPORT
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        with pytest.raises(OSError):
            listeners.listen("127.0.0.1", other.getsockname()[1])


def test_ipv6_is_listened_on_too() -> None:
    if not socket.has_ipv6:
        raise AssertionError("this machine has IPv6 (loopback ::1)")
    socks = listeners.listen("::1", 0, count=2)
    try:
        assert socks[0].family == socket.AF_INET6
        with socket.create_connection(("::1", socks[0].getsockname()[1])):
            pass
    finally:
        for s in socks:
            s.close()

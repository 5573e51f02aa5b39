"""Kernel timestamps of the probes' packets, so a busy CPU does not turn into network latency.

A round trip timed in Python after select() wakes up includes every millisecond the process waited for a
core; with steps running beside the probes that was 40 to 186 ms where ``ping`` saw 0.1 ms. Here the kernel
stamps each packet as it passes: the receive time when the device hands a packet in (``SO_TIMESTAMPING`` RX,
or ``SO_TIMESTAMPNS``, as ping uses ``SO_TIMESTAMP``), and the send time when the device takes it
(``SO_TIMESTAMPING`` TX software stamps, looped back on the socket's error queue with the packet they belong
to). A device whose driver gives no TX stamp leaves the time taken just before ``sendto``, which is what ping
uses. All stamps are CLOCK_REALTIME nanoseconds, the clock of ``time.time_ns()``.

Linux only; a kernel or socket that refuses the options leaves the Python-side times, never an error.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

SO_TIMESTAMPNS = 35
SO_TIMESTAMPING = 37
SO_TIMESTAMPING_NEW = 65
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
#: Errors on the error queue that are not timestamps (none are asked for) are read and dropped.
_ANCILLARY = 512

now_ns = time.time_ns


def enable(sock: socket.socket, *, tx: bool = True) -> bool:
    """Ask for receive (and, with ``tx``, send) stamps; False when the kernel gives neither."""
    flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | (SOF_TIMESTAMPING_TX_SOFTWARE if tx else 0)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
        return True
    except OSError:
        pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The first non-zero time in a timestamp control message (software first, then hardware)."""
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET or kind not in (SO_TIMESTAMPING, SO_TIMESTAMPING_NEW, SO_TIMESTAMPNS):
            continue
        stamps = 3 if kind != SO_TIMESTAMPNS else 1
        width = len(data) // (2 * stamps)
        if width not in (4, 8):
            continue
        fmt = "ll" if width == struct.calcsize("l") else ("qq" if width == 8 else "ii")
        for i in range(stamps):
            sec, nsec = struct.unpack_from(fmt, data, i * 2 * width)
            if sec or nsec:
                return int(sec) * 1_000_000_000 + int(nsec)
    return None


def receive(sock: socket.socket, size: int) -> tuple[bytes, object, int] | None:
    """The next queued packet, its source address and its arrival time; None when nothing is queued.

    The arrival time is the kernel's stamp when there is one, else now (the stamp may be missing for
    packets queued before the option was set, or on kernels without it).
    """
    try:
        data, ancillary, _flags, source = sock.recvmsg(size, _ANCILLARY, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return None  # an ICMP error reported on the socket: nothing to read
    stamp = _stamp(ancillary)
    return data, source, stamp if stamp is not None else now_ns()


def sent(sock: socket.socket, size: int) -> Iterator[tuple[bytes, int]]:
    """Drain the error queue: each looped-back packet (from its link-layer header) with the time it left."""
    while True:
        try:
            data, ancillary, _flags, _source = sock.recvmsg(size, _ANCILLARY, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        stamp = _stamp(ancillary)
        if stamp is not None:
            yield data, stamp


def ip_payload(frame: bytes, version: int) -> bytes | None:
    """What follows the IP header in a looped-back packet, whatever link-layer header comes first.

    The header is found where its length field matches the rest of the frame, which is how no link layer
    has to be known (Ethernet has 14 bytes, loopback's pseudo-Ethernet too, a tun device none).
    """
    for offset in range(min(len(frame), 64)):
        head = frame[offset:]
        if len(head) < (20 if version == 4 else 40) or head[0] >> 4 != version:
            continue
        if version == 4 and struct.unpack_from("!H", head, 2)[0] == len(head):
            return head[(head[0] & 0x0F) * 4 :]
        if version == 6 and head[6] == socket.IPPROTO_ICMPV6 and struct.unpack_from("!H", head, 4)[0] + 40 == len(head):
            return head[40:]
    return None


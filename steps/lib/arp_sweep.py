"""ARP host discovery over whole subnets, as ``nmap -sn -PR`` does it, on one packet socket."""

from __future__ import annotations

import ipaddress
import select
import socket
import time

from steps.lib import packets

PACKET_OUTGOING = 4


def arp_sweep(nic: str, nic_mac: str, source: str, targets: list[str], deadline: float, *,
              passes: int = 2, settle: float = 0.5) -> set[str]:
    """ARP-ask for every target (``passes`` rounds for the silent ones); the addresses that answered.

    Like ``nmap -sn -PR``: a burst of requests, a second round for those that stayed silent, then ``settle``
    seconds for late answers. Nothing is learnt into the kernel's neighbour table.
    """
    own = packets.mac_bytes(nic_mac)
    src = ipaddress.IPv4Address(source)
    wanted = {ipaddress.IPv4Address(t): t for t in targets}
    alive: set[str] = set()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(packets.ETH_P_ARP)) as sock:
        sock.bind((nic, packets.ETH_P_ARP))
        sock.setblocking(False)

        def drain(until: float) -> None:
            while True:
                left = max(0.0, min(until, deadline) - time.monotonic())
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    return
                while True:
                    try:
                        data, addr = sock.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    reply = packets.arp_reply(data) if addr[2] != PACKET_OUTGOING else None
                    if reply is not None and reply[2] == src and reply[1] in wanted:
                        alive.add(wanted[reply[1]])

        for _ in range(passes):
            for address, text in wanted.items():
                if text in alive:
                    continue
                frame = packets.arp_request(own, src, address)
                while True:
                    try:
                        sock.send(frame)
                        break
                    except BlockingIOError:
                        drain(time.monotonic() + 0.001)
                    except OSError:
                        break
                drain(time.monotonic())  # keep the receive queue short during big bursts
            drain(time.monotonic() + settle / passes)
        drain(time.monotonic() + settle / 2)
    return alive

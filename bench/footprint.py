"""The memory a group of processes holds, three ways (bench/daemon.py's "memory between polls").

- distinct pages: every physical page mapped by any of them, counted once (the page frame numbers of
  ``/proc/PID/pagemap``, root only). Pages the group shares among itself (a fork server's children, two
  interpreters' libpython, the Go agent's two processes' one binary) count once, and what other programs on
  the machine map too counts fully, as on a discovery host where the agent is alone. This is the figure the
  target (at most 45 MiB) is judged by.
- PSS summed: each page divided by the number of processes mapping it, machine-wide. Shared pages within the
  group count once too, but a library other programs use (libc; libpython on this machine, where other
  developers' interpreters run) counts only in part, so the figure drops as the machine gets busier.
- RSS summed: every process's resident pages, shared ones counted once per process (the figure bench/daemon.py
  printed before: it counted the two interpreters' libpython twice).
"""

from __future__ import annotations

import array
import os
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
_PRESENT = 1 << 63
_PFN = (1 << 55) - 1


@dataclass
class Footprint:
    distinct_mib: float
    pss_mib: float
    rss_mib: float


def _frames(pid: int) -> set[int]:
    """Frame numbers of the pages a process has resident (the mappings with an Rss, read from pagemap)."""
    found: set[int] = set()
    start = end = 0
    with open(f"/proc/{pid}/smaps") as smaps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in smaps:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                low, high = head.split("-")
                start, end = int(low, 16), int(high, 16)
            elif head == "Rss:" and int(line.split()[1]) > 0:
                pagemap.seek(start // PAGE * 8)
                entries = array.array("Q")
                entries.frombytes(pagemap.read((end - start) // PAGE * 8))
                found.update(e & _PFN for e in entries if e & _PRESENT)
    return found


def _field_kib(path: str, name: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def footprint(pids: list[int]) -> Footprint:
    """The group's memory now; a process that ended meanwhile counts nothing."""
    frames: set[int] = set()
    pss = rss = 0
    for pid in pids:
        try:
            frames |= _frames(pid)
            pss += _field_kib(f"/proc/{pid}/smaps_rollup", "Pss:")
            rss += _field_kib(f"/proc/{pid}/status", "VmRSS:")
        except OSError:
            continue
    if frames == {0}:
        raise PermissionError("pagemap gives no frame numbers: run as root")
    return Footprint(len(frames) * PAGE / MIB, pss / 1024, rss / 1024)

"""agent.record_host: a recording of this machine (its /proc, /sys, /dev links and netlink answers) replays to
the very inventory it was taken from, its symlinks kept as symlinks inside the tree."""

from __future__ import annotations

import os
from pathlib import Path

from agent.record_host import record
from common.host import Host
from inventory.collect import inventory


def test_recording_replays_to_the_same_inventory(tmp_path: Path) -> None:
    taken = record(tmp_path / "rec")
    assert (tmp_path / "rec" / ".recorded" / "netlink.json").exists()
    replayed, problems = inventory(Host.at(tmp_path / "rec"))
    assert problems == []
    assert replayed == taken
    # symlinks are kept as symlinks and resolve inside the tree
    block = tmp_path / "rec" / "sys" / "block"
    assert all((block / n).is_symlink() and (block / n).resolve().is_relative_to(tmp_path) for n in os.listdir(block))

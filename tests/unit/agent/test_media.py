"""agent.media: the discovery ISO's media is checked as the Go agent's diagnoseSystem does, on a host tree
whose mount table (findmnt) is recorded: a device that cannot be opened or gives fewer than 2 bytes is
disconnected media, in the Go agent's words; what keeps the check from answering lets the step run."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.media import MEDIA_DISCONNECTED, MEDIA_PATH, MediaCheck
from common.host import Host, RecordedRunner

FINDMNT = ["findmnt", "--raw", "--noheadings", "--output", "SOURCE,TARGET", "--target", MEDIA_PATH]


def _host(root: Path, findmnt: dict[str, object] | None, device: bytes | None = b"CD001") -> Host:
    (root / "run/media/iso").mkdir(parents=True)
    (root / "dev").mkdir()
    if device is not None:
        (root / "dev/sr0").write_bytes(device)
    records = [{"argv": FINDMNT, **findmnt}] if findmnt is not None else []
    return Host(root, RecordedRunner(records))


MOUNTED: dict[str, object] = {"stdout": f"/dev/sr0 {MEDIA_PATH}\n"}


def test_readable_media_is_no_problem(tmp_path: Path) -> None:
    assert MediaCheck(_host(tmp_path, MOUNTED)).problem() == ""
    assert MEDIA_DISCONNECTED == 256


@pytest.mark.parametrize(("device", "problem"), [
    (None, "cannot access the media (ISO) - media was likely disconnected: open /dev/sr0: no such file or directory"),
    (b"", "cannot read from the media (ISO) - media was likely disconnected: EOF"),
    (b"C", "cannot read from the media (ISO) - media was likely disconnected: unexpected EOF"),
])
def test_media_that_cannot_be_read_is_disconnected(tmp_path: Path, device: bytes | None, problem: str) -> None:
    assert MediaCheck(_host(tmp_path, MOUNTED, device)).problem() == problem


@pytest.mark.parametrize("findmnt", [
    None,  # no findmnt: the check cannot answer
    {"exit_code": 1, "stderr": "findmnt: failed"},
    {"stdout": ""},
    {"stdout": "/dev/sr0 /run/media\n"},  # mounted elsewhere
    {"stdout": f"overlay {MEDIA_PATH}\n"},  # not a device
])
def test_when_the_check_cannot_tell_the_step_runs(tmp_path: Path, findmnt: dict[str, object] | None) -> None:
    assert MediaCheck(_host(tmp_path, findmnt, device=None)).problem() == ""


def test_no_media_mounted_and_dry_run_check_nothing(tmp_path: Path) -> None:
    assert MediaCheck(Host(tmp_path, RecordedRunner([{"argv": FINDMNT, **MOUNTED}]))).problem() == ""
    assert MediaCheck(_host(tmp_path, MOUNTED, device=None), enabled=False).problem() == ""

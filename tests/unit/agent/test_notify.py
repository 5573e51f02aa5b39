"""agent.notify: sd_notify datagrams as systemd reads them, silence without NOTIFY_SOCKET, never an exception."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from agent.notify import Notifier


def test_ready_status_stopping_as_key_value_lines(notify_socket: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "notify"))
    assert notifier.enabled
    notifier.ready("registering")
    notifier.status("polling")
    notifier.stopping("bye")
    assert [notify_socket.recv(4096) for _ in range(3)] == [b"READY=1\nSTATUS=registering", b"STATUS=polling",
                                                       b"STOPPING=1\nSTATUS=bye"]


def test_an_abstract_socket_address() -> None:
    name = f"@assisted-agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        sock.settimeout(2)
        assert Notifier(name).send(status="x") is True
        assert sock.recv(100) == b"STATUS=x"


def test_without_a_socket_nothing_is_sent_and_nothing_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().enabled is False and Notifier().send(ready="1") is False
    broken = Notifier(str(tmp_path / "nobody-listens"))
    assert broken.send(status="a") is False and broken.send(status="b") is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1  # warned once


def test_the_watchdog_interval_is_half_the_units_and_only_for_this_process(
        notify_socket: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier(str(tmp_path / "notify"))
    assert notifier.watchdog_interval == 15.0
    notifier.watchdog()
    assert notify_socket.recv(100) == b"WATCHDOG=1"
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    other = Notifier(str(tmp_path / "notify"))
    assert other.watchdog_interval is None
    other.watchdog()
    notify_socket.settimeout(0.05)
    with pytest.raises(TimeoutError):
        notify_socket.recv(100)

"""agent.lifecycle: one agent per state directory, READY with the URL's password hidden, sleeps that a stop
ends at once, and SIGTERM turned into a stop that also gives up the request in flight."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.lifecycle import Lifecycle
from agent.notify import Notifier
from tests.support.paths import ROOT


@pytest.fixture
def handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_start_takes_the_state_directory_and_says_ready(
        handlers: None, notify_socket: socket.socket, tmp_path: Path) -> None:
    first = Lifecycle(Notifier(str(tmp_path / "notify")))
    assert first.start("https://user:s3cret@svc.example:8090", "token", tmp_path / "state") is True
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=registering with https://user:***@svc.example:8090"
    second = Lifecycle(Notifier(""))
    assert second.start("https://svc.example", "token", tmp_path / "state") is False  # the first holds it
    assert first.lock is not None
    first.lock.release()
    assert Lifecycle(Notifier("")).start("https://svc.example", "token", tmp_path / "state") is True


def test_sigterm_stops_terminates_and_aborts_the_request_in_flight(handlers: None) -> None:
    aborted = threading.Event()
    life = Lifecycle(Notifier(""), abort=aborted.set)
    life.install_signal_handlers()
    signal.raise_signal(signal.SIGTERM)
    assert life.stop.is_set() and life.terminate.is_set() and aborted.is_set()
    assert not life.cancel.is_set()  # running steps still get their grace period


def test_request_stop_says_stopping_once(notify_socket: socket.socket, tmp_path: Path) -> None:
    life = Lifecycle(Notifier(str(tmp_path / "notify")))
    life.request_stop("the service said exit")
    life.request_stop("again")
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=stopping: the service said exit"
    notify_socket.settimeout(0.05)
    with pytest.raises(TimeoutError):
        notify_socket.recv(4096)


def test_sleep_runs_its_time_unless_a_stop_ends_it() -> None:
    life = Lifecycle(Notifier(""))
    start = time.monotonic()
    assert life.sleep(0.05) is True and time.monotonic() - start >= 0.05
    threading.Timer(0.05, life.stop.set).start()
    start = time.monotonic()
    assert life.sleep(30) is False and time.monotonic() - start < 5
    assert life.sleep(0) is False  # already stopped


NESTED_SIGNAL = """
import signal
import threading

from agent.lifecycle import Lifecycle
from agent.notify import Notifier


class SecondSignalWhileSetting(threading.Event):
    def set(self) -> None:
        with self._cond:  # as Event.set, with the second SIGTERM arriving while its lock is held
            signal.raise_signal(signal.SIGTERM)
            self._flag = True
            self._cond.notify_all()


life = Lifecycle(Notifier(""))
life.terminate = SecondSignalWhileSetting()
life.install_signal_handlers()
signal.raise_signal(signal.SIGTERM)
print(life.stop.is_set() and life.terminate.is_set())
"""


def test_a_second_signal_while_the_first_is_handled_does_not_hang_it() -> None:
    """One kill of the static binary's process group reaches the agent three times (its two bootloaders forward
    it): the nested handler waited forever for the lock of the Event the outer one was setting."""
    proc = subprocess.run([sys.executable, "-c", NESTED_SIGNAL], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)  # a hang is a TimeoutExpired: the test fails, the child is killed
    assert proc.returncode == 0 and proc.stdout.strip() == "True", (proc.returncode, proc.stdout, proc.stderr)

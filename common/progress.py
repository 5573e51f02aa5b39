"""How far a long step is, for a person watching ``agent step`` run it.

Steps report through :func:`meter`, one mechanism for all (write-image, the disk speed check, downloads, image
pulls, logs-gather). Where the figures go depends on who runs the step:

* under ``agent step``, which sets the ``progress`` setting in the step's request: stderr. On a terminal one line
  rewritten in place (done, total, percent, rate, time left) like ``dd status=progress``; when stderr is not a
  terminal, a plain line every 10 % or 10 s, then a last one, so logs and CI output stay readable;
* under the daemon: nowhere. The meter does nothing, and the step's own log lines are what the journal gets.

Nothing of it enters a step's reply. The module is the standard library only and is imported by step processes,
never by the daemon, so it costs the daemon's memory nothing.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TextIO

#: Seconds between redraws of the terminal line, and between plain lines at the latest.
TTY_REFRESH = 0.2
LINE_EVERY = 10.0


def size(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f} {unit}"
    for name in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {name}" if name == "B" else f"{n:.1f} {name}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Meter:
    """Progress of one piece of work, ``total`` units (bytes unless ``unit`` says otherwise) or unknown."""

    def __init__(
        self,
        label: str,
        total: float | None = None,
        *,
        unit: str = "B",
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total or None, unit
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.done = 0.0
        self._start = self._last = clock()
        self._last_tenth = 0
        self._lock = threading.Lock()
        self._finished = False

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish(failed=kind is not None)

    def add(self, amount: float) -> None:
        self.update(self.done + amount)

    def update(self, done: float) -> None:
        """``done`` units of the total are done; redraws when it is time to."""
        with self._lock:
            self.done = done
            now = self.clock()
            tenth = int(10 * done / self.total) if self.total else 0
            if self.tty:  # the first figures at once, then a redraw every TTY_REFRESH
                due = self._last == self._start or now - self._last >= TTY_REFRESH
            else:
                due = now - self._last >= LINE_EVERY or tenth > self._last_tenth
            if due and not self._finished:
                self._last, self._last_tenth = now, tenth
                self._write(self.line(now))

    def finish(self, *, failed: bool = False) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            elapsed = self.clock() - self._start
            rate = f" ({size(self.done / elapsed, self.unit)}/s)" if elapsed > 0 and self.done else ""
            end = "stopped" if failed else "done"
            amount = f", {size(self.done, self.unit)}" if self.done or self.total else ""
            self._write(f"{self.label}: {end}{amount} in {duration(elapsed)}{rate}")
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()

    def line(self, now: float) -> str:
        """``label: 120.0 MiB / 300.0 MiB  40%  85.2 MiB/s  0:02 left`` (what is known of it)."""
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        amount = size(self.done, self.unit) if self.unit == "B" else f"{self.done:.0f}"
        if self.total:
            amount += f" / {size(self.total, self.unit)}"
        elif self.unit != "B":
            amount = size(self.done, self.unit) if self.done else ""
        parts = []
        if self.total:
            parts.append(f"{min(100, 100 * self.done / self.total):3.0f}%")
        if rate:
            parts.append(f"{size(rate, self.unit)}/s")
        if self.total and rate:
            parts.append(f"{duration(max(0.0, self.total - self.done) / rate)} left")
        else:
            parts.append(f"{duration(elapsed)} elapsed")
        return f"{self.label}: {amount}  " + "  ".join(parts) if amount else f"{self.label}: " + "  ".join(parts)

    def _write(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class _Silent(Meter):
    """The meter under the daemon: takes every call, shows nothing."""

    def __init__(self) -> None:
        self.done, self.total, self.unit = 0.0, None, "B"

    def update(self, done: float) -> None:
        self.done = done

    def finish(self, *, failed: bool = False) -> None:
        pass


def meter(label: str, total: float | None = None, *, unit: str = "B", show: bool = False) -> Meter:
    """A meter that shows on stderr when ``show`` (the ``progress`` setting: ``agent step`` on a terminal), and
    does nothing otherwise."""
    if not show:
        return _Silent()
    return Meter(label, total, unit=unit)


def counted(chunks: Iterable[bytes], progress: Meter) -> Iterator[bytes]:
    """The chunks as they are, each counted on ``progress`` as it passes (a download, a copy)."""
    for chunk in chunks:
        progress.add(len(chunk))
        yield chunk


@contextlib.contextmanager
def waiting(label: str, *, show: bool = False) -> Iterator[Meter]:
    """For work that says nothing of how far it is (an image pull): the time it has taken so far, kept fresh."""
    shown = meter(label, unit="", show=show)
    if isinstance(shown, _Silent):
        yield shown
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TTY_REFRESH):
            shown.update(shown.done)

    ticker = threading.Thread(target=tick, name="progress-ticker", daemon=True)
    ticker.start()
    failed = True
    try:
        yield shown
        failed = False
    finally:
        stop.set()
        ticker.join()
        shown.finish(failed=failed)

"""A lab machine's serial console, timed: where a booting machine's minutes go, from outside it.

QEMU logs each console to ``WORK/NAME.console`` without times. A thread per machine follows that file and writes
``WORK/NAME.console.timed`` (each line with the seconds since QEMU started), and notes when the first line of each
milestone of a discovery boot appeared (the kernel starting ``/init``, systemd, the Ignition applied, the agent
unit starting and started; at the reboot into the installed disk, the agent unit stopping and stopped). Those go
to lab-report.json; bench/lab.py prints them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

#: (milestone, text of the console line that marks it), in boot order.
MILESTONES: tuple[tuple[str, str], ...] = (
    ("kernel runs /init", "Run /init as init process"),
    ("live root mounted", "Mounting \"/run/live/medium/live/filesystem.squashfs\""),
    ("systemd starts", "systemd[1]: systemd "),
    ("Ignition applied", "Finished assisted-ignition"),  # systemd shortens the rest
    ("agent.service starting", "Starting agent.service"),
    ("agent started", "Started agent.service"),
    # the reboot into the installed disk: systemd stops the stock unit (its stop timeout is 90 s)
    ("agent.service stopping", "Stopping agent.service"),
    ("agent.service stopped", "Stopped agent.service"),
)


def _plain(line: str) -> str:
    """A console line without its terminal colour codes (systemd's status lines carry them)."""
    out, skip = [], False
    for ch in line:
        if ch == "\x1b":
            skip = True
        elif skip and ch.isalpha():
            skip = False
        elif not skip:
            out.append(ch)
    return "".join(out).strip()


class ConsoleClock:
    """Follows one console log from ``started`` (time.monotonic() when QEMU began) until stopped."""

    def __init__(self, console: Path, started: float) -> None:
        self.console = console
        self.started = started
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"console-{console.stem}", daemon=True)

    def start(self) -> ConsoleClock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def note(self, line: str, at: float) -> None:
        for name, text in MILESTONES:
            if name not in self.seen and text in line:
                self.seen[name] = round(at, 1)

    def _follow(self) -> None:
        timed = self.console.with_suffix(".console.timed")
        pos, partial = 0, ""
        with open(timed, "a", encoding="utf-8") as out:
            while not self._stop.wait(0.5):
                try:
                    with open(self.console, "rb") as fh:
                        fh.seek(pos)
                        data = fh.read()
                except OSError:
                    continue
                if not data:
                    continue
                pos += len(data)
                at = time.monotonic() - self.started
                lines = (partial + data.decode(errors="replace").replace("\r", "")).split("\n")
                partial = lines.pop()
                for line in lines:
                    text = _plain(line)
                    if text:
                        self.note(text, at)
                        out.write(f"{at:8.1f} {text}\n")
                out.flush()

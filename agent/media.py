"""Is the discovery ISO's media still there? The Go agent's diagnoseSystem, asked before every step and after
every failed one.

A full ISO mounts its media at ``/run/media/iso``; when virtual media drops (a BMC's flaky network), every step
that reads the ISO fails in its own confusing way. So, as the Go agent: when ``/run/media/iso`` exists and
findmnt names a ``/dev`` device as its source, the device must open and give 2 bytes. When it does not, the step
is not run and its reply is exit code 256 with ``cannot access the media (ISO) - media was likely disconnected:
<cause>`` (or ``cannot read from ...``); a failed step's exit code becomes 256 the same way. The service keys
``media_status: disconnected`` on that code. Anything that keeps the check itself from answering (no findmnt,
the media mounted elsewhere, a source that is not a device) is logged and the step runs, as in Go. Off in
dry-run.
"""

from __future__ import annotations

import logging

from common.host import Host

log = logging.getLogger("agent")

MEDIA_PATH = "/run/media/iso"
#: The Go agent's MediaDisconnected error code, which the service's media_status keys on.
MEDIA_DISCONNECTED = 256


class MediaCheck:
    def __init__(self, host: Host, *, enabled: bool = True) -> None:
        self.host = host
        self.enabled = enabled

    def problem(self) -> str:
        """Why the media cannot be read, in the Go agent's words; "" when it can (or cannot be told)."""
        if not self.enabled or not self.host.exists(MEDIA_PATH):
            return ""
        source = self._source()
        if not source:
            return ""
        try:
            with open(self.host.fs_path(source), "rb", buffering=0) as fh:
                try:
                    data = fh.read(2)
                except OSError as exc:
                    return (f"cannot read from the media (ISO) - media was likely disconnected: "
                            f"read {source}: {_errno_text(exc)}")
        except OSError as exc:
            return f"cannot access the media (ISO) - media was likely disconnected: open {source}: {_errno_text(exc)}"
        if len(data) < 2:
            cause = "EOF" if not data else "unexpected EOF"
            return f"cannot read from the media (ISO) - media was likely disconnected: {cause}"
        return ""

    def _source(self) -> str:
        """The /dev source of the media's mount, or "" (logged) when findmnt cannot tell."""
        failed = "failed to validate media disconnection - continuing"
        result = self.host.run(["findmnt", "--raw", "--noheadings", "--output", "SOURCE,TARGET", "--target",
                                MEDIA_PATH], timeout=10)
        fields = result.stdout.split()
        if not result.ok:
            log.warning("%s: %s", failed, result.stderr.strip())
        elif len(fields) < 2:
            log.warning("%s: cannot find ISO mountpoint source", failed)
        elif fields[1] != MEDIA_PATH:
            log.warning("%s: media mounted to %s instead of directly to %s", failed, fields[1], MEDIA_PATH)
        elif not fields[0].startswith("/dev"):
            log.warning("%s: the mount source isn't a device file %s", failed, fields[0])
        else:
            return fields[0]
        return ""


def _errno_text(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()

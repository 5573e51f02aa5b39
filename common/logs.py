"""Logging: to the journal when journald runs, to stderr otherwise, as text or JSON lines; never the token.

Every record passes :class:`RedactFilter`: the token and other known secrets become ``***``, so does the password
of any URL (``scheme://user:pass@host``), and a line longer than ``MAX_LOG_CHARS`` is cut, because a message may
quote something the service sent, which can be of any size.

journald is detected by its socket rather than by asking libsystemd, because libsystemd silently drops
messages when the socket is missing (a container without ``/run/systemd/journal`` would lose every line).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from common.lazy_log import redact_url as redact_url  # re-exported: the steps and runner import it from here
from common.limits import MAX_LOG_CHARS, clip

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
class RedactFilter(logging.Filter):
    """Replaces secrets in every record, wherever a careless message or exception put them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        if record.exc_text:
            record.exc_text = clip(redact_url(record.exc_text), MAX_LOG_CHARS)
        record.msg, record.args = clip(redact_url(message), MAX_LOG_CHARS), None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("step_type", "step_id", "host_id", "code"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry)


def setup_logging(*, json_lines: bool = False, level: str = "info", journal: bool | None = None,
                  secrets: list[str] | None = None, tag: str = "agent") -> None:
    """Configure the root logger once for this process (the daemon and each step's child call it)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    use_journal = os.path.exists(JOURNAL_SOCKET) if journal is None else journal
    handler: logging.Handler | None = None
    if use_journal and not json_lines:
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER=tag, TAG=tag)
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactFilter(secrets or []))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("urllib3", "scapy", "pyroute2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 logs every transport retry as a raw "Retrying (Retry(total=2, ...))" warning, seconds before the
    # agent's own line says what failed and what it does about it: the agent's line is the one a person reads.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

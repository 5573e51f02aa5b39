"""Loggers that load the logging package at their first record: the daemon's first register goes out before it.

Why: ``import logging`` brings traceback, linecache, tokenize, textwrap, string and weakref, about 15 ms of CPU
on a quiet machine, a sixth of the agent's way to its first register, and more under load (issue 29: that way
is the CPU a host spends before the service hears of it). Nothing is logged on that way when all is well, so
the modules on it log through a :class:`LazyLogger`, and the daemon's logging configuration is handed to
:data:`LOGGING`, which applies it (``common.logs.setup_logging``) just before the first record, from whichever
thread. The warnings of the start (an empty token) wait in it for that moment, in their order, so the log reads
as if they had been written at once: only their time stamps come later, by the register's few milliseconds.

Whatever loads requests or the step machinery applies the configuration first (:meth:`DeferredLogging.apply`):
their loggers are the logging package's own, and a record of theirs must not pass unredacted.

This module imports neither logging nor anything that does (``redact_url`` is here for that reason).
"""

from __future__ import annotations

import re
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import Any

#: The logging package's levels, for ``log.log(level, ...)`` without importing it.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

#: ``://user:password@`` in any text; group 1 keeps ``://user``. No part can run past the next ``/`` or ``:``
#: it excludes, so a text costs linear time whatever it holds; quotes and backslashes end a match (a URL cannot
#: hold them unescaped), so redacting a JSON document keeps it JSON.
_URL_PASSWORD = re.compile(r"(://[^/\s\"'\\<>?#@:]*):[^/\s\"'\\<>?#@]*@")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (the user name stays: it helps)."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(r"\1:***@", text)


class DeferredLogging:
    """The process's logging configuration, waiting for the first record (one per process: :data:`LOGGING`)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # reentrant: a deferred record is written from inside apply()
        self._setup: Callable[[], None] | None = None
        self._held: list[tuple[str, int, str, tuple[object, ...]]] = []

    def configure(self, setup: Callable[[], None]) -> None:
        """Apply ``setup`` (which imports logging) before the first record, or at :meth:`apply`."""
        with self._lock:
            self._setup = setup

    def hold(self, name: str, level: int, msg: str, *args: object) -> None:
        """A record written when the configuration is applied, or at once when there is none waiting."""
        with self._lock:
            if self._setup is None and not self._held:
                _logger(name).log(level, msg, *args)
            else:
                self._held.append((name, level, msg, args))

    @property
    def pending(self) -> bool:
        return self._setup is not None or bool(self._held)

    def apply(self) -> None:
        """Configure logging now if it waits, then write the held records. Idempotent, thread-safe."""
        with self._lock:
            setup, self._setup = self._setup, None
            if setup is not None:
                setup()
            held, self._held = self._held, []
            for name, level, msg, args in held:
                _logger(name).log(level, msg, *args)


#: The one configuration of this process, as the logging package's root logger is one.
LOGGING = DeferredLogging()


def _logger(name: str) -> logging.Logger:
    import logging

    return logging.getLogger(name)


class LazyLogger:
    """``logging.getLogger(name)``, fetched (and :data:`LOGGING` applied) at the first record."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        if LOGGING.pending:
            LOGGING.apply()
        if self._logger is None:
            self._logger = _logger(self.name)
        return self._logger

    # stacklevel one more: a record names the caller's file and line (the journal's CODE_*), not this module's
    def log(self, level: int, msg: object, *args: object, stacklevel: int = 1, **kwargs: Any) -> None:
        self.logger.log(level, msg, *args, stacklevel=stacklevel + 1, **kwargs)

    def debug(self, msg: object, *args: object, stacklevel: int = 1, **kwargs: Any) -> None:
        self.logger.debug(msg, *args, stacklevel=stacklevel + 1, **kwargs)

    def info(self, msg: object, *args: object, stacklevel: int = 1, **kwargs: Any) -> None:
        self.logger.info(msg, *args, stacklevel=stacklevel + 1, **kwargs)

    def warning(self, msg: object, *args: object, stacklevel: int = 1, **kwargs: Any) -> None:
        self.logger.warning(msg, *args, stacklevel=stacklevel + 1, **kwargs)

    def error(self, msg: object, *args: object, stacklevel: int = 1, **kwargs: Any) -> None:
        self.logger.error(msg, *args, stacklevel=stacklevel + 1, **kwargs)

    def exception(self, msg: object, *args: object, stacklevel: int = 1, **kwargs: Any) -> None:
        self.logger.exception(msg, *args, stacklevel=stacklevel + 1, **kwargs)

"""What both command lines (``agent``, ``assisted-reference-service``) share: one-line errors, exit statuses.

Every command-line error and start-up failure is one line on stderr, ``PROG: error: MESSAGE``, then
``PROG: hint: HINT`` when there is something to do about it; exit status 2 for a bad command line (usage), 1 for
a failure at run time. A traceback is never what a person sees: an unexpected exception becomes one line too,
and ``AGENT_TRACEBACK=1`` brings the traceback back for whoever debugs it. This module imports only argparse
and :mod:`common.errors`, so a command's start-up does not pay for it.

:class:`Parser` is in common.argparser: ``agent inventory`` parses its two flags without argparse (and the
gettext, warnings and locale modules behind it), so importing this module must not import it.
"""

from __future__ import annotations

import os
import sys

from common.errors import AgentError, ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_RUNTIME = 1
EXIT_USAGE = 2


def fail(prog: str, message: str, hint: str | None = None) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    if hint:
        print(f"{prog}: hint: {hint}", file=sys.stderr)


def run_main(prog: str, body: Callable[[], int]) -> int:
    """``body()``'s exit status, with every failure turned into one line, a hint and status 2 or 1."""
    try:
        return body()
    except AgentError as exc:
        fail(prog, exc.message, exc.hint)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `agent inventory | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUNTIME
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        fail(prog, f"{exc.strerror or exc}{where}", "check the path and its permissions")
        return EXIT_RUNTIME
    except Exception as exc:
        if os.environ.get("AGENT_TRACEBACK") == "1":
            raise
        fail(prog, f"unexpected {type(exc).__name__}: {exc}",
             "this is a bug; rerun with AGENT_TRACEBACK=1 for the traceback and report it")
        return EXIT_RUNTIME

"""Extension points of the rules: validations, step argument builders and reply handlers.

Everything that is about one area (hardware, network, pre-install checks, installation) lives in its own rules
module and registers here with decorators. The orchestrator derives a host's state from the registered
validations, builds the steps each state issues (``states.STATE_STEPS``) with the registered argument
builders, and applies replies with the registered handlers. Hooks receive a
:class:`~rules.documents.HostView`; reply handlers update ``view.host`` (and
``view.cluster``, which the orchestrator then saves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rules.documents import HostView, Outcome


@dataclass(frozen=True)
class Validation:
    id: str
    category: str
    func: Callable[[HostView], Outcome | None]
    #: Blocking validations gate ``known``; non-blocking ones are shown only (ntp-synced, mtu-valid, ...).
    blocking: bool = True
    #: Part of hasMinRequiredHardware: failing it makes the host ``insufficient`` even before other checks.
    hardware_gate: bool = False
    #: Applies to hosts of an infra-env with no cluster (the pool) too.
    unbound: bool = False


VALIDATIONS: dict[str, Validation] = {}
STEP_ARGUMENTS: dict[str, Callable[[HostView], list[str] | None]] = {}
REPLY_HANDLERS: dict[str, Callable[[HostView, Any, dict[str, Any]], None]] = {}


def validation(
    id: str, category: str, *, blocking: bool = True, hardware_gate: bool = False, unbound: bool = False
) -> Callable[[Callable[[HostView], Outcome | None]], Callable[[HostView], Outcome | None]]:
    """Register a host validation; the function returns (status, message), or None when it does not apply."""

    def register(func: Callable[[HostView], Outcome | None]) -> Callable[[HostView], Outcome | None]:
        VALIDATIONS[id] = Validation(id, category, func, blocking, hardware_gate, unbound)
        return func

    return register


def step_arguments(
    step_type: str,
) -> Callable[[Callable[[HostView], list[str] | None]], Callable[[HostView], list[str] | None]]:
    """Register how the arguments of a step are built for a host; returning None skips the step."""

    def register(func: Callable[[HostView], list[str] | None]) -> Callable[[HostView], list[str] | None]:
        STEP_ARGUMENTS[step_type] = func
        return func

    return register


#: Step types whose handler reads nothing of the decoded output but whether there is one (``text_only``).
TEXT_ONLY: set[str] = set()
#: What such a handler gets in place of the document for a reply a worker checked (``reply_workers``).
CHECKED: Any = object()


def reply_handler(
    step_type: str, *, text_only: bool = False,
) -> Callable[[Callable[[HostView, Any, dict[str, Any]], None]], Callable[[HostView, Any, dict[str, Any]], None]]:
    """Register what a reply does to the host: ``func(view, parsed_output, reply)``; it updates ``view.host``.

    It is called for successful replies (exit code 0) with the output decoded, and for failed ones with
    ``parsed_output`` None, so a handler can record failures where the real service does. ``text_only``: the
    handler stores the output's text and reads nothing of the document; a big reply, checked and derived by a
    worker, then reaches it with :data:`CHECKED` instead, and the loop does not decode it (1 ms for a
    1,000-peer connectivity report, 150 of them at once at 1,000 hosts).
    """

    def register(
        func: Callable[[HostView, Any, dict[str, Any]], None],
    ) -> Callable[[HostView, Any, dict[str, Any]], None]:
        REPLY_HANDLERS[step_type] = func
        if text_only:
            TEXT_ONLY.add(step_type)
        return func

    return register

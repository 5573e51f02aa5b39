"""Extension points of the rules: validations, step argument builders and reply handlers.

Everything that is about one area (hardware, network, pre-install checks, installation) lives in its own rules
module and registers here with decorators. The orchestrator derives a host's state from the registered
validations, builds the steps each state issues (``states.STATE_STEPS``) with the registered argument
builders, and applies replies with the registered handlers. Hooks receive a
:class:`~reference_service.rules.documents.HostView`; reply handlers update ``view.host`` (and
``view.cluster``, which the orchestrator then saves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reference_service.rules.documents import HostView, Outcome


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


def reply_handler(
    step_type: str,
) -> Callable[[Callable[[HostView, Any, dict[str, Any]], None]], Callable[[HostView, Any, dict[str, Any]], None]]:
    """Register what a reply does to the host: ``func(view, parsed_output, reply)``; it updates ``view.host``.

    It is called for successful replies (exit code 0) with the output decoded, and for failed ones with
    ``parsed_output`` None, so a handler can record failures where the real service does.
    """

    def register(
        func: Callable[[HostView, Any, dict[str, Any]], None],
    ) -> Callable[[HostView, Any, dict[str, Any]], None]:
        REPLY_HANDLERS[step_type] = func
        return func

    return register

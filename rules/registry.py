"""Extension points of the rules: validations, step argument builders and reply handlers.

Everything that is about one area (hardware, network, pre-install checks, installation) lives in its own rules
module and registers here with decorators. The orchestrator derives a host's state from the registered
validations, builds the steps each state issues (``states.STATE_STEPS``) with the registered argument
builders, and applies replies with the registered handlers. Hooks receive a
:class:`~rules.documents.HostView`; reply handlers update ``view.host`` (and
``view.cluster``, which the orchestrator then saves).

The tables (``VALIDATIONS``, ``STEP_ARGUMENTS``, ``REPLY_HANDLERS``, ``TEXT_ONLY``) are complete whenever they
are read: the first read imports every rule area (:func:`rules.load_areas`), so no reader sees only the areas
that happened to be imported before it. Importing one area alone stays cheap: ``agent inventory --format
table`` and ``agent check`` need the disk and hardware rules, not the ~0.1 s of CPU of all of them (issue 29).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rules.documents import HostView, Outcome


class Validation:
    """A registered host validation. A plain class, not a dataclass: ``agent check`` would import dataclasses
    (with inspect, ast and dis) for it, a tenth of its CPU (issue 29)."""

    __slots__ = ("blocking", "category", "func", "hardware_gate", "id", "unbound")

    def __init__(self, id: str, category: str, func: Callable[[HostView], Outcome | None], blocking: bool = True,
                 hardware_gate: bool = False, unbound: bool = False) -> None:
        self.id, self.category, self.func = id, category, func
        #: Blocking validations gate ``known``; non-blocking ones are shown only (ntp-synced, mtu-valid, ...).
        self.blocking = blocking
        #: Part of hasMinRequiredHardware: failing it makes the host ``insufficient`` even before other checks.
        self.hardware_gate = hardware_gate
        #: Applies to hosts of an infra-env with no cluster (the pool) too.
        self.unbound = unbound


_VALIDATIONS: dict[str, Validation] = {}
_STEP_ARGUMENTS: dict[str, Callable[[HostView], list[str] | None]] = {}
_REPLY_HANDLERS: dict[str, Callable[[HostView, Any, dict[str, Any]], None]] = {}
#: Step types whose handler reads nothing of the decoded output but whether there is one (``text_only``).
_TEXT_ONLY: set[str] = set()

if TYPE_CHECKING:  # module attributes from their first read on (__getattr__)
    VALIDATIONS: dict[str, Validation]
    STEP_ARGUMENTS: dict[str, Callable[[HostView], list[str] | None]]
    REPLY_HANDLERS: dict[str, Callable[[HostView, Any, dict[str, Any]], None]]
    TEXT_ONLY: set[str]


def __getattr__(name: str) -> Any:
    """A table's first read: every area is imported (their hooks registered), then the tables become plain
    module attributes, so later reads cost nothing more."""
    tables = {"VALIDATIONS": _VALIDATIONS, "STEP_ARGUMENTS": _STEP_ARGUMENTS, "REPLY_HANDLERS": _REPLY_HANDLERS,
              "TEXT_ONLY": _TEXT_ONLY}
    if name not in tables:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rules import load_areas

    load_areas()
    return tables[name]


def publish(area_order: tuple[str, ...]) -> None:
    """Called by :func:`rules.load_areas` once every area is imported: validations are put in the order of the
    areas (they are evaluated and shown in registration order, whichever area a process happened to import
    first) and the tables become module attributes."""
    rank = {module: i for i, module in enumerate(area_order)}
    ordered = sorted(_VALIDATIONS.items(), key=lambda kv: rank.get(kv[1].func.__module__, len(rank)))
    _VALIDATIONS.clear()
    _VALIDATIONS.update(ordered)
    globals().update(VALIDATIONS=_VALIDATIONS, STEP_ARGUMENTS=_STEP_ARGUMENTS, REPLY_HANDLERS=_REPLY_HANDLERS,
                     TEXT_ONLY=_TEXT_ONLY)


def published() -> bool:
    return "VALIDATIONS" in globals()


def registered_by(module: str) -> dict[str, Validation]:
    """The validations one area module registered, without importing the others (``agent check``)."""
    return {k: v for k, v in _VALIDATIONS.items() if v.func.__module__ == module}


def validation(
    id: str, category: str, *, blocking: bool = True, hardware_gate: bool = False, unbound: bool = False
) -> Callable[[Callable[[HostView], Outcome | None]], Callable[[HostView], Outcome | None]]:
    """Register a host validation; the function returns (status, message), or None when it does not apply."""

    def register(func: Callable[[HostView], Outcome | None]) -> Callable[[HostView], Outcome | None]:
        _VALIDATIONS[id] = Validation(id, category, func, blocking, hardware_gate, unbound)
        return func

    return register


def step_arguments(
    step_type: str,
) -> Callable[[Callable[[HostView], list[str] | None]], Callable[[HostView], list[str] | None]]:
    """Register how the arguments of a step are built for a host; returning None skips the step."""

    def register(func: Callable[[HostView], list[str] | None]) -> Callable[[HostView], list[str] | None]:
        _STEP_ARGUMENTS[step_type] = func
        return func

    return register


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
        _REPLY_HANDLERS[step_type] = func
        if text_only:
            _TEXT_ONLY.add(step_type)
        return func

    return register


def default_reply_handler(step_type: str, func: Callable[[HostView, Any, dict[str, Any]], None]) -> None:
    """A handler for a step type no area registers one for (an area's own wins, whichever is imported first)."""
    _REPLY_HANDLERS.setdefault(step_type, func)

"""Extension points of the rules: validations, step argument builders, reply handlers and derivers.

Everything that is about one area (hardware, network, pre-install checks, installation) lives in its own rules
module, and its decorators only *mark* the functions that are hooks (:func:`validation`, :func:`step_arguments`,
:func:`reply_handler`, ``documents.deriver``): importing an area fills no table. A :class:`Rulebook` collects
the marked functions of the areas it is given, in their order, into read-only tables; whoever evaluates hosts
owns one (the service's ``ReferenceService.rulebook``, the reply worker's, ``agent check``'s of the hardware
area alone), so two rulebooks never share anything a caller could change and no reader depends on which areas
some other code happened to import first.

The orchestrator derives a host's state from the rulebook's validations, builds the steps each state issues
(``states.STATE_STEPS``) with its argument builders, and applies replies with its handlers. Hooks receive a
:class:`~rules.documents.HostView`; reply handlers update ``view.host`` (and ``view.cluster``, which the
orchestrator then saves). Building a rulebook of one area imports only that area: ``agent inventory --format
table`` and ``agent check`` need the disk and hardware rules, not the ~0.1 s of CPU of all of them (issue 29).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, ModuleType
from typing import Any

from rules.documents import HOOK_MARK, HostView, Outcome

Builder = Callable[[HostView], list[str] | None]
Handler = Callable[[HostView, Any, dict[str, Any]], None]


class Validation:
    """A host validation. A plain class, not a dataclass: ``agent check`` would import dataclasses (with
    inspect, ast and dis) for it, a tenth of its CPU (issue 29)."""

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


def _mark(func: Any, hook: tuple[str, str, Any]) -> None:
    """Adds ``hook`` (kind, key, what) to the function's marks, which a :class:`Rulebook` reads."""
    func.__dict__[HOOK_MARK] = (*func.__dict__.get(HOOK_MARK, ()), hook)


def validation(
    id: str, category: str, *, blocking: bool = True, hardware_gate: bool = False, unbound: bool = False
) -> Callable[[Callable[[HostView], Outcome | None]], Callable[[HostView], Outcome | None]]:
    """Marks a host validation; the function returns (status, message), or None when it does not apply."""

    def mark(func: Callable[[HostView], Outcome | None]) -> Callable[[HostView], Outcome | None]:
        _mark(func, ("validation", id, Validation(id, category, func, blocking, hardware_gate, unbound)))
        return func

    return mark


def step_arguments(step_type: str) -> Callable[[Builder], Builder]:
    """Marks how the arguments of a step are built for a host; returning None skips the step."""

    def mark(func: Builder) -> Builder:
        _mark(func, ("step", step_type, func))
        return func

    return mark


#: What such a handler gets in place of the document for a reply a worker checked (``reply_workers``).
CHECKED: Any = object()


def reply_handler(step_type: str, *, text_only: bool = False) -> Callable[[Handler], Handler]:
    """Marks what a reply does to the host: ``func(view, parsed_output, reply)``; it updates ``view.host``.

    It is called for successful replies (exit code 0) with the output decoded, and for failed ones with
    ``parsed_output`` None, so a handler can record failures where the real service does. ``text_only``: the
    handler stores the output's text and reads nothing of the document; a big reply, checked and derived by a
    worker, then reaches it with :data:`CHECKED` instead, and the loop does not decode it (1 ms for a
    1,000-peer connectivity report, 150 of them at once at 1,000 hosts).
    """

    def mark(func: Handler) -> Handler:
        _mark(func, ("reply", step_type, text_only))
        return func

    return mark


def default_reply_handler(*step_types: str) -> Callable[[Handler], Handler]:
    """Marks a handler for step types no area of the rulebook has one of its own for (an area's own wins,
    whichever area comes first)."""

    def mark(func: Handler) -> Handler:
        for step_type in step_types:
            _mark(func, ("default-reply", step_type, None))
        return func

    return mark


def hooks(module: ModuleType) -> list[tuple[Any, tuple[str, str, Any]]]:
    """(function, mark) for every hook an area module defines, in the order its names were bound: a hook is a
    marked function bound to a name of the module it was defined in (one imported from another module is that
    module's, not this one's)."""
    found: list[tuple[Any, tuple[str, str, Any]]] = []
    seen: set[int] = set()
    for value in vars(module).values():
        marks = getattr(value, HOOK_MARK, None) if callable(value) else None
        if not marks or getattr(value, "__module__", None) != module.__name__ or id(value) in seen:
            continue
        seen.add(id(value))
        found += [(value, mark) for mark in marks]
    return found


class Rulebook:
    """The hooks of some rule areas, read-only: the validations in the order of the areas (they are evaluated
    and shown in that order) and, within an area, of their definitions; the step argument builders, reply
    handlers and derivers by step type or field. Built by whoever needs it (see the module docstring).

    ``validations``: id -> :class:`Validation`; ``step_arguments``: step type -> builder; ``reply_handlers``:
    step type -> handler; ``text_only``: step types whose handler reads no document (:func:`reply_handler`);
    ``derivers``: host field -> ((qualified name, function), ...) (``documents.deriver``)."""

    __slots__ = ("areas", "derivers", "reply_handlers", "step_arguments", "text_only", "validations")

    areas: tuple[str, ...]
    validations: Mapping[str, Validation]
    step_arguments: Mapping[str, Builder]
    reply_handlers: Mapping[str, Handler]
    text_only: frozenset[str]
    derivers: Mapping[str, tuple[tuple[str, Callable[[Any], Any]], ...]]

    def __init__(self, modules: Iterable[ModuleType]) -> None:
        modules = tuple(modules)
        validations: dict[str, Validation] = {}
        steps: dict[str, Builder] = {}
        handlers: dict[str, Handler] = {}
        defaults: dict[str, Handler] = {}
        text_only: set[str] = set()
        derivers: dict[str, dict[str, Callable[[Any], Any]]] = {}
        for module in modules:
            for func, (kind, key, what) in hooks(module):
                if kind == "validation":
                    _unique(validations, key, what, "validation")
                elif kind == "step":
                    _unique(steps, key, func, "argument builder of step")
                elif kind == "reply":
                    _unique(handlers, key, func, "reply handler of step")
                    if what:
                        text_only.add(key)
                elif kind == "default-reply":
                    defaults.setdefault(key, func)
                elif kind == "derive":
                    derivers.setdefault(key, {})[func.__qualname__] = func
        for key, func in defaults.items():
            handlers.setdefault(key, func)
        init = object.__setattr__
        init(self, "areas", tuple(m.__name__ for m in modules))
        init(self, "validations", MappingProxyType(validations))
        init(self, "step_arguments", MappingProxyType(steps))
        init(self, "reply_handlers", MappingProxyType(handlers))
        init(self, "text_only", frozenset(text_only))
        init(self, "derivers", MappingProxyType({k: tuple(v.items()) for k, v in derivers.items()}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a Rulebook is read-only ({name})")

    @classmethod
    def of(cls, *areas: str) -> Rulebook:
        """The rulebook of the named areas of this package (``"hardware"``, ...), in that order; with none,
        of every area (``rules.AREA_MODULES``)."""
        if not areas:
            from rules import AREA_MODULES

            areas = AREA_MODULES
        return cls(importlib.import_module(f"rules.{name}") for name in areas)

    def derive_all(self, name: str, decoded: Any) -> dict[str, Any]:
        """What every deriver of field ``name`` makes of its decoded value, by the deriver's qualified name
        (``ClusterModel.prime``)."""
        return {qualname: derive(decoded) for qualname, derive in self.derivers.get(name, ())}


def _unique(table: dict[str, Any], key: str, value: Any, what: str) -> None:
    """Two areas claiming one id or step type is a mistake the rulebook refuses, rather than one of them
    silently winning by import order."""
    if key in table:
        raise ValueError(f"{what} {key!r} is defined twice")
    table[key] = value

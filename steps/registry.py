"""Finds step plugins through the ``assisted_agent.steps`` entry-point group.

Listing the group reads package metadata only; a plugin's module is imported the first time its step runs,
and then in the step's child process, never in the daemon. Another package adds a step by declaring::

    [project.entry-points."assisted_agent.steps"]
    my-step = "mypkg.my_step:MyStep"
"""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from common.errors import StepError, UnknownStepType

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "assisted_agent.steps"


@lru_cache(maxsize=1)
def available() -> dict[str, EntryPoint]:
    """Step type -> entry point, for every installed plugin. The first distribution to claim a name wins."""
    from importlib.metadata import entry_points  # here: the fork server's steps are given their entry point

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def load(step_type: str, value: str | None = None) -> type[Any]:
    """The Step class for a wire step type; UnknownStepType when no plugin declares it.

    ``value`` is the plugin's entry point (``module:Class``) as the daemon found it: a forked step process loads
    it without reading every installed package's metadata again (importlib.metadata weighs 4 MiB in the fork
    server, which every step would otherwise share).
    """
    if value is None:
        ep = available().get(step_type)
        if ep is None:
            raise UnknownStepType(step_type)
        value = ep.value
    try:
        module, _, attr = value.partition(":")
        cls: Any = import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else []:
            cls = getattr(cls, part)
    except Exception as exc:  # a broken third-party plugin must become a reply, not a crash
        raise StepError(
            f"step plugin {value} for {step_type} failed to load: {type(exc).__name__}: {exc}",
            hint="reinstall the package that provides it, or remove it",
            code="step-plugin-broken",
        ) from exc
    declared = getattr(cls, "step_type", None)
    if declared != step_type:
        raise StepError(
            f"step plugin {value} declares step_type {declared!r} but is registered as {step_type!r}",
            code="step-plugin-broken",
        )
    return cls  # type: ignore[no-any-return]

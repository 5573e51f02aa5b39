"""Finds step plugins through the ``assisted_agent.steps`` entry-point group.

Listing the group reads package metadata only; a plugin's module is imported the first time its step runs,
and then in the step's child process, never in the daemon. Another package adds a step by declaring::

    [project.entry-points."assisted_agent.steps"]
    my-step = "mypkg.my_step:MyStep"
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from common.errors import StepError, UnknownStepType

GROUP = "assisted_agent.steps"


@lru_cache(maxsize=1)
def available() -> dict[str, EntryPoint]:
    """Step type -> entry point, for every installed plugin. The first distribution to claim a name wins."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def load(step_type: str) -> type[Any]:
    """The Step class for a wire step type; UnknownStepType when no plugin declares it."""
    ep = available().get(step_type)
    if ep is None:
        raise UnknownStepType(step_type)
    try:
        cls = ep.load()
    except Exception as exc:  # a broken third-party plugin must become a reply, not a crash
        raise StepError(
            f"step plugin {ep.value} for {step_type} failed to load: {type(exc).__name__}: {exc}",
            hint="reinstall the package that provides it, or remove it",
            code="step-plugin-broken",
        ) from exc
    declared = getattr(cls, "step_type", None)
    if declared != step_type:
        raise StepError(
            f"step plugin {ep.value} declares step_type {declared!r} but is registered as {step_type!r}",
            code="step-plugin-broken",
        )
    return cls  # type: ignore[no-any-return]

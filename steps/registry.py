"""Finds step plugins through the ``assisted_agent.steps`` entry-point group.

Listing the group reads package metadata only; a plugin's module is imported the first time its step runs,
and then in the step's child process, never in the daemon. Another package adds a step by declaring::

    [project.entry-points."assisted_agent.steps"]
    my-step = "mypkg.my_step:MyStep"
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from importlib import import_module
from importlib.machinery import PathFinder
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


@lru_cache(maxsize=1)
def declared() -> dict[str, str]:
    """Step type -> entry point value (``module:Class``), the same as :func:`available` gives, for the daemon.

    Why not :func:`available`: importing importlib.metadata (email, zipfile, csv...) costs about 0.06 s of
    CPU, the scan of every installed package's metadata as much again; the daemon's first step waited on it
    (0.4 to 1 s at load 14 on 2 cores, where the Go agent answers an unknown step type within milliseconds of
    the poll). This reads the ``entry_points.txt`` files directly, following importlib.metadata's rules: the
    ``sys.path`` entries in order, ``*.dist-info`` and ``*.egg-info`` directories in each, a project (its
    normalised name) taken from the first entry that has it, and the first project that claims a name wins.
    Where those rules do not cover the layout (a zip file or an ``.egg`` on the path, another finder of
    distributions) it asks importlib.metadata.
    """
    found: dict[str, str] = {}
    seen: set[str] = set()
    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        return {name: ep.value for name, ep in available().items()}
    for entry in sys.path:
        if os.path.basename(entry).lower().endswith(".egg"):
            return {name: ep.value for name, ep in available().items()}
        try:
            children = os.listdir(entry or ".")
        except NotADirectoryError:
            return {name: ep.value for name, ep in available().items()}
        except OSError:  # a missing or unreadable directory has no distributions for importlib.metadata either
            continue
        projects: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                project = _normalize(low.rpartition(".")[0].partition("-")[0])
                projects.setdefault(project, []).append(child)
        for project, infos in projects.items():
            if project in seen:
                continue
            seen.add(project)
            for name, value in _group_entries(os.path.join(entry or ".", infos[0], "entry_points.txt")):
                found.setdefault(name, value)
    return found


def _normalize(name: str) -> str:
    """importlib.metadata's Prepared.normalize: runs of ``-_.`` become one ``_``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _group_entries(path: str) -> list[tuple[str, str]]:
    """The ``name = value`` pairs of this registry's group in one entry_points.txt, parsed as importlib.metadata
    parses it (sections in brackets, blank lines and ``#`` comments skipped, the first ``=`` splits)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    pairs: list[tuple[str, str]] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == GROUP and "=" in line:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


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

"""A method or function wrapped for a test so that each call is noted before the real one runs: how tests count
evaluations, loads and views without changing what the code under test does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def noted_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, note: Callable[..., T]) -> list[T]:
    """The list ``note(*args, **kwargs)`` is appended to at each call of ``owner.name`` (then the real one runs
    with the same arguments), from now until the test ends; ``owner.name`` is the wrapper meanwhile."""
    noted: list[T] = []
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        noted.append(note(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return noted

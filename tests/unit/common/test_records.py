"""common.records' NamedTuple makes the class typing.NamedTuple makes, without importing typing."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import typing

import pytest

from common.records import NamedTuple


class Pair(NamedTuple):
    """A record of ours."""

    name: str
    values: dict[str, typing.Any]
    size: int = 1
    tags: tuple[str, ...] = ()

    @property
    def doubled(self) -> int:
        return self.size * 2

    def describe(self) -> str:
        return f"{self.name}={self.size}"

    @classmethod
    def of(cls, name: str) -> Pair:
        return cls(name, {})


class TypingPair(typing.NamedTuple):
    """The same record by typing."""

    name: str
    values: dict[str, typing.Any]
    size: int = 1
    tags: tuple[str, ...] = ()


def test_a_record_is_the_namedtuple_typing_makes() -> None:
    ours, theirs = Pair("a", {"k": 1}), TypingPair("a", {"k": 1})
    assert tuple(ours) == tuple(theirs) == ("a", {"k": 1}, 1, ())
    assert Pair._fields == TypingPair._fields
    assert Pair._field_defaults == TypingPair._field_defaults == {"size": 1, "tags": ()}
    assert list(Pair.__annotations__) == list(TypingPair.__annotations__)
    assert isinstance(ours, tuple) and type(ours).__mro__[1:] == (tuple, object)
    assert ours._replace(size=3) == Pair("a", {"k": 1}, 3)
    assert ours._asdict() == theirs._asdict()
    assert Pair._make(["b", {}, 2, ("x",)]).tags == ("x",)
    assert repr(ours) == "Pair(name='a', values={'k': 1}, size=1, tags=())"
    assert (Pair.__module__, Pair.__qualname__, Pair.__doc__) == (__name__, "Pair", "A record of ours.")
    assert (ours.doubled, ours.describe(), Pair.of("z")) == (2, "a=1", Pair("z", {}))
    assert pickle.loads(pickle.dumps(ours)) == ours
    with pytest.raises(AttributeError):
        ours.size = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Pair("only a name")  # type: ignore[call-arg]


def test_what_typing_refuses_it_refuses() -> None:
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(NamedTuple):
            first: int = 0
            second: int  # type: ignore[misc]

    with pytest.raises(AttributeError, match="_replace"):
        class Overwrites(NamedTuple):
            first: int

            def _replace(self, **kw: object) -> Overwrites:  # type: ignore[misc]
                return self


def test_declaring_records_imports_no_typing() -> None:
    code = ("from common.records import NamedTuple\n"
            "class R(NamedTuple):\n    a: 'int'\n    b: 'dict[str, Any]' = {}\n"
            "import sys, json\nprint(json.dumps([R(1).b, 'typing' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == [{}, False]

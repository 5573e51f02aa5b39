"""``NamedTuple`` without the typing module, for the records the daemon makes on its way to the first register.

Why: ``import typing`` costs 7 to 10 ms of CPU under load (it is large, and makes dozens of generic aliases at
import), and the agent's way to its first register needed it for nothing but ``class X(NamedTuple)`` (issue 27:
every millisecond there is many on a loaded machine, where the Go suite allows one second). A record declared
with the ``NamedTuple`` here is the same class typing would make: ``collections.namedtuple`` of the annotated
fields, with the class body's defaults, methods, properties and docstring. Type checkers see
``typing.NamedTuple`` itself, so nothing is lost to them. Unlike typing's, the annotations are never evaluated
nor compiled: a module declaring records may use ``from __future__ import annotations`` (typing compiles every
string annotation of a NamedTuple's fields, about 0.3 ms each).

The idiom ``TYPE_CHECKING = False`` / ``if TYPE_CHECKING:`` in the modules of that way stands for
``typing.TYPE_CHECKING``: mypy takes any name ``TYPE_CHECKING`` as true.
"""

import collections

TYPE_CHECKING = False

#: What a class body holds that is not the record's to copy: namedtuple makes its own.
_NOT_COPIED = frozenset({"__module__", "__qualname__", "__annotations__", "__dict__", "__weakref__", "__classcell__"})
#: What namedtuple makes and a record's body must not replace (as typing refuses it).
_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make",
                         "_replace", "_asdict"})

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:

    class _RecordMaker(type):
        """Turns ``class X(NamedTuple): ...`` into ``collections.namedtuple("X", fields, defaults=...)`` plus the
        body's other attributes."""

        def __new__(mcs, name, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcs, name, bases, namespace)
            if bases != (NamedTuple,):
                raise TypeError(f"{name}: a record derives from NamedTuple alone")
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f not in namespace for f in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            record = collections.namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            record.__qualname__ = namespace.get("__qualname__", name)
            record.__annotations__ = dict(namespace.get("__annotations__", {}))
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"{name}: cannot overwrite NamedTuple attribute {key}")
                if key not in _NOT_COPIED and key not in fields:
                    setattr(record, key, value)
            return record

    class NamedTuple(metaclass=_RecordMaker):
        """The base of a record: ``class X(NamedTuple):`` with annotated fields (see the module's docstring)."""

"""The row of a program's settings table (agent.settings, reference_service.settings): one setting declared once,
with its flag, its file key, its environment variable, its default, its type and its help, so that the parser,
``--help``, the resolution and docs/settings.md are all made from one place. Standard library only: both programs'
start-up imports it, which is why a row is a NamedTuple, not a dataclass (dataclasses and what it imports cost
about a fifth of the agent's CPU before its first register: issue 29, docs/agent-cost.md)."""

from __future__ import annotations  # the records are common.records': their annotations are never evaluated

from collections.abc import Iterable

from common.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from typing import Any


class Setting(NamedTuple):
    """One setting. ``name`` is its field in the program's settings object; ``where`` says which command lines
    take its flag (the agent: ``all`` for the daemon and ``agent step``, ``daemon`` for the daemon only)."""

    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    key: str | None = None
    env: str | None = None
    where: str = "all"
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    complete: str = ""  # "file" or "dir": what shell completion offers for the flag's value
    #: An empty value means the default (a flag or key given as ""); False where "" is a value of its own.
    empty_is_default: bool = True

    @property
    def dest(self) -> str:
        """The flag's attribute in a parsed command line."""
        return (self.flag or "").lstrip("-").replace("-", "_")

    def default_shown(self) -> str:
        """`` (default X)`` for --help, or "" when the default says nothing (empty, off, none)."""
        if self.default in ("", None, False, (), frozenset()):
            return ""
        return f" (default {self.default:g})" if self.type is float else f" (default {self.default})"


def markdown(table: Iterable[Setting], *, file_column: str = "") -> str:
    """A table of the settings for docs/settings.md (``file_column``: the heading of the file keys' column)."""
    head = ["setting", "flag", *([file_column] if file_column else []), "environment", "default", "type",
            "what it does"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in table:
        cells = [s.name, s.flag or "", *([s.key or ""] if file_column else []), s.env or "",
                 '""' if s.default == "" else repr(s.default)]
        shown = [f"`{c}`" if c else "" for c in cells]
        rows.append("| " + " | ".join([*shown, s.type.__name__, s.help]) + " |")
    return "\n".join(rows) + "\n"

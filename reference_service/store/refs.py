"""Host fields that hold a step reply's output verbatim: kept as handles to the reply (``stored_text``), written
to the host's row as a reference to it, and read back as handles.

The reply is in the ``replies`` table before it is acknowledged, so writing its text again with every save of
the host doubled the bytes the service wrote (and the WAL it grew) for nothing, and keeping it in the host
document held every host's 330 KB report in memory at 1,000 hosts. A row keeps ``{"$reply": [step type, step
id]}`` in place of such a field.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from rules.stored_text import StoredText

#: Outputs smaller than this are copied into the document as text: a reference would save nothing.
MIN_TEXT = 4096
#: Outputs at least this big are let go of once their reply is committed, and read back from it when needed
#: (the rules' ``documents`` module does not remember decoded texts this big either).
SPILL = 64 << 10
MARK = "$reply"

Loader = Callable[[StoredText], str]


def handle(host_id: str, reply: dict[str, Any], load: Loader) -> Any:
    """What a host field copying ``reply``'s output holds: the output itself when it is small, else a handle."""
    output, step_type, step_id = reply.get("output"), reply.get("step_type"), reply.get("step_id")
    if not (isinstance(output, str) and len(output) >= MIN_TEXT and isinstance(step_type, str)
            and isinstance(step_id, str)):
        return output
    return StoredText(host_id, step_type, step_id, len(output), output, load)


def row(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as its row stores it: handles become references."""
    if not any(isinstance(v, StoredText) for v in doc.values()):
        return doc
    return {k: {MARK: [v.step_type, v.step_id]} if isinstance(v, StoredText) else v for k, v in doc.items()}


def resolve(db: sqlite3.Connection, doc: dict[str, Any], load: Loader, spill: bool) -> dict[str, Any]:
    """A loaded row with its references made handles again, holding their text unless it is big and
    ``spill``; a field whose reply is gone is left out, as if never reported."""
    for name, value in list(doc.items()):
        if isinstance(value, dict) and set(value) == {MARK}:
            step_type, step_id = value[MARK]
            found = db.execute("SELECT length(output), CASE WHEN length(output) < ? THEN output END FROM replies"
                               " WHERE host_id = ? AND step_type = ? AND step_id = ? ORDER BY seq DESC LIMIT 1",
                               (SPILL if spill else 1 << 62, doc.get("id"), step_type, step_id)).fetchone()
            if found is None:
                del doc[name]
            else:
                doc[name] = StoredText(str(doc.get("id")), step_type, step_id, int(found[0] or 0), found[1], load)
    return doc

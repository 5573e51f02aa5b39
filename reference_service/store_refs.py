"""Host rows that point at the step reply a field was copied from, instead of holding its text again.

A host's ``connectivity`` is its last connectivity-check reply's output, verbatim: 330 KB at 1,000 hosts.
The reply is stored in the ``replies`` table before it is acknowledged, so writing the same text again with
every save of the host doubled the bytes the service wrote (and the WAL it grew) for nothing. A row keeps
``{"$reply": [step type, step id]}`` in place of a field whose value *is* (the same object as) a reply
output the store took for that host; loading the row puts the text back from the reply.
"""

from __future__ import annotations

import sqlite3
from typing import Any

#: Outputs smaller than this are copied into the row as before: a reference would save nothing.
MIN_TEXT = 4096
MARK = "$reply"

#: (infra-env id, host id) -> id(output) -> (step type, step id, output): the outputs the store took last.
Outputs = dict[tuple[str, str], dict[int, tuple[str, str, str]]]


def remember(outputs: Outputs, key: tuple[str, str], reply: dict[str, Any]) -> None:
    """Note a reply's output as the text a field of the host may now hold (the last one of each step type)."""
    output, step_type, step_id = reply.get("output"), reply.get("step_type"), reply.get("step_id")
    if not (isinstance(output, str) and len(output) >= MIN_TEXT and isinstance(step_type, str)
            and isinstance(step_id, str)):
        return
    mine = outputs.setdefault(key, {})
    for old in [k for k, (t, _, _) in mine.items() if t == step_type]:
        del mine[old]
    mine[id(output)] = (step_type, step_id, output)


def row(outputs: Outputs, key: tuple[str, str], doc: dict[str, Any]) -> dict[str, Any]:
    """The document as its row stores it: fields holding a remembered output become references."""
    mine = outputs.get(key)
    if not mine:
        return doc
    out = None
    for name, value in doc.items():
        found = mine.get(id(value))
        if found is not None and found[2] is value:
            out = out if out is not None else dict(doc)
            out[name] = {MARK: [found[0], found[1]]}
    return out if out is not None else doc


def resolve(db: sqlite3.Connection, doc: dict[str, Any]) -> dict[str, Any]:
    """A loaded row with its references replaced by the replies' outputs (a field whose reply is gone is
    left out, as if never reported)."""
    for name, value in list(doc.items()):
        if isinstance(value, dict) and set(value) == {MARK}:
            step_type, step_id = value[MARK]
            found = db.execute("SELECT output FROM replies WHERE host_id = ? AND step_type = ? AND step_id = ?"
                               " ORDER BY seq DESC LIMIT 1", (doc.get("id"), step_type, step_id)).fetchone()
            if found is None:
                del doc[name]
            else:
                doc[name] = found[0]
    return doc

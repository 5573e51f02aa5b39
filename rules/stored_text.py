"""A host field that holds a step reply's output verbatim, kept as a handle to that reply rather than as text.

A host's ``connectivity`` is its last connectivity-check reply's output: 330 KB at 1,000 hosts. The reply is in
the ``replies`` table before it is acknowledged, so a host document need not hold the text as well: holding it
took the service from 195 MiB to 577 MiB in ten minutes at 1,000 hosts, as every host reported in turn. A
handle is what the store keeps instead (``Store.keep_text``); its text is read back from the reply when a
rule or the API needs it, which the rules avoid by deriving what they need when the reply comes in
(``rules.cluster_model.ClusterModel.prime``).

Handles compare equal when they name the same reply, so documents holding them compare as before; their text
never changes. This module depends on nothing, so the rules read handles without seeing the store.
"""

from __future__ import annotations

from collections.abc import Callable


class StoredText:
    __slots__ = ("_load", "_text", "host_id", "size", "step_id", "step_type")

    def __init__(self, host_id: str, step_type: str, step_id: str, size: int, text: str | None,
                 load: Callable[[StoredText], str]) -> None:
        self.host_id, self.step_type, self.step_id, self.size = host_id, step_type, step_id, size
        #: The text itself while the store holds it (a small one; a big one until its reply was committed).
        self._text = text
        self._load = load

    def text(self) -> str:
        held = self._text
        return held if held is not None else self._load(self)

    def release(self) -> None:
        """Forget the text: from now on it is read from the reply (which must be committed)."""
        self._text = None

    @property
    def held(self) -> bool:
        return self._text is not None

    def _ident(self) -> tuple[str, str, str]:
        return self.host_id, self.step_type, self.step_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredText) and self._ident() == other._ident()

    def __hash__(self) -> int:
        return hash(self._ident())

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        return f"StoredText({self.step_type} {self.step_id} of host {self.host_id}, {self.size} characters)"


def text_of(value: object) -> object:
    """The value with a handle replaced by its text (what the API shows)."""
    return value.text() if isinstance(value, StoredText) else value

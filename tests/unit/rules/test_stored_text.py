"""rules.stored_text: a handle to a reply's output compares as the reply it names, reads its text back only when
it no longer holds it, and is empty when the output was."""

from __future__ import annotations

from rules.stored_text import StoredText, text_of


def test_a_handle_reads_its_text_back_once_released() -> None:
    loads: list[StoredText] = []

    def load(handle: StoredText) -> str:
        loads.append(handle)
        return "from the reply"

    handle = StoredText("h", "connectivity-check", "cc-1", 14, "held text", load)
    assert handle.held and handle.text() == "held text" and loads == []
    handle.release()
    assert not handle.held and handle.text() == "from the reply" and loads == [handle]
    assert text_of(handle) == "from the reply" and text_of("plain") == "plain"


def test_handles_compare_by_the_reply_they_name() -> None:
    a = StoredText("h", "connectivity-check", "cc-1", 10, "x", lambda _: "")
    b = StoredText("h", "connectivity-check", "cc-1", 10, None, lambda _: "")
    c = StoredText("h", "connectivity-check", "cc-2", 10, "x", lambda _: "")
    assert a == b and hash(a) == hash(b) and a != c
    assert {"connectivity": a} == {"connectivity": b}  # documents holding them compare as before
    assert not StoredText("h", "inventory", "i-1", 0, "", lambda _: "")  # an empty output is falsy, as "" is

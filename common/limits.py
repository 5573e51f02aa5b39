"""Every bound the agent keeps on what it holds, sends and writes, each with its reason.

Anything that comes from the service or the network can be arbitrarily large; these caps keep one bad answer
from becoming a huge log line, a huge reply POST or a huge history file. ``clip`` is how a text is cut: the
head is kept and the cut is said in words, so a reader knows it is not the whole text.
"""

from __future__ import annotations

#: A poll or register answer larger than this is refused unread. Real instructions are a few KiB; an install
#: instruction with its arguments stays well under 1 MiB. 64 MiB leaves room for any sane service.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: Instructions acted on from one poll; the real service sends about ten. The rest get a reply saying why.
MAX_INSTRUCTIONS_PER_POLL = 100
#: ``next_instruction_seconds`` beyond this is taken as this: a service typo must not freeze the agent for days.
MAX_NEXT_INSTRUCTION_SECONDS = 600.0
#: A reply's ``error`` text: enough for any real message and its hint, never a copy of a huge argument.
MAX_ERROR_CHARS = 4096
#: A reply's ``output``. The service caps inventory at ``--output-max-size`` (the inventory step trims to it);
#: every other step's output is a few KiB. 8 MiB is above the largest inventory the service stores by default.
MAX_OUTPUT_BYTES = 8 * 1024 * 1024
#: One log line (journald's own line limit is 48 KiB; longer lines are split and become unreadable).
MAX_LOG_CHARS = 16 * 1024
#: The step history file is rotated (to ``history.jsonl.1``) past this size, so at most twice it is on disk.
HISTORY_MAX_BYTES = 2 * 1024 * 1024
#: One history entry's ``output``: logs-gather wants recent results, not every byte of an inventory.
HISTORY_MAX_OUTPUT_CHARS = 64 * 1024
#: Replies kept for delivery while the service is unreachable; the oldest is dropped beyond this.
MAX_PENDING_REPLIES = 100
#: Runs of one step type kept at once (one running, the others queued after it); see agent.dispatch.
MAX_RUNS_PER_TYPE = 3
#: Back-off exponents stop growing here: ``interval * 2**attempts`` overflows a float after ~1000 attempts.
MAX_BACKOFF_EXPONENT = 16


def clip(text: str, limit: int) -> str:
    """``text`` if it fits, else its head and a note of how much was cut (the result fits ``limit``)."""
    if len(text) <= limit:
        return text
    note = f"... [{len(text) - limit} more characters cut by the agent]"
    return text[: max(0, limit - len(note))] + note


def backoff(initial: float, attempts: int, maximum: float) -> float:
    """``initial * 2**attempts`` capped at ``maximum``, computed without ever growing past the cap."""
    return min(initial * 2.0 ** min(max(attempts, 0), MAX_BACKOFF_EXPONENT), maximum)
#: The Go agent's delayOnError: a register answer whose runner command is unusable is tried again after its
#: ``retry_seconds``, or after an hour when it has none (src/agent/agent.go; common.answers).
DEFAULT_DELAY_ON_ERROR = 3600.0

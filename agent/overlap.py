"""What the agent answers when an instruction arrives while a run of the same step type is still going.

Every instruction gets exactly one reply (docs/step-overlap.md has the table and the reasons). Per step type:

- ``JOIN`` (the default): an instruction with the same arguments as a run already started or queued gets that
  run's result under its own step id; one with other arguments is queued to run after the current one.
- ``IDLE``: the Go agent's re-entrancy guard answers at once with exit 0 and no result (free-addresses and the
  disk speed check through ``podman ps``, image availability and upgrade-agent through a semaphore).
- ``REFUSE``: a second concurrent run would do harm (a second installer, a second writer on the disk, a
  second ``logs-sender`` container); the reply is exit -1 saying the first is still running.

Bad arguments are answered exit -1 with the step's own message in every case, before the policy applies.
"""

from __future__ import annotations

import enum
import json

from agent.runner import Reply


class Overlap(enum.Enum):
    JOIN = "join"
    IDLE = "idle"
    REFUSE = "refuse"


POLICY: dict[str, Overlap] = {
    "free-network-addresses": Overlap.IDLE,
    "installation-disk-speed-check": Overlap.IDLE,
    "container-image-availability": Overlap.IDLE,
    "upgrade-agent": Overlap.IDLE,
    "install": Overlap.REFUSE,
    "write-image": Overlap.REFUSE,
    "logs-gather": Overlap.REFUSE,
}


def policy(step_type: str) -> Overlap:
    return POLICY.get(step_type, Overlap.JOIN)


def busy_reply(step_type: str, step_id: str, args: tuple[str, ...], running_id: str) -> Reply:
    """The answer of an IDLE or REFUSE step type to an instruction that overlaps the run ``running_id``."""
    if policy(step_type) is Overlap.REFUSE:
        return Reply(step_id, step_type, -1, "",
                     f"{step_type} is already running (step {running_id}); this instruction was not run, "
                     "because two concurrent runs would interfere")
    if step_type == "upgrade-agent":
        # The Go agent's semaphore leaves `result` empty and keeps the image it was asked for.
        return Reply(step_id, step_type, 0, json.dumps({"agent_image": _agent_image(args)}, separators=(",", ":")))
    return Reply(step_id, step_type, 0, "", "")


def _agent_image(args: tuple[str, ...]) -> str:
    try:
        request = json.loads(args[0]) if args else {}
    except ValueError:
        return ""
    image = request.get("agent_image") if isinstance(request, dict) else None
    return image if isinstance(image, str) else ""

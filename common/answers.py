"""What the service answers, checked before the daemon acts on it (pure functions, no I/O).

Between the agent and the service there may be proxies, load balancers and captive portals: an answer may be an
HTML error page served with status 200, a JSON list, a number where a string belongs. A poll answer whose shape
is wrong is refused whole (:class:`~common.errors.MalformedAnswer`: the daemon logs it and backs off as for a
network error, which is what the Go agent's failed unmarshal amounts to). Inside a well-formed answer, one bad
instruction spoils only itself: it becomes a :class:`BadInstruction`, answered with a reply that says why.

The records are NamedTuples and UUIDs are checked as text: ``dataclasses`` and ``uuid`` cost more CPU than the
rest of the way from the register answer to the first poll (issue 29).
"""

from __future__ import annotations  # the records are common.records': their annotations are never evaluated

import json
import math
import re

from common.errors import MalformedAnswer
from common.limits import DEFAULT_DELAY_ON_ERROR, MAX_INSTRUCTIONS_PER_POLL, MAX_NEXT_INSTRUCTION_SECONDS, clip
from common.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records): the first poll loads no typing
if TYPE_CHECKING:
    from typing import Any

#: How much of an unexpected answer is quoted in a message: enough to recognise a proxy's page.
QUOTE_CHARS = 120


class Instruction(NamedTuple):
    step_type: str
    step_id: str
    args: tuple[str, ...]


class BadInstruction(NamedTuple):
    """An instruction the agent cannot run; ``step_id`` is empty when it had none to answer to."""

    step_type: str
    step_id: str
    reason: str


class Steps(NamedTuple):
    instructions: tuple[Instruction | BadInstruction, ...]
    next_instruction_seconds: float
    exit: bool


def describe(value: Any) -> str:
    """A value's JSON type and a short quote of it, for messages that say what came instead."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    kind = kinds.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)
    try:
        quoted = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        quoted = repr(value)
    return f"{kind} ({clip(quoted, QUOTE_CHARS)})"


def decode_json(raw: bytes, content_type: str, what: str, url: str) -> Any:
    """The JSON document in an answer body, or MalformedAnswer saying what came instead."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        text = raw[:QUOTE_CHARS].decode("utf-8", "replace")
        shown = " ".join(text.split())
        raise MalformedAnswer(
            f"expected {what} as JSON from {url}, got {len(raw)} bytes of {content_type or 'no content type'}"
            f" that are not JSON: {shown!r}",
            hint="a proxy or load balancer between the agent and the service may be answering; check --url "
                 "and the proxy variables",
        ) from None


def parse_steps(body: Any, url: str) -> Steps:
    """A poll answer (the spec's Steps) checked field by field."""
    if not isinstance(body, dict):
        raise MalformedAnswer(f"expected a Steps object from {url}, got {describe(body)}")
    raw = body.get("instructions")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise MalformedAnswer(f"expected 'instructions' to be a list in the answer of {url}, got {describe(raw)}")
    seconds = body.get("next_instruction_seconds")
    if seconds is None:
        seconds = 0
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise MalformedAnswer(
            f"expected 'next_instruction_seconds' to be a number in the answer of {url}, got {describe(seconds)}")
    action = body.get("post_step_action")
    if action is not None and not isinstance(action, str):
        raise MalformedAnswer(f"expected 'post_step_action' to be a string in the answer of {url}, "
                              f"got {describe(action)}")
    instructions = [parse_instruction(item) for item in raw[:MAX_INSTRUCTIONS_PER_POLL]]
    for item in raw[MAX_INSTRUCTIONS_PER_POLL:]:
        bad = parse_instruction(item)
        instructions.append(BadInstruction(
            bad.step_type, bad.step_id,
            f"not run: the answer held {len(raw)} instructions, the agent runs at most "
            f"{MAX_INSTRUCTIONS_PER_POLL} from one poll"))
    return Steps(tuple(instructions), min(max(0.0, float(seconds)), MAX_NEXT_INSTRUCTION_SECONDS),
                 action == "exit")


def parse_instruction(item: Any) -> Instruction | BadInstruction:
    """One instruction (the spec's Step). ``args`` elements that are not strings are passed on as JSON text,
    as the service's own instructions sometimes nest a document where a string is declared."""
    if not isinstance(item, dict):
        return BadInstruction("", "", f"an instruction must be an object, got {describe(item)}")
    step_id, step_type = item.get("step_id"), item.get("step_type")
    reply_id = step_id if isinstance(step_id, str) else ""
    reply_type = step_type if isinstance(step_type, str) else ""
    if step_id is not None and not isinstance(step_id, str):
        return BadInstruction(reply_type, "", f"'step_id' must be a string, got {describe(step_id)}")
    if not isinstance(step_type, str) or not step_type:
        return BadInstruction(reply_type, reply_id, f"'step_type' must be a non-empty string, got "
                                                    f"{describe(step_type)}")
    args = item.get("args")
    if args is None:
        args = []
    if not isinstance(args, list):
        return BadInstruction(step_type, reply_id, f"{step_type}: 'args' must be a list of strings, got "
                                                   f"{describe(args)}")
    return Instruction(step_type, reply_id, tuple(a if isinstance(a, str) else json.dumps(a) for a in args))


def parse_registration(body: Any, url: str) -> dict[str, Any]:
    """A register answer (the spec's HostRegistrationResponse); only its shape matters to the agent."""
    if not isinstance(body, dict):
        raise MalformedAnswer(f"expected a HostRegistrationResponse object from {url}, got {describe(body)}")
    return body


#: A ``retry_seconds`` beyond this is taken as this: a service typo must not park a host for years.
MAX_DELAY_ON_ERROR = 24 * 3600.0
#: NextStepCmdRequest.agent_version's pattern in the service's swagger (go-openapi checks it the same way).
_AGENT_VERSION = re.compile(r"(([a-zA-Z0-9\-.]+)(:[0-9]+)?/)?[a-z0-9._\-/@]+[?::a-zA-Z0-9_\-.]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: A runner command's args[0] longer than this is not read (a real one is about 200 characters).
MAX_RUNNER_ARG_CHARS = 65536


class RunnerRequest(NamedTuple):
    """The register answer's NextStepCmdRequest (``next_step_runner_command.args[0]``), validated."""

    agent_version: str
    host_id: str
    infra_env_id: str


def parse_runner_command(response: Any) -> tuple[RunnerRequest | None, float, str]:
    """(request, or None; the delay before registering again when None; why None).

    As the Go agent's loop: no ``next_step_runner_command`` at all is "Incompatible server version" (an hour);
    one whose ``args`` is not exactly one valid NextStepCmdRequest waits ``retry_seconds`` (an hour when absent
    or not positive). In both cases the agent registers again without polling. Never raises."""
    command = response.get("next_step_runner_command") if isinstance(response, dict) else None
    if not isinstance(command, dict):
        return None, DEFAULT_DELAY_ON_ERROR, "Incompatible server version: the answer has no next_step_runner_command"
    retry = command.get("retry_seconds")
    delay = DEFAULT_DELAY_ON_ERROR
    if isinstance(retry, int | float) and not isinstance(retry, bool) and math.isfinite(retry) and retry > 0:
        delay = min(float(retry), MAX_DELAY_ON_ERROR)
    args = command.get("args")
    if not isinstance(args, list) or len(args) != 1:
        shown = clip(json.dumps(args), QUOTE_CHARS) if args is not None else "[]"
        return None, delay, f"next step runner cmd accepts 1 params in args, given args {shown}"
    if not isinstance(args[0], str) or len(args[0]) > MAX_RUNNER_ARG_CHARS:
        return None, delay, f"next_step_runner_command.args[0] must be a JSON string, got {describe(args[0])}"
    try:
        fields = json.loads(args[0])
    except (ValueError, RecursionError):
        return None, delay, f"next_step_runner_command.args[0] is not JSON: {clip(args[0], QUOTE_CHARS)!r}"
    if not isinstance(fields, dict):
        return None, delay, f"next_step_runner_command.args[0] must be a JSON object, got {describe(fields)}"
    problems = []
    image = fields.get("agent_version")
    if not isinstance(image, str) or not image:
        problems.append("agent_version in body is required")
    elif not _AGENT_VERSION.fullmatch(image):
        problems.append(f"agent_version in body should match '{_AGENT_VERSION.pattern}'")
    ids = []
    for name in ("host_id", "infra_env_id"):
        value = fields.get(name)
        # the canonical form, as str(uuid.UUID(value)) would give it
        ids.append(value.lower() if isinstance(value, str) and _UUID.fullmatch(value) else "")
        if not value:
            problems.append(f"{name} in body is required")
        elif not ids[-1]:
            problems.append(f"{name} in body must be of type uuid: {clip(json.dumps(value), QUOTE_CHARS)}")
    if problems:
        return None, delay, "validation failure list:\n" + "\n".join(problems)
    return RunnerRequest(str(image), ids[0], ids[1]), delay, ""

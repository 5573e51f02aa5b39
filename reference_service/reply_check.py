"""A step reply checked before anything of it is stored: against the spec's ``step-reply``, and its output parsed
and checked against the step's model. Pure (no store, no state), so that a large reply is checked in a worker
thread while other requests are served."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from common import json_codec
from common.errors import ServiceRefusal
from reference_service import spec

#: Steps whose output is parsed and checked even when they failed: it says what failed.
CHECKED_WHEN_FAILED = ("installation-disk-speed-check", "container-image-availability")


@dataclass(frozen=True)
class Derived:
    """What a reply worker derived from a reply's output for the rules, so that the loop does not."""

    #: Per host field the reply sets, per deriver (``registry.Rulebook.derive_all``), its value.
    fields: dict[str, dict[str, Any]]
    #: A connectivity report's ``majority.reached`` over the host's machine CIDRs, with their names.
    reach: tuple[tuple[str, ...], dict[str, int]] | None = None


@functools.lru_cache(maxsize=1)
def step_types() -> frozenset[str]:
    return frozenset(spec.load_spec()["definitions"]["step-type"]["enum"])


def check_reply(reply: Any, *, test_mode: bool) -> Any:
    """The reply's parsed output (None when there is none to parse), or ServiceRefusal(400) saying why."""
    checked = reply
    if test_mode and isinstance(reply, dict) and reply.get("step_type") not in step_types():
        checked = {**reply, "step_type": "execute"}  # test mode accepts third-party step types
    problems = spec.errors("step-reply", checked)
    if problems:
        raise ServiceRefusal(400, "; ".join(problems))
    parsed = parsed_output(reply)
    model = _model(reply)
    if model is not None:
        problems = spec.errors(model, parsed)
        if problems:
            raise ServiceRefusal(400, f"Failed to validate {reply.get('step_type', '')} output: "
                                      f"{'; '.join(problems[:5])}")
    return parsed


def _model(reply: dict[str, Any]) -> str | None:
    """The spec definition the reply's output must match, when it is to be checked."""
    step_type = reply.get("step_type", "")
    model = spec.STEP_OUTPUT_MODELS.get(step_type)
    exit_code = int(reply.get("exit_code") or 0)
    if model and reply.get("output") and (exit_code == 0 or step_type in CHECKED_WHEN_FAILED):
        return model
    return None


def parsed_output(reply: dict[str, Any]) -> Any:
    """The output of a reply that passed the ``step-reply`` check, decoded as ``check_reply`` returns it
    (ServiceRefusal(400) when a modelled output is not JSON); the model check is ``check_reply``'s."""
    output = reply.get("output") or ""
    if _model(reply) is not None:
        try:
            return json_codec.loads(output)
        except (ValueError, RecursionError) as exc:
            raise ServiceRefusal(400, f"Failed to decode {reply.get('step_type', '')} output: "
                                      f"{str(exc)[:200]}") from exc
    if output and int(reply.get("exit_code") or 0) == 0:
        try:
            return json.loads(output)
        except (ValueError, RecursionError):
            return output
    return None

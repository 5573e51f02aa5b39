"""podman's command line as every caller here builds it, and the image references it may be given.

The agent's launcher (agent.launcher) and the steps that pull or run images (container-image-availability,
upgrade-agent, install) share these: a reference from the service reaches podman's argument list only after
:func:`check_reference`, and the ``podman_args`` setting (``AGENT_PODMAN_ARGS``, storage options of a test host)
is added in one place.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from common.errors import InvalidStepArguments
from common.host import CommandResult

#: [registry[:port]/]path[:tag][@digest], the registry possibly an IPv6 address in brackets
#: ("[fd00::5]:5000/ocp/release", as mirrors of IPv6-only disconnected clusters are named); the first
#: character rules out anything podman could take for an option.
_REFERENCE = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\](:[0-9]+)?/)?"
    r"[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9_][A-Za-z0-9._\-/]*)*(@[A-Za-z0-9]+:[0-9a-fA-F]+)?$"
)


def podman_argv(*command: str, options: str = "") -> list[str]:
    """podman's argv; ``options`` is the agent's ``podman_args`` setting (AGENT_PODMAN_ARGS), split as a shell
    would split it (it is never run through one)."""
    return ["podman", *shlex.split(options), *command]


def check_reference(step_type: str, image: Any) -> str:
    """``image`` when it is a reference podman can only read as an image: fullmatch, because ``$`` also
    matches before a final newline; never an option (``-``) or anything with a control character."""
    if not isinstance(image, str) or len(image) > 4096 or not _REFERENCE.fullmatch(image):
        raise InvalidStepArguments(f"{step_type}: {image!r} is not a container image reference")
    return image


def podman_error(result: CommandResult) -> str:
    """The line of podman's output that says what went wrong (its 'Error: ...' line when there is one)."""
    lines = [ln.strip() for ln in (result.stderr + "\n" + result.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else f"podman exited with {result.exit_code}"

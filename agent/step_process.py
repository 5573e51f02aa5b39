"""The child process in which one step runs: ``python -m agent.step_process`` (started by ``agent.runner``).

The request comes as one JSON document on stdin. Results go back as JSON lines on the original stdout, which
is moved away at start so that nothing a step prints, or a library writes, can corrupt them (stray output goes
to stderr, into the log). Two messages: ``accepted`` with the step's timeout once its arguments parsed, so the
daemon arms the right deadline without importing step code itself; then ``result``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

from agent.config import AgentConfig
from agent.errors import AgentError
from agent.host import Host
from agent.logs import setup_logging
from steps import registry
from steps.base import StepContext

log = logging.getLogger("agent.step")


def _emit(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def execute(request: dict[str, Any], channel: IO[str]) -> None:
    step_type = str(request.get("step_type", ""))
    config = AgentConfig.from_dict(request.get("config", {}))
    args = request.get("args") or []
    result: dict[str, Any]
    try:
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise AgentError(f"{step_type}: args must be a list of strings, got {args!r}")
        step = registry.load(step_type)()
        params = step.parse_args(list(args))
        timeout = float(step.timeout(params))
        _emit(channel, {"event": "accepted", "timeout": timeout})
        ctx = StepContext(
            host=Host.at(config.host_root),
            config=config,
            step_id=str(request.get("step_id", "")),
            deadline=time.monotonic() + timeout,
            log=log,
        )
        outcome = step.run(params, ctx)
        result = {"exit_code": outcome.exit_code, "output": outcome.encoded_output(), "error": outcome.error}
    except AgentError as exc:
        log.debug("%s: %s", step_type, exc.describe(), extra={"code": exc.code, "step_type": step_type})
        result = {"exit_code": exc.exit_code, "output": "", "error": exc.describe()}
    except Exception as exc:  # a step bug becomes a reply that says so, never a silent hang
        log.exception("%s raised", step_type)
        result = {"exit_code": -1, "output": "", "error": f"{step_type} failed: {type(exc).__name__}: {exc}"}
    _emit(channel, {"event": "result", **result})


def main() -> int:
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.load(sys.stdin)
    cfg = request.get("config", {})
    setup_logging(
        json_lines=bool(cfg.get("log_json")), level=str(cfg.get("log_level", "info")),
        secrets=[os.environ.get("PULL_SECRET_TOKEN", "")],
    )
    execute(request, channel)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The process in which one step runs: a fork of the fork server (``agent.fork_server``), or a fresh
``python -m agent.step_process`` reading its request on stdin (what the fork server's children do, without it).

The request comes as one JSON document: the step, its arguments and every setting of the agent (the token
included; agent.config.AgentConfig.to_dict), so the child reads no setting from its environment. Results go back
as JSON lines on a channel of their own (the pipe the daemon handed the fork server, or the original stdout);
stdout is moved away at start so that nothing a step prints, or a library writes, can corrupt them (stray output
goes to stderr, into the log). Two messages: ``accepted`` with the step's timeout once its arguments parsed, so
the daemon arms the right deadline without importing step code itself; then ``result`` (at once after
``accepted`` when the daemon asked only to validate the arguments).

The process dies with the daemon, however the daemon dies (SIGKILL included): the kernel sends it SIGTERM when
its parent (the fork server, which dies with the daemon) ends (``PR_SET_PDEATHSIG``) and a thread watches the
daemon through a pidfd as well, in case the signal cannot run its handler; either way everything the step
started dies with it. Nothing else would end a step outside systemd (podman, a shell), and its grandchildren
would run on past any deadline.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from typing import IO, Any

from agent.config import AgentConfig
from agent.step_env import PARENT_ENV
from common.errors import AgentError
from common.host import Host
from common.logs import setup_logging
from steps import registry
from steps.base import StepContext

log = logging.getLogger("agent.step")
PR_SET_PDEATHSIG = 1


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
        plugin = request.get("plugin")
        step = registry.load(step_type, plugin if isinstance(plugin, str) and plugin else None)()
        params = step.parse_args(list(args))
        timeout = float(step.timeout(params))
        _emit(channel, {"event": "accepted", "timeout": timeout})
        if request.get("validate_only"):
            _emit(channel, {"event": "result", "exit_code": 0, "output": "", "error": ""})
            return
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


def _end_with_descendants(*_: object) -> None:
    """Kill everything this step started, then this process (its session goes too, with the last kill)."""
    try:
        import psutil  # here: the fork server (and so every step) is 2.5 MiB lighter without it

        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    finally:
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:
            os._exit(143)


def die_with_parent(parent: int, *, watch: int | None = None) -> None:
    """Arm both ways of noticing the death of ``parent`` (and of ``watch``, the daemon, when the parent is the
    fork server); if the parent is already gone, end now."""
    signal.signal(signal.SIGTERM, _end_with_descendants)
    set_death_signal(signal.SIGTERM)
    if os.getppid() != parent:
        _end_with_descendants()
    threading.Thread(target=_watch_parent, args=(parent if watch is None else watch,), name="parent-watch",
                     daemon=True).start()


def set_death_signal(sig: int) -> None:
    """The kernel sends ``sig`` to this process when its parent ends (``PR_SET_PDEATHSIG``), SIGKILL included."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the pidfd watch (or the poll fallback) still works


def _watch_parent(parent: int) -> None:
    try:
        fd = os.pidfd_open(parent)
    except OSError:
        while _alive(parent):
            time.sleep(1.0)
    else:
        select.select([fd], [], [])
    _end_with_descendants()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve_request(request: dict[str, Any], channel: IO[str]) -> int:
    """Run one request in this process (a fresh ``agent.step_process`` or a child of the fork server)."""
    os.dup2(2, 1)  # nothing a step prints may reach the result channel
    sys.stdout = sys.stderr
    cfg = AgentConfig.from_dict(request.get("config", {}))
    setup_logging(json_lines=cfg.log_json, level=cfg.log_level, secrets=[cfg.token])
    execute(request, channel)
    channel.close()
    return 0


def main() -> int:
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit():
        die_with_parent(int(parent))
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    return serve_request(json.load(sys.stdin), channel)


if __name__ == "__main__":
    sys.exit(main())

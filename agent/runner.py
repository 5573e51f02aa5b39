"""Runs one step in its own process and turns whatever happens into a step reply.

Each step runs in a process of its own, in a new session, forked from the fork server (``agent.fork_server``,
a warm interpreter that has imported the step framework once; ``agent.forks`` is the daemon's side of it). That
buys what the daemon needs: a step that hangs is killed at its deadline together with every process it started
(found through the process tree, so even children that called setsid() are caught); a step that crashes, even
in C code, only ends its own process; step code, with its heavy imports, never enters the daemon's memory; and
a step costs a fork, not an interpreter start. A fork server that ends is replaced, and a step that died with
it before reporting runs once more in the new one.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig
from agent.step_env import MARK_ENV as MARK_ENV  # re-exported: tests and agent.state use them from here
from agent.step_env import PARENT_ENV as PARENT_ENV
from common.errors import StepTimeout, UnknownStepType
from common.host import kill_tree
from common.limits import MAX_ERROR_CHARS, MAX_OUTPUT_BYTES, clip
from common.logs import redact_url

if TYPE_CHECKING:
    from agent.forks import ForkServer, Spawned

# agent.forks and steps.registry are imported at the first step, not on the way to the
# first register (tests/e2e/test_packaging.py keeps that path short).

log = logging.getLogger(__name__)

#: Seconds a child gets to import its step and parse the arguments before it reports its own timeout.
BOOTSTRAP_TIMEOUT = 60.0
#: Extra seconds beyond the step's timeout, so a step that watches its own deadline can still report.
KILL_SLACK = 2.0
#: Runs of a step whose fork server ended under it (killed, out of memory) before it reported: the first, and
#: one more in the new server, so the instruction still gets its step's own result.
RUNS_IF_SERVER_ENDS = 2
EXIT_INTERRUPTED = 143  # 128 + SIGTERM: the agent was stopping and the step could not finish in time


@dataclass
class Reply:
    step_id: str
    step_type: str
    exit_code: int = 0
    output: str = ""
    error: str = ""
    #: The step parsed its arguments (a reply without it is an argument, plugin or start failure).
    accepted: bool = field(default=False, compare=False)
    #: The signal that ended the step's process before it reported (0: it reported, or exited by itself).
    signal: int = field(default=0, compare=False)

    def bounded(self) -> Reply:
        """This reply within the agent's caps: an oversized output is not sent, and the error says so; URL
        passwords in it are ``***``."""
        error, output, code = self.error, self.output, self.exit_code
        if len(output) > MAX_OUTPUT_BYTES:
            error = (f"{self.step_type} output of {len(output)} bytes not sent: over the agent's limit of "
                     f"{MAX_OUTPUT_BYTES} bytes" + (f"; {error}" if error else ""))
            output, code = "", code or -1
        # URL passwords (a --url with user:password, an image URL) never leave in a reply, nor reach the history
        return replace(self, exit_code=code, output=redact_url(output), error=clip(redact_url(error), MAX_ERROR_CHARS))

    def to_wire(self) -> dict[str, Any]:
        """The Go agent's StepReply: every field omitempty, so zero values are left out."""
        body: dict[str, Any] = {"step_id": self.step_id, "step_type": self.step_type}
        if self.exit_code:
            body["exit_code"] = self.exit_code
        if self.output:
            body["output"] = self.output
        if self.error:
            body["error"] = self.error
        return body


class StepRunner:
    def __init__(self, config: AgentConfig, *, python: str = sys.executable, mark: str = "") -> None:
        self.config = config
        self.python = python
        self.mark = mark
        self._forks: ForkServer | None = None
        self._forks_lock = threading.Lock()

    @property
    def forks(self) -> ForkServer:
        """The fork server of this runner's steps, started on first use (env: this daemon's pid and mark)."""
        with self._forks_lock:
            if self._forks is None:
                from agent.forks import ForkServer

                env = {**os.environ, PARENT_ENV: str(os.getpid())}
                if self.mark:
                    env[MARK_ENV] = self.mark
                self._forks = ForkServer(env, python=self.python)
            return self._forks

    def warm_up(self) -> None:
        """Start the fork server in the background, so that the first step finds it ready."""
        try:
            self.forks.start()
        except OSError as exc:
            log.warning("cannot start the fork server: %s", exc)

    def close(self) -> None:
        if self._forks is not None:
            self._forks.stop()

    def run(
        self, step_type: str, step_id: str, args: list[str], *, cancel: threading.Event | None = None,
        on_accepted: Callable[[], None] | None = None, validate_only: bool = False,
    ) -> Reply:
        """Run one step (or, with ``validate_only``, only parse its arguments) and say how it went."""
        from steps import registry

        plugin = registry.declared().get(step_type)
        if plugin is None:  # answered before agent.forks (and subprocess) is loaded: nothing here needs it
            return Reply(step_id, step_type, -1, "", str(UnknownStepType(step_type))).bounded()
        from agent.forks import ForkServerGone

        request = {"step_type": step_type, "step_id": step_id, "args": args, "config": self.config.to_dict(),
                   "validate_only": validate_only, "plugin": plugin}
        accepted = on_accepted or (lambda: None)
        for attempt in range(1, RUNS_IF_SERVER_ENDS + 1):
            try:
                reply, server_ended = self._run(request, cancel, accepted)
            except ForkServerGone as exc:
                if attempt < RUNS_IF_SERVER_ENDS:
                    continue
                return Reply(step_id, step_type, -1, "", f"cannot start the step process: {exc}").bounded()
            except OSError as exc:
                return Reply(step_id, step_type, -1, "", f"cannot start the step process: {exc}").bounded()
            if not server_ended or attempt == RUNS_IF_SERVER_ENDS or (cancel is not None and cancel.is_set()):
                return reply.bounded()
            log.warning("%s (%s) died with its fork server before reporting: running it again", step_type, step_id)
        raise AssertionError("unreachable")

    def _run(self, request: dict[str, Any], cancel: threading.Event | None,
             on_accepted: Callable[[], None]) -> tuple[Reply, bool]:
        """The reply, and whether the step process died with its fork server before reporting."""
        step_type, step_id = str(request["step_type"]), str(request["step_id"])
        env = {**os.environ, **self.config.proxies, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
        if self.mark:
            env[MARK_ENV] = self.mark
        from agent.forks import wait_exit

        proc = self.forks.spawn(request, env)
        messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        reader = threading.Thread(target=_read_messages, args=(proc.channel, messages), daemon=True)
        reader.start()
        deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
        timeout: float | None = None
        accepted = False
        while True:
            if cancel is not None and cancel.is_set():
                killed = self._kill(proc)
                return Reply(step_id, step_type, EXIT_INTERRUPTED, "",
                             f"{step_type} was interrupted because the agent is stopping ({killed} processes killed)",
                             accepted), False
            wait = min(0.5, max(0.0, deadline - time.monotonic()))
            try:
                msg = messages.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                killed = self._kill(proc)
                limit = timeout if timeout is not None else BOOTSTRAP_TIMEOUT
                err = StepTimeout(
                    f"{step_type} timed out after {limit:g} seconds; the step and the processes it started "
                    f"({killed} in all) were killed"
                )
                return Reply(step_id, step_type, err.exit_code, "", err.message, accepted), False
            if msg is None:  # the child closed its channel: it ended, with or without a result
                status = wait_exit(proc)
                if status is None:
                    return Reply(step_id, step_type, -1, "", f"{step_type} step process ended with its fork "
                                 "server before reporting a result", accepted), True
                how = f"signal {-status}" if status < 0 else f"exit status {status}"
                code = status if status > 0 else -1
                return Reply(step_id, step_type, code, "",
                             f"{step_type} step process ended ({how}) before reporting a result", accepted,
                             max(0, -status)), False
            if msg.get("event") == "accepted":
                timeout = float(msg.get("timeout", 0)) or BOOTSTRAP_TIMEOUT
                deadline = time.monotonic() + timeout + KILL_SLACK
                accepted = True
                on_accepted()
            elif msg.get("event") == "result":
                wait_exit(proc)
                self._reap_leftovers(proc)
                return Reply(step_id, step_type, int(msg.get("exit_code", 0)), str(msg.get("output") or ""),
                             str(msg.get("error") or ""), accepted), False

    def _kill(self, proc: Spawned) -> int:
        from agent.forks import wait_exit

        killed = kill_tree(proc.pid)
        self._reap_leftovers(proc)
        wait_exit(proc)
        return killed

    @staticmethod
    def _reap_leftovers(proc: Spawned) -> None:
        """Anything still in the step's session (e.g. a daemonised helper) dies with the step."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _read_messages(stream: Any, out: queue.Queue[dict[str, Any] | None]) -> None:
    for line in stream:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            out.put(msg)
    out.put(None)

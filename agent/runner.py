"""Runs one step in its own process and turns whatever happens into a step reply.

Each step runs in a child (``agent.step_process``) in a new session. That buys three things the daemon needs:
a step that hangs is killed at its deadline together with every process it started (found through the process
tree, so even children that called setsid() are caught); a step that crashes, even in C code, only ends its
own process; and step code, with its heavy imports, never enters the daemon's memory.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agent.config import AgentConfig
from common.errors import StepTimeout, UnknownStepType
from common.host import kill_tree
from common.limits import MAX_ERROR_CHARS, MAX_OUTPUT_BYTES, clip
from steps import registry

log = logging.getLogger(__name__)

#: Seconds a child gets to import its step and parse the arguments before it reports its own timeout.
BOOTSTRAP_TIMEOUT = 60.0
#: Extra seconds beyond the step's timeout, so a step that watches its own deadline can still report.
KILL_SLACK = 2.0
EXIT_INTERRUPTED = 143  # 128 + SIGTERM: the agent was stopping and the step could not finish in time
#: Environment of every step process (inherited by all it starts): the daemon's pid, which the step process
#: watches so that it dies with the daemon, and the daemon's state directory, by which a restarted daemon
#: finds what a previous life left running (agent.state.reap_leftovers).
PARENT_ENV, MARK_ENV = "ASSISTED_AGENT_PID", "ASSISTED_AGENT_STEP_OF"


@dataclass
class Reply:
    step_id: str
    step_type: str
    exit_code: int = 0
    output: str = ""
    error: str = ""
    #: The step parsed its arguments (a reply without it is an argument, plugin or start failure).
    accepted: bool = field(default=False, compare=False)

    def bounded(self) -> Reply:
        """This reply within the agent's caps: an oversized output is not sent, and the error says so."""
        error, output, code = self.error, self.output, self.exit_code
        if len(output) > MAX_OUTPUT_BYTES:
            error = (f"{self.step_type} output of {len(output)} bytes not sent: over the agent's limit of "
                     f"{MAX_OUTPUT_BYTES} bytes" + (f"; {error}" if error else ""))
            output, code = "", code or -1
        return replace(self, exit_code=code, output=output, error=clip(error, MAX_ERROR_CHARS))

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

    def run(
        self, step_type: str, step_id: str, args: list[str], *, cancel: threading.Event | None = None,
        on_accepted: Callable[[], None] | None = None, validate_only: bool = False,
    ) -> Reply:
        """Run one step (or, with ``validate_only``, only parse its arguments) and say how it went."""
        return self._run(step_type, step_id, args, cancel, on_accepted or (lambda: None), validate_only).bounded()

    def _run(self, step_type: str, step_id: str, args: list[str], cancel: threading.Event | None,
             on_accepted: Callable[[], None], validate_only: bool) -> Reply:
        if step_type not in registry.available():
            return Reply(step_id, step_type, -1, "", str(UnknownStepType(step_type)))
        request = {"step_type": step_type, "step_id": step_id, "args": args, "config": self.config.to_dict(),
                   "validate_only": validate_only}
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
        if self.mark:
            env[MARK_ENV] = self.mark
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "agent.step_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                start_new_session=True,
                text=True,
                env=env,
            )
        except OSError as exc:
            return Reply(step_id, step_type, -1, "", f"cannot start the step process: {exc}")
        assert proc.stdin is not None and proc.stdout is not None
        messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        reader = threading.Thread(target=_read_messages, args=(proc.stdout, messages), daemon=True)
        reader.start()
        try:
            proc.stdin.write(json.dumps(request))
            proc.stdin.close()
        except OSError:
            pass  # the child died at once; its exit status explains
        deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
        timeout: float | None = None
        accepted = False
        while True:
            if cancel is not None and cancel.is_set():
                killed = self._kill(proc)
                return Reply(step_id, step_type, EXIT_INTERRUPTED, "",
                             f"{step_type} was interrupted because the agent is stopping ({killed} processes killed)",
                             accepted)
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
                return Reply(step_id, step_type, err.exit_code, "", err.message, accepted)
            if msg is None:  # the child closed its channel: it ended, with or without a result
                status = _wait_quietly(proc)
                how = f"signal {-status}" if status < 0 else f"exit status {status}"
                code = status if status > 0 else -1
                return Reply(step_id, step_type, code, "",
                             f"{step_type} step process ended ({how}) before reporting a result", accepted)
            if msg.get("event") == "accepted":
                timeout = float(msg.get("timeout", 0)) or BOOTSTRAP_TIMEOUT
                deadline = time.monotonic() + timeout + KILL_SLACK
                accepted = True
                on_accepted()
            elif msg.get("event") == "result":
                _wait_quietly(proc)
                self._reap_leftovers(proc)
                return Reply(step_id, step_type, int(msg.get("exit_code", 0)), str(msg.get("output") or ""),
                             str(msg.get("error") or ""), accepted)

    def _kill(self, proc: subprocess.Popen[str]) -> int:
        killed = kill_tree(proc.pid)
        self._reap_leftovers(proc)
        _wait_quietly(proc)
        return killed

    @staticmethod
    def _reap_leftovers(proc: subprocess.Popen[str]) -> None:
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


def _wait_quietly(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()

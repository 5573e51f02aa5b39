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
from dataclasses import dataclass
from typing import Any

from agent.config import AgentConfig
from agent.errors import StepTimeout, UnknownStepType
from agent.host import kill_tree
from steps import registry

log = logging.getLogger(__name__)

#: Seconds a child gets to import its step and parse the arguments before it reports its own timeout.
BOOTSTRAP_TIMEOUT = 60.0
#: Extra seconds beyond the step's timeout, so a step that watches its own deadline can still report.
KILL_SLACK = 2.0
EXIT_INTERRUPTED = 143  # 128 + SIGTERM: the agent was stopping and the step could not finish in time


@dataclass
class Reply:
    step_id: str
    step_type: str
    exit_code: int = 0
    output: str = ""
    error: str = ""

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
    def __init__(self, config: AgentConfig, *, python: str = sys.executable) -> None:
        self.config = config
        self.python = python

    def run(
        self, step_type: str, step_id: str, args: list[str], *, cancel: threading.Event | None = None
    ) -> Reply:
        if step_type not in registry.available():
            return Reply(step_id, step_type, -1, "", str(UnknownStepType(step_type)))
        request = {"step_type": step_type, "step_id": step_id, "args": args, "config": self.config.to_dict()}
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "agent.step_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                start_new_session=True,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
        while True:
            if cancel is not None and cancel.is_set():
                killed = self._kill(proc)
                return Reply(step_id, step_type, EXIT_INTERRUPTED, "",
                             f"{step_type} was interrupted because the agent is stopping ({killed} processes killed)")
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
                return Reply(step_id, step_type, err.exit_code, "", err.message)
            if msg is None:  # the child closed its channel: it ended, with or without a result
                status = _wait_quietly(proc)
                how = f"signal {-status}" if status < 0 else f"exit status {status}"
                code = status if status > 0 else -1
                return Reply(step_id, step_type, code, "",
                             f"{step_type} step process ended ({how}) before reporting a result")
            if msg.get("event") == "accepted":
                timeout = float(msg.get("timeout", 0)) or BOOTSTRAP_TIMEOUT
                deadline = time.monotonic() + timeout + KILL_SLACK
            elif msg.get("event") == "result":
                _wait_quietly(proc)
                self._reap_leftovers(proc)
                return Reply(step_id, step_type, int(msg.get("exit_code", 0)), str(msg.get("output") or ""),
                             str(msg.get("error") or ""))

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

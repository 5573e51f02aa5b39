"""Starts the steps of each poll, so that every instruction gets exactly one reply.

Each run of a step has its own thread (the poll loop never waits for steps, as in the Go agent). Runs of one
step type are kept in a short chain: the first is running, the others wait for it. What an instruction that
arrives while its type is busy gets is decided per type by :mod:`agent.overlap`; bad arguments always get the
step's exit -1 reply, checked in a child of their own when they differ from the running ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agent.media import MEDIA_DISCONNECTED
from agent.overlap import Overlap, busy_reply, policy
from agent.runner import EXIT_INTERRUPTED, Reply, StepRunner
from common.answers import BadInstruction, Instruction
from common.limits import MAX_RUNS_PER_TYPE

log = logging.getLogger("agent")

#: deliver(reply, dedupe): post one reply; ``dedupe`` allows the Go agent's "already exists" skip.
Deliver = Callable[[Reply, bool], None]


@dataclass
class Run:
    """One run of a step: its arguments and every step id it answers (the first is its own)."""

    args: tuple[str, ...]
    step_ids: list[str]
    accepted: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    reply: Reply | None = None


class Dispatcher:
    def __init__(self, runner: StepRunner, deliver: Deliver, finished: Callable[[Reply, float], None],
                 cancel: threading.Event, *, diagnose: Callable[[], str] | None = None) -> None:
        self.runner = runner
        #: What keeps steps from working on this host ("" when nothing): the media check (agent.media)
        self.diagnose = diagnose or (lambda: "")
        self.deliver = deliver
        self.finished = finished  # the daemon's bookkeeping of a run's own reply: log, history, post
        self.cancel = cancel
        self._chains: dict[str, list[Run]] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def threads(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._threads if t.is_alive()]

    def dispatch(self, item: Instruction | BadInstruction) -> None:
        if isinstance(item, BadInstruction):
            self._answer_bad(item)
            return
        with self._lock:
            chain = self._chains.setdefault(item.step_type, [])
            if chain and policy(item.step_type) is not Overlap.JOIN:
                self._start(item.step_type, self._answer_busy, item, chain[0])
                return
            same = next((run for run in chain if run.args == item.args), None)
            if same is not None:
                same.step_ids.append(item.step_id)
                log.info("%s (%s) answered by the run of %s, which has the same arguments", item.step_type,
                         item.step_id, same.step_ids[0])
                return
            if len(chain) >= MAX_RUNS_PER_TYPE:
                self._start(item.step_type, self.deliver, Reply(
                    item.step_id, item.step_type, -1, "",
                    f"{item.step_type} not run: {len(chain)} runs of it are already running or queued "
                    f"(at most {MAX_RUNS_PER_TYPE})"), False)
                return
            run = Run(item.args, [item.step_id])
            previous = chain[-1] if chain else None
            chain.append(run)
            self._start(item.step_type, self._execute, item.step_type, run, previous)
        if previous is None:
            log.info("running %s (%s)", item.step_type, item.step_id,
                     extra={"step_type": item.step_type, "step_id": item.step_id})
        else:
            log.info("%s (%s) queued after %s, which is still running", item.step_type, item.step_id,
                     previous.step_ids[0])

    def _start(self, step_type: str, target: Callable[..., None], *args: object) -> None:
        """A thread for one run or answer (called with the lock held)."""
        thread = threading.Thread(target=self._track, args=(target, *args), daemon=True, name=f"step-{step_type}")
        self._threads.add(thread)
        thread.start()

    def _track(self, target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        except Exception:  # a bug here must not take the daemon down, nor be silent
            log.exception("step thread failed")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _answer_bad(self, item: BadInstruction) -> None:
        if not item.step_id and not item.step_type:
            log.warning("instruction ignored, it cannot be answered: %s", item.reason)
            return
        log.warning("%s (%s) not run: %s", item.step_type or "?", item.step_id or "?", item.reason)
        self.deliver(Reply(item.step_id, item.step_type, -1, "", item.reason).bounded(), False)

    def _execute(self, step_type: str, run: Run, previous: Run | None) -> None:
        if previous is not None:
            previous.done.wait()
            log.info("running %s (%s)", step_type, run.step_ids[0])
        started = time.monotonic()
        try:
            problem = "" if self.cancel.is_set() else self.diagnose()
            if self.cancel.is_set():
                reply = Reply(run.step_ids[0], step_type, EXIT_INTERRUPTED, "",
                              f"{step_type} was not started because the agent is stopping")
            elif problem:  # as the Go agent: the step is not run, its reply says why (exit code 256)
                log.error("System issue detected before running step %s (%s): %s - stopping the execution",
                          step_type, run.step_ids[0], problem)
                reply = Reply(run.step_ids[0], step_type, MEDIA_DISCONNECTED, "", problem)
            else:
                reply = self.runner.run(step_type, run.step_ids[0], list(run.args), cancel=self.cancel,
                                        on_accepted=run.accepted.set)
                if reply.exit_code != 0 and (problem := self.diagnose()):
                    log.error("System issue detected after running step %s (%s): %s", step_type,
                              run.step_ids[0], problem)
                    reply = replace(reply, exit_code=MEDIA_DISCONNECTED)
        except Exception as exc:  # a bug or a host failure in the runner: the run still ends, with a reply
            log.exception("running %s (%s) failed in the agent", step_type, run.step_ids[0])
            reply = Reply(run.step_ids[0], step_type, -1, "",
                          f"{step_type} failed in the agent: {type(exc).__name__}: {exc}").bounded()
        with self._lock:
            run.reply = reply
            run.done.set()
            chain = self._chains.get(step_type, [])
            if run in chain:
                chain.remove(run)
            if not chain:
                self._chains.pop(step_type, None)
            extra = run.step_ids[1:]
        self.finished(reply, time.monotonic() - started)
        for step_id in extra:
            self.deliver(replace(reply, step_id=step_id), False)

    def _answer_busy(self, item: Instruction, running: Run) -> None:
        """An IDLE or REFUSE type is busy: check the arguments, then answer as the type's policy says."""
        running_id = running.step_ids[0]
        if item.args == running.args:
            while not running.accepted.wait(0.2) and not running.done.is_set():
                pass
            check = running.reply if running.done.is_set() and not running.accepted.is_set() else None
        else:
            try:
                check = self.runner.run(item.step_type, item.step_id, list(item.args), cancel=self.cancel,
                                        validate_only=True)
            except Exception as exc:  # as in _execute: the instruction still gets its one reply
                log.exception("checking %s (%s) failed in the agent", item.step_type, item.step_id)
                check = Reply(item.step_id, item.step_type, -1, "",
                              f"{item.step_type} failed in the agent: {type(exc).__name__}: {exc}").bounded()
            check = None if check.accepted else check
        if check is not None:
            reply = replace(check, step_id=item.step_id)
        else:
            reply = busy_reply(item.step_type, item.step_id, item.args, running_id)
            log.info("%s (%s) answered without running: %s is still running", item.step_type, item.step_id,
                     running_id)
        self.deliver(reply, False)

"""The agent's life: register, then poll for steps, run them, reply, sleep; register again when the service
says exit, and stop on a signal.

The protocol decisions follow the Go agent (go-agent-behaviour.md sections 2.2 to 2.6): a register answer
without a usable ``next_step_runner_command`` waits its ``retry_seconds`` (an hour when absent) and registers
again without polling; ``post_step_action: exit`` registers again at once, in this process; failed polls back
off 0.5 s x1.5 up to 60 s. Three deliberate differences: a register answer that the Go agent freezes on
forever (401/403/404/409) is retried with a back-off growing to minutes (agent.registration), and a poll
answered 404 (where the Go runner freezes) registers again after the poll back-off, so fixing the cause on the
service side is enough; and a reply that could not be delivered because the service was down is kept and
delivered once it is back, so nothing is lost.

Every answer of the service is untrusted input (common.answers): one that is not what the spec says is logged
once, in words that say what was expected, what came and from where, and backed off like a network error.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import deque
from functools import cached_property

from agent.config import AgentConfig
from agent.lifecycle import Lifecycle
from agent.notify import Notifier
from agent.registration import Registrar
from common.errors import ServiceError, ServiceResponseError, TransportError
from common.host import Host
from common.lazy_log import DEBUG, INFO, LOGGING, WARNING, LazyLogger, redact_url
from common.limits import DEFAULT_DELAY_ON_ERROR, MAX_PENDING_REPLIES, clip
from common.service_client import ServiceClient

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from agent.dispatch import Dispatcher
    from agent.media import MediaCheck
    from agent.runner import Reply, StepRunner
    from agent.state import History

# What runs steps (agent.runner, agent.dispatch, agent.state, agent.media) and reads poll answers
# (common.answers) is imported once the host is registered, not on the way to the first register (issue 29:
# the CPU spent before the service hears of the host).

log = LazyLogger("agent")

#: A successful reply identical to the last one of its step type is not re-posted within this many seconds.
REPLY_CACHE_TTL = 3600.0
#: Poll back-off: cenkalti/backoff defaults, as the Go agent uses them.
POLL_BACKOFF_INITIAL, POLL_BACKOFF_FACTOR, POLL_BACKOFF_MAX, POLL_BACKOFF_JITTER = 0.5, 1.5, 60.0, 0.5
#: Seconds after start (or at the first poll answer, if sooner) the leftovers of a previous life are killed.
LEFTOVERS_DELAY = 2.0
#: After this long without a successful poll, register again (the Go runner exits and the agent re-registers).
POLL_GIVE_UP = 15 * 60.0

class Daemon:
    def __init__(self, config: AgentConfig, *, client: ServiceClient | None = None,
                 runner: StepRunner | None = None, notifier: Notifier | None = None,
                 host: Host | None = None) -> None:
        self.config = config
        self.mark = config.state_mark
        self.client = client or ServiceClient(config)
        if runner is not None:
            self.runner = runner
        self.notifier = notifier or Notifier()
        self.host = host or Host.at(config.host_root)
        self.life = Lifecycle(self.notifier, abort=lambda: self.client.abort())
        self.stop, self.terminate, self.cancel = self.life.stop, self.life.terminate, self.life.cancel
        self.host_id = ""
        self.infra_env_id = config.infra_env_id
        self.dry = config.dry
        self._cache: dict[str, tuple[str, float]] = {}
        self._pending: deque[Reply] = deque(maxlen=MAX_PENDING_REPLIES)
        self._last_problem = ""
        self._poll_delay = POLL_BACKOFF_INITIAL  # the next back-off of a failed poll (see _poll_loop)
        self._exits_in_row = 0  # registrations in a row whose first poll said exit
        self.runner_problem = ""  # why the last register answer's next_step_runner_command is unusable
        self.delay_on_error = DEFAULT_DELAY_ON_ERROR
        self.registrar = Registrar(config, self.client, self.host, self.dry, self.life)
        #: the reaper of a previous life's leftovers: by itself LEFTOVERS_DELAY after start, or at once when the
        #: first poll answer comes (_leftovers_gone), whichever is first
        self._reap_now = threading.Event()
        self._reaper = threading.Thread(target=self._reap_leftovers, name="leftovers", daemon=True)

    @cached_property
    def runner(self) -> StepRunner:
        from agent.runner import StepRunner

        return StepRunner(self.config, mark=self.mark)

    @cached_property
    def media(self) -> MediaCheck:
        from agent.media import MediaCheck

        return MediaCheck(self.host, enabled=not self.dry.enabled)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from agent.dispatch import Dispatcher

        return Dispatcher(self.runner, self._deliver, self._finished, self.cancel, diagnose=self.media.problem)

    @cached_property
    def state(self) -> Path | None:
        """The state directory (AgentConfig.state_path), once the host is registered: pathlib is not needed
        before."""
        return self.config.state_path

    @cached_property
    def _history(self) -> History:
        from agent.state import History

        return History(self.state)

    # -- top level --------------------------------------------------------------------------------------
    def run(self) -> int:
        if not self.life.start(self.config.url, self.config.token, self.mark):
            return 1
        # What a previous life left running is found and killed after the first register and poll, not before
        # them: the scan of every process costs more CPU than the whole way to the first request.
        self._reaper.start()
        while not self.stop.is_set():
            if not self._register():
                break
            if self.runner_problem:  # as the Go agent: register again after the delay, without polling
                log.error("cannot use the service's next_step_runner_command: %s; registering again in %.0fs",
                          self.runner_problem, self.delay_on_error)
                self.notifier.status(f"registered, but the service's runner command is unusable; retrying in "
                                     f"{self.delay_on_error:.0f}s")
                self._sleep(self.delay_on_error)
                continue
            self._poll_loop()
        self._shutdown()
        self.life.release()
        return 0

    def _reap_leftovers(self) -> None:
        self._reap_now.wait(LEFTOVERS_DELAY)
        from agent.state import reap_leftovers

        reap_leftovers(self.mark)

    def _leftovers_gone(self) -> None:
        """Have what a previous life left running killed now, if the reaper has not done it yet, and wait for it:
        nothing of a previous life runs beside this life's steps, nor beside its fork server (which carries the
        same mark)."""
        self._reap_now.set()
        if self._reaper.is_alive():
            self._reaper.join()

    def request_stop(self, reason: str) -> None:
        self.life.request_stop(reason)

    def _sleep(self, seconds: float) -> bool:
        return self.life.sleep(seconds)

    # -- registration -----------------------------------------------------------------------------------
    def _register(self) -> bool:
        """Register until it succeeds; False when stopped first."""
        registration = self.registrar.register()
        if registration is None:
            return False
        self._adopt_registration(registration.response, registration.host_id, registration.how)
        return True

    def _adopt_registration(self, response: dict[str, Any], host_id: str, how: str) -> None:
        """Use the ids the service hands back in next_step_runner_command, as the Go next-step runner does;
        an answer without a valid one leaves ``runner_problem`` set (the loop waits ``delay_on_error``)."""
        from common.answers import parse_runner_command

        self.host_id, self.infra_env_id = host_id, self.config.infra_env_id
        request, self.delay_on_error, self.runner_problem = parse_runner_command(response)
        if request is None:
            return
        self.host_id, self.infra_env_id = request.host_id, request.infra_env_id
        # held until the first poll is out (common.lazy_log): written then, in their place among the records
        if self.config.agent_version and request.agent_version != self.config.agent_version:
            LOGGING.hold(log.name, WARNING, "the service expects agent %.200s, this is %s: it will ask for an upgrade",
                         request.agent_version, self.config.agent_version)
        LOGGING.hold(log.name, INFO, "registered host %s (id from %s) in infra-env %s", self.host_id, how,
                     self.infra_env_id)
        self.notifier.status(f"registered as host {self.host_id}; polling for steps")

    # -- polling ----------------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        """Poll until stopped or until the host must register again: told to exit (at once, as the Go agent's
        runner exits and its agent registers again), after a 404 (backed off first: the Go agent freezes, we
        register again) or after POLL_GIVE_UP of failed polls.

        The back-off (cenkalti/backoff's defaults, as the Go runner's) is reset only by a poll answered with
        instructions to continue, so a 404 or an exit answer that repeats after every registration slows the
        cycle down instead of becoming a register+poll storm."""
        from common.answers import parse_steps

        failing_since: float | None = None
        warm = False
        while not self.stop.is_set():
            self.client.new_request_id()
            try:
                steps = parse_steps(self.client.next_steps(self.infra_env_id, self.host_id, int(time.time())),
                                    f"GET {redact_url(self.client.base)}/v2/.../instructions")
            except ServiceError as exc:
                self._cache.clear()
                now = time.monotonic()
                failing_since = failing_since or now
                gone = exc if isinstance(exc, ServiceResponseError) and exc.status == 404 else None
                if not gone and now - failing_since > POLL_GIVE_UP:
                    log.warning("no successful poll for %.0f minutes: registering again", POLL_GIVE_UP / 60)
                    return
                wait = self._next_backoff()
                if gone:
                    log.warning("the service does not know host %s (404: %s): registering again in %.1fs",
                                self.host_id, clip(gone.reason, 200), wait)
                    self.notifier.status(f"host {self.host_id} unknown to the service; registering again")
                else:
                    self._report_poll_problem(exc, wait)
                if self._sleep(wait) and gone:
                    return
                continue
            # The next poll is due next_instruction_seconds after this one's answer came (Go: the delay follows
            # handleSteps, which only starts goroutines); what the agent does meanwhile (the step machinery's
            # first import, the fork server's start) does not push it back.
            next_poll = time.monotonic() + max(0.1, steps.next_instruction_seconds)
            failing_since = None
            # The logging configuration waited for the first poll (the register's line is held in it): applied
            # before anything of the step machinery, whose modules log through the logging package itself.
            LOGGING.apply()
            if self._last_problem:
                log.info("the service answers as expected again")
                self._last_problem = ""
            self._flush_pending()
            self._leftovers_gone()
            for instruction in steps.instructions:
                self.dispatcher.dispatch(instruction)
            if not warm and not steps.instructions:
                # After a poll with nothing to run, not before the first poll nor beside its steps: the step
                # framework's imports and the fork server's start are CPU that the service, waiting for the host's
                # first poll and for the quick replies of its steps (an unknown step type), would wait for too
                # (several times over on a loaded machine: docs/go-differences.md). Steps that need the server
                # start it at their first fork.
                warm = True
                self.runner.warm_up()
            if steps.exit:
                wait = self._next_backoff() if self._exits_in_row else 0.0
                self._exits_in_row += 1
                log.info("the service asked the agent to exit: registering again%s",
                         f" in {wait:.1f}s" if wait else "")
                self._sleep(wait)
                return
            self._poll_delay, self._exits_in_row = POLL_BACKOFF_INITIAL, 0
            self.notifier.status(f"host {self.host_id}: {len(self.dispatcher.threads())} step(s) running")
            self._sleep(next_poll - time.monotonic())

    def _next_backoff(self) -> float:
        """The next wait of the poll back-off (jittered), and grow it for the one after."""
        import random  # here: its import is a few ms on the way to the first register

        wait = self._poll_delay * (1 + random.uniform(-POLL_BACKOFF_JITTER, POLL_BACKOFF_JITTER))
        self._poll_delay = min(self._poll_delay * POLL_BACKOFF_FACTOR, POLL_BACKOFF_MAX)
        return wait

    def _report_poll_problem(self, exc: ServiceError, wait: float) -> None:
        """A failed poll, logged once per kind of failure in a row (a storm of identical lines helps no one)."""
        text = exc.describe()
        kind = f"{type(exc).__name__}:{getattr(exc, 'status', '')}:{text[:60]}"
        level = WARNING if kind != self._last_problem else DEBUG
        self._last_problem = kind
        log.log(level, "failed to get next steps: %s; retrying in %.1fs", text, wait)
        self.notifier.status(f"cannot get next steps: {exc.message[:200]}")

    def _finished(self, reply: Reply, seconds: float) -> None:
        step_type, step_id = reply.step_type, reply.step_id
        level = INFO if reply.exit_code == 0 else WARNING
        log.log(level, "%s (%s) finished in %.2fs with exit code %d%s", step_type, step_id,
                seconds, reply.exit_code, f": {reply.error}" if reply.error else "",
                extra={"step_type": step_type, "step_id": step_id})
        if self.terminate.is_set() and reply.signal:
            # The whole unit is stopping (the ISO's agent.service has KillMode=control-group: every process of
            # it got SIGTERM, this step's and its fork server's too, whose end takes its steps with SIGKILL). As
            # the Go agent, nothing is posted for a step killed so: the service asks again after the restart,
            # and a -1 reply would only mark the step failed meanwhile. (Our own units stop with
            # KillMode=mixed: the steps are not signalled, they finish and their replies are posted.)
            log.info("%s (%s) ended by %s with the agent's unit: no reply, as the Go agent", step_type, step_id,
                     signal.Signals(reply.signal).name)
            self._history.record(reply)
            return
        self._deliver(reply)
        self._history.record(reply)  # after the reply, which the service waits for (the first one loads pathlib)
        if step_type == "upgrade-agent" and reply.exit_code == 0 and _result_is_success(reply.output):
            image = json.loads(reply.output).get("agent_image", "")
            self._remember_agent_image(image)
            log.info("agent image %s pulled: exiting so that systemd restarts the agent from it", image)
            self.request_stop("agent upgraded")
        if step_type == "reboot" and reply.exit_code == 0 and self._dry_rebooted():
            log.info("dry-run reboot recorded in %s: stopping, as the Go agent does", self.dry.reboot_marker_path)
            self.request_stop("dry-run reboot")

    def _dry_rebooted(self) -> bool:
        """A dry-run reboot wrote its marker: the simulated host is gone, its agent stops (Go: DryRebootHappened)."""
        return bool(self.dry.reboot_marker_path) and os.path.exists(self.dry.reboot_marker_path)

    # -- replies ----------------------------------------------------------------------------------------
    def _deliver(self, reply: Reply, dedupe: bool = True) -> None:
        if dedupe and reply.exit_code == 0:
            cached = self._cache.get(reply.step_type)
            if cached and cached[0] == reply.output and time.monotonic() - cached[1] < REPLY_CACHE_TTL:
                log.info("Result for %s already exists in assisted service", reply.step_type)
                return
        try:
            self.client.post_reply(self.infra_env_id, self.host_id, reply.to_wire())
        except ServiceResponseError as exc:
            if exc.status >= 500:
                self._pending.append(reply)
                log.warning("reply of %s (%s) not accepted yet (%s): will retry", reply.step_type,
                            reply.step_id, exc)
            else:
                log.error("the service rejected the reply of %s (%s): %s", reply.step_type, reply.step_id, exc)
            return
        except TransportError as exc:
            self._pending.append(reply)
            log.warning("reply of %s (%s) not delivered (%s): will retry once the service answers",
                        reply.step_type, reply.step_id, exc.message)
            return
        if reply.exit_code == 0:
            self._cache[reply.step_type] = (reply.output, time.monotonic())

    def _flush_pending(self) -> None:
        for _ in range(len(self._pending)):
            self._deliver(self._pending.popleft())

    def _remember_agent_image(self, image: str) -> None:
        """Write ``AGENT_VERSION=<image>`` where systemd/agent-container.service reads it on its next start,
        so the restarted agent runs from, and reports, the image the service asked for."""
        if self.state is None or not image:
            return
        target = self.state / "agent-image.env"
        try:
            from agent.state import write_private

            tmp = target.with_suffix(".tmp")
            write_private(tmp, f"AGENT_VERSION={image}\n")
            tmp.replace(target)
        except OSError as exc:
            log.warning("cannot record the upgraded agent image in %s: %s", target, exc)

    # -- shutdown ---------------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Let running steps finish: all of them when the service said exit (each has its own deadline),
        within the grace period when a signal stops us (or arrives meanwhile)."""
        threads = self.dispatcher.threads()
        if threads:
            log.info("waiting for %d running step(s)", len(threads))
        while any(t.is_alive() for t in threads) and not self.terminate.wait(0.2):
            pass
        deadline = time.monotonic() + self.config.shutdown_grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            self.cancel.set()
            for thread in threads:
                thread.join(15)
        self._flush_pending()
        self.runner.close()
        self.notifier.stopping("stopped")
        log.info("agent stopped")


def _result_is_success(output: str) -> bool:
    try:
        return bool(json.loads(output).get("result") == "success")
    except (ValueError, AttributeError):
        return False


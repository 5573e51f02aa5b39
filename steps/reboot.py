"""``reboot``: restart the host into the freshly written disk (this project's step type, see docs/extensions.md).

The order is sync, report ``Rebooting``, then ask systemd (``systemctl reboot``, or a transient timer
``systemd-run --on-active=Ns`` for a delay, so the step's reply still reaches the service); without systemd
``shutdown -r``, then ``reboot -f``, then the kernel's sysrq. In dry-run mode (``--dry-run``/``DRY_ENABLE``,
or the ``AGENT_REBOOT_DRY_RUN`` environment variable) the request is appended to a marker file instead, which
is what tests and demos check. A process running under pytest refuses to reboot for real whatever it is told.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InvalidStepArguments, StepError
from common.host import Host
from steps.base import Step, StepContext, StepResult, StepSettings, get_field, json_arg, uuid_field
from steps.lib.progress import REBOOTING, ProgressReporter

STEP = "reboot"
MAX_DELAY = 3600


@dataclass(frozen=True)
class RebootParams:
    delay_seconds: int = 0
    reason: str = ""
    infra_env_id: str | None = None
    host_id: str | None = None


def dry_run(ctx: StepContext) -> bool:
    """Dry-run when the agent runs with --dry-run (or the Go agent's DRY_ENABLE), or AGENT_REBOOT_DRY_RUN."""
    return ctx.config.dry_run or ctx.config.reboot_dry_run


def marker_path(config: StepSettings) -> Path:
    """Where dry-run reboots are recorded: the Go agent's $DRY_FAKE_REBOOT_MARKER_PATH (with dry-run on), else
    $AGENT_REBOOT_MARKER, else reboot-requests.jsonl in the state directory."""
    explicit = config.dry.reboot_marker_path or config.reboot_marker
    if explicit:
        return Path(explicit)
    if not config.state_dir:
        raise StepError("dry-run: nowhere to record the reboot: the agent keeps no state directory",
                        hint="set AGENT_REBOOT_MARKER, or AGENT_STATE_DIR to a directory")
    return Path(config.state_dir) / "reboot-requests.jsonl"


def record_dry_run(ctx: StepContext, kind: str, details: dict[str, Any]) -> dict[str, Any]:
    path = marker_path(ctx.config)
    entry = {"time": time.time(), "step_type": kind, "step_id": ctx.step_id, **details}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
    except OSError as exc:
        raise StepError(f"dry-run: cannot record the {kind} request in {path}: {exc.strerror}") from exc
    return {"dry_run": True, "marker": str(path), **details}


def refuse_under_tests() -> None:
    """The last line of defence: a test must never reboot the machine running the test suite."""
    if "PYTEST_CURRENT_TEST" in os.environ:
        raise StepError("refusing to reboot the machine running the tests; use dry-run (AGENT_REBOOT_DRY_RUN=1)")


#: What systemctl answers, exiting 0, when it takes itself for chrooted: the request was dropped.
IGNORED_IN_CHROOT = "Running in chroot, ignoring"


def reboot_commands(host: Host, delay: int, reason: str) -> list[list[str]]:
    """The ways to reboot, best first, for what this host has.

    A live host seen at another root (the runner container sees the host at /host) is rebooted from inside that
    root (``chroot /host ...``, as reboot-for-reclaim does): ``systemctl reboot`` run from the container's own
    root takes itself for chrooted (its ``/`` is not PID 1's) and drops the request, exiting 0."""
    prefix = ["chroot", str(host.root)] if host.is_live and str(host.root) != "/" else []
    commands: list[list[str]] = []
    if host.exists("/run/systemd/system"):  # systemd is PID 1
        if delay:
            commands.append(["systemd-run", f"--on-active={delay}s", "--timer-property=AccuracySec=1s",
                             "--description=assisted agent reboot", "systemctl", "reboot"])
        else:
            commands.append(["systemctl", "reboot"])
    minutes = math.ceil(delay / 60)
    commands.append(["shutdown", "-r", f"+{minutes}" if minutes else "now", reason or "assisted agent reboot"])
    commands.append(["reboot", "-f"])
    return [prefix + argv for argv in commands]


def reboot_now(ctx: StepContext, delay: int, reason: str) -> dict[str, Any]:
    """Really reboot (outside tests): returns how, or raises with every failed attempt's error."""
    refuse_under_tests()
    os.sync()
    failures = []
    for argv in reboot_commands(ctx.host, delay, reason):
        command = argv[2:] if argv[0] == "chroot" else argv
        if command[0] == "reboot" and delay:
            time.sleep(min(delay, max(0.0, ctx.remaining() - 5)))
        result = ctx.host.run(argv, timeout=30)
        said = (result.stderr or result.stdout).strip()
        if result.ok and IGNORED_IN_CHROOT not in said:
            return {"dry_run": False, "method": " ".join(command[:2]), "output": result.stdout.strip()}
        failures.append(f"{command[0]}: {said or f'exit {result.exit_code}'}")
    try:  # sync, then reboot: the kernel's last resort, which needs no userspace at all
        trigger = ctx.host.path("/proc/sysrq-trigger")
        trigger.write_text("s")
        trigger.write_text("b")
    except OSError as exc:
        failures.append(f"sysrq: {exc.strerror}")
    raise StepError("cannot reboot the host: " + "; ".join(failures))


class RebootStep(Step[RebootParams]):
    step_type = STEP
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> RebootParams:
        if not args:
            return RebootParams()
        if len(args) != 1:
            raise InvalidStepArguments(f"{STEP} expects at most 1 argument (reboot_request), got {len(args)}")
        obj = json_arg(STEP, args[0], dict)
        delay = get_field(STEP, obj, "delay_seconds", int, required=False, default=0)
        if not 0 <= delay <= MAX_DELAY:
            raise InvalidStepArguments(f"{STEP}: delay_seconds must be between 0 and {MAX_DELAY}, got {delay}")
        ids = {name: uuid_field(STEP, obj, name, required=False) for name in ("infra_env_id", "host_id")}
        reason = get_field(STEP, obj, "reason", str, required=False, default="")
        return RebootParams(delay, reason[:200], ids["infra_env_id"], ids["host_id"])

    def timeout(self, params: RebootParams) -> float:
        return self.default_timeout + params.delay_seconds

    def run(self, params: RebootParams, ctx: StepContext) -> StepResult:
        progress = ProgressReporter(ctx, params.infra_env_id, params.host_id)
        progress.stage(REBOOTING, params.reason)
        details = {"delay_seconds": params.delay_seconds, "reason": params.reason}
        if dry_run(ctx):
            return StepResult(record_dry_run(ctx, STEP, details))
        return StepResult({**details, **reboot_now(ctx, params.delay_seconds, params.reason)})

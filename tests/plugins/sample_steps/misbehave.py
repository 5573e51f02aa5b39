"""Plugins that misbehave in every way a step can, to prove the daemon survives them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from steps.base import Step, StepContext, StepResult


class _NoArgs(Step[list[str]]):
    def parse_args(self, args: list[str]) -> list[str]:
        return args


class HangStep(_NoArgs):
    step_type = "sample-hang"
    default_timeout = 1.0

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        time.sleep(3600)
        return StepResult({})


class RaiseStep(_NoArgs):
    step_type = "sample-raise"

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        raise RuntimeError("the plugin has a bug")


class CrashStep(_NoArgs):
    step_type = "sample-crash"

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        os._exit(3)


class SpawnHangStep(_NoArgs):
    """Starts a grandchild in its own session that would outlive a naive kill, writes its pid, then hangs.

    Arguments: the pid file, and optionally the step's timeout in seconds (default 1).
    """

    step_type = "sample-spawn-hang"
    default_timeout = 1.0

    def timeout(self, params: list[str]) -> float:
        return float(params[1]) if len(params) > 1 else self.default_timeout

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
        if params:
            with open(params[0], "w") as fh:
                fh.write(str(child.pid))
        time.sleep(3600)
        return StepResult({})

"""Counts to a number slowly, showing its progress: how ``agent step`` shows long steps, tested in a pty."""

from __future__ import annotations

import time
from typing import Any

from common import progress
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg


class ProgressStep(Step[dict[str, Any]]):
    step_type = "sample-progress"
    default_timeout = 30.0

    def parse_args(self, args: list[str]) -> dict[str, Any]:
        expect_args(self.step_type, args, 1)
        obj = json_arg(self.step_type, args[0])
        get_field(self.step_type, obj, "bytes", int)
        return obj  # type: ignore[no-any-return]

    def run(self, params: dict[str, Any], ctx: StepContext) -> StepResult:
        total = params["bytes"]
        with progress.meter("copying", total, show=ctx.config.progress) as shown:
            for done in range(0, total + 1, total // 20):
                shown.update(done)
                time.sleep(0.05)
        return StepResult({"copied": total})

"""A well-behaved plugin: echoes its one JSON object argument back, after validating it."""

from __future__ import annotations

import time
from typing import Any

from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg


class EchoStep(Step[dict[str, Any]]):
    step_type = "sample-echo"
    default_timeout = 10.0

    def parse_args(self, args: list[str]) -> dict[str, Any]:
        expect_args(self.step_type, args, 1)
        obj = json_arg(self.step_type, args[0])
        get_field(self.step_type, obj, "message", str)
        get_field(self.step_type, obj, "sleep", (int, float), required=False)
        return obj  # type: ignore[no-any-return]

    def run(self, params: dict[str, Any], ctx: StepContext) -> StepResult:
        time.sleep(params.get("sleep", 0))
        return StepResult({"echo": params["message"], "host_root": str(ctx.host.root)})


class SettingsStep(Step[list[str]]):
    """Shows the settings its process got: what the daemon's request carried, the token included (a test's)."""

    step_type = "sample-settings"
    default_timeout = 10.0

    def parse_args(self, args: list[str]) -> list[str]:
        return args

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        return StepResult(ctx.config.to_dict())  # type: ignore[attr-defined]  # AgentConfig in a step process


class WhoAmIStep(Step[list[str]]):
    """Says which process it ran in and what that process had loaded: proof of how steps are started."""

    step_type = "sample-whoami"

    def parse_args(self, args: list[str]) -> list[str]:
        return args

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        import os
        import sys

        with open(f"/proc/{os.getpid()}/comm") as fh:
            comm = fh.read().strip()
        return StepResult({"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "comm": comm,
                           "modules": sorted(m for m in sys.modules if m.startswith(("agent.", "steps.")))})

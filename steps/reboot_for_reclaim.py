"""``reboot-for-reclaim``: reboot an installed host back into discovery (the real service's step).

The Go agent chroots into ``host_fs_mount_dir`` (the host's root, with the discovery boot entry that
``download-boot-artifacts`` wrote into its /boot) and runs ``systemctl reboot`` there. We run the same command
through ``chroot``, so the reboot uses the host's own systemd. Dry-run records the request like ``reboot``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from common.errors import InvalidStepArguments, StepError
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg
from steps.reboot import dry_run, record_dry_run, refuse_under_tests

STEP = "reboot-for-reclaim"


@dataclass(frozen=True)
class ReclaimParams:
    host_fs_mount_dir: str


class RebootForReclaimStep(Step[ReclaimParams]):
    step_type = STEP
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> ReclaimParams:
        expect_args(STEP, args, 1)
        obj = json_arg(STEP, args[0], dict)
        root = get_field(STEP, obj, "host_fs_mount_dir", str)
        if not root.startswith("/") or "\0" in root or ".." in root.split("/"):
            raise InvalidStepArguments(f"{STEP}: host_fs_mount_dir must be an absolute path, got {root!r}")
        return ReclaimParams(os.path.normpath(root))

    def run(self, params: ReclaimParams, ctx: StepContext) -> StepResult:
        if not ctx.host.is_dir(params.host_fs_mount_dir):
            raise StepError(f"{STEP}: host_fs_mount_dir {params.host_fs_mount_dir} is not a directory on the host")
        if not ctx.host.is_dir(os.path.join(params.host_fs_mount_dir, "boot")):
            raise StepError(f"{STEP}: {params.host_fs_mount_dir} has no /boot folder to reboot from")
        argv = ["chroot", str(ctx.host.path(params.host_fs_mount_dir)), "systemctl", "reboot"]
        if dry_run(ctx):
            return StepResult(record_dry_run(ctx, STEP, {"command": argv}))
        if platform.machine() == "s390x":
            raise StepError(f"{STEP}: s390x needs zipl to be rerun before the reboot, which is not supported")
        refuse_under_tests()
        os.sync()
        result = ctx.host.run(argv, timeout=60)
        return StepResult(result.stdout, result.exit_code, result.stderr.strip())

"""``logs-gather``: collect what explains a failed installation and upload it as the host's logs.

Where the Go agent starts its ``logs_sender`` container, we collect in-process: the journal (when journalctl
exists), the kernel log, the mount table, a fresh inventory (through the inventory step plugin, if it is
installed), the agent's recent step history and the installer logs under /var/log. Every source is capped
(bytes and seconds) and the archive as a whole too, so a huge journal cannot fill memory or stall the step;
what could not be collected is listed in ``collection-report.txt`` inside the archive instead of failing the
upload. The archive goes to ``POST /v2/clusters/{id}/logs?logs_type=host`` (multipart field ``upfile``), framed
by ``logs-progress`` updates (collecting, then completed) as logs_sender does.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field

from common import progress
from common.errors import InvalidStepArguments, ServiceError
from common.logs import redact_url
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg, uuid_field

STEP = "logs-gather"
#: Per source and for the whole archive (uncompressed): the service accepts archives of tens of MiB.
SOURCE_LIMIT = 16 << 20
TOTAL_LIMIT = 48 << 20
COMMAND_TIMEOUT = 30.0
REPORT_LIMIT = 64 << 10
LOG_FILES = ("/var/log/assisted-installer.log", "/var/log/agent.log", "/var/log/messages")


@dataclass(frozen=True)
class LogsParams:
    cluster_id: str
    infra_env_id: str
    host_id: str
    bootstrap: bool
    installer_gather: bool
    master_ips: list[str] = field(default_factory=list)


@dataclass
class Archive:
    """A tar.gz built in memory with a running budget; over-budget sources are cut and reported."""

    buffer: io.BytesIO = field(default_factory=io.BytesIO)
    used: int = 0
    report: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tar = tarfile.open(fileobj=self.buffer, mode="w:gz", compresslevel=6)  # noqa: SIM115

    def add(self, name: str, data: bytes) -> None:
        # URL passwords are cut from every source: a journal line or an old history entry may quote a --url
        data = redact_url(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        room = min(SOURCE_LIMIT, TOTAL_LIMIT - self.used)
        if room <= 0:
            self.report.append(f"{name}: skipped, the archive reached its {TOTAL_LIMIT} byte limit")
            return
        if len(data) > room:
            self.report.append(f"{name}: cut to its last {room} of {len(data)} bytes")
            data = data[-room:]
        self._member(name, data)
        self.used += len(data)
        self.report.append(f"{name}: {len(data)} bytes")

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"logs/{name}")
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> bytes:
        """Finish the archive; the report is always in it (outside the budget, it says what the budget cut)."""
        self._member("collection-report.txt", ("\n".join(self.report) + "\n").encode()[:REPORT_LIMIT])
        self.tar.close()
        return self.buffer.getvalue()


class LogsGatherStep(Step[LogsParams]):
    step_type = STEP
    default_timeout = 600.0

    def parse_args(self, args: list[str]) -> LogsParams:
        expect_args(STEP, args, 1)
        obj = json_arg(STEP, args[0], dict)
        ids = {name: str(uuid_field(STEP, obj, name)) for name in ("cluster_id", "infra_env_id", "host_id")}
        ips = get_field(STEP, obj, "master_ips", list, required=False, default=[])
        if not all(isinstance(ip, str) for ip in ips):
            raise InvalidStepArguments(f"{STEP}: master_ips must be a list of IP addresses")
        return LogsParams(
            ids["cluster_id"], ids["infra_env_id"], ids["host_id"],
            get_field(STEP, obj, "bootstrap", bool), get_field(STEP, obj, "installer_gather", bool), list(ips),
        )

    def run(self, params: LogsParams, ctx: StepContext) -> StepResult:
        self._logs_progress(ctx, params, "collecting")
        data, report = collect(ctx, params)
        ctx.client.request(
            "POST", f"/v2/clusters/{params.cluster_id}/logs",
            params={"logs_type": "host", "infra_env_id": params.infra_env_id, "host_id": params.host_id},
            files={"upfile": ("logs.tar.gz", data, "application/gzip")},
            expected=(200, 201, 204), timeout=(10.0, 120.0),
        ).close()
        self._logs_progress(ctx, params, "completed")
        return StepResult("Logs were sent\n" + "\n".join(report))

    def _logs_progress(self, ctx: StepContext, params: LogsParams, state: str) -> None:
        try:
            ctx.client.request(
                "PUT", f"/v2/infra-envs/{params.infra_env_id}/hosts/{params.host_id}/logs-progress",
                json={"logs_state": state}, expected=(200, 204),
            ).close()
        except ServiceError as exc:  # progress is informative; the upload is what matters
            ctx.log.warning("logs-progress %s not accepted: %s", state, exc)


def collect(ctx: StepContext, params: LogsParams) -> tuple[bytes, list[str]]:
    """The archive and its report lines. Each source gets a bounded share of the step's remaining time."""
    archive = Archive()
    host = ctx.host
    commands = {
        "journal-agent.log": ["journalctl", "--no-pager", "-o", "short-iso", "-n", "20000", "-u", "agent.service"],
        "journal.log": ["journalctl", "--no-pager", "-o", "short-iso", "-b", "-n", "50000"],
        "dmesg.log": ["dmesg"],
    }
    # shown on agent step's terminal only
    with progress.meter("collecting logs", len(commands), unit="commands", show=ctx.config.progress) as shown:
        for name, argv in commands.items():
            shown.add(1)
            if host.which(argv[0]) is None:
                archive.report.append(f"{name}: {argv[0]} is not installed")
                continue
            result = host.run(argv, timeout=min(COMMAND_TIMEOUT, max(1.0, ctx.remaining() / 4)))
            if result.ok or result.stdout:
                archive.add(name, result.stdout.encode())
            if not result.ok:
                archive.report.append(f"{name}: {argv[0]} exit {result.exit_code}: {result.stderr.strip()[:300]}")
    for name, path in (("mountinfo.txt", "/proc/self/mountinfo"), ("mounts.txt", "/proc/mounts"),
                       *((os.path.basename(p), p) for p in LOG_FILES)):
        text = host.read_bytes(path)
        if text is not None:
            archive.add(name, text)
    archive.add("inventory.json", _inventory(ctx, params, archive.report))
    if not ctx.config.state_dir:
        archive.report.append("step-history.jsonl: the agent keeps no state directory (AGENT_STATE_DIR is empty)")
    else:
        history = os.path.join(ctx.config.state_dir, "history.jsonl")
        try:
            with open(history, "rb") as fh:
                archive.add("step-history.jsonl", fh.read(SOURCE_LIMIT + 1))
        except OSError as exc:
            archive.report.append(f"step-history.jsonl: {history}: {exc.strerror}")
    if params.bootstrap or params.master_ips:
        archive.report.append("bootstrap/master log gathering (installer_gather over SSH) is not supported here")
    data = archive.close()
    return data, archive.report


def _inventory(ctx: StepContext, params: LogsParams, report: list[str]) -> bytes:
    """A fresh inventory through the inventory plugin; its absence or failure is reported, not fatal."""
    from steps import registry

    try:
        step = registry.load("inventory")()
        result = step.run(step.parse_args([params.host_id]), ctx)
    except Exception as exc:  # another area's plugin: whatever it raises must not lose the other logs
        report.append(f"inventory.json: inventory collection failed: {type(exc).__name__}: {exc}")
        return json.dumps({"error": str(exc)}).encode()
    return str(result.encoded_output()).encode()

"""``install``: the real service's installation step, run the way the Go agent runs it.

The request (``install_cmd_request``) is validated first, as the Go agent does before anything runs: the boot
device and every disk to format must be device paths that exist, images must be image references, proxies
and installer arguments must pass the assisted-service validators, the OpenShift version must parse. Then
the installer image is pulled if absent (``podman images --quiet``, then up to three ``podman pull``; a pull
that keeps failing is exit code 2) and the ``assisted-installer`` container runs in the foreground with the
Go agent's exact argument list, given to podman as a list (never through a shell). Its exit code, stdout and
stderr are the reply.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from common.errors import InvalidStepArguments, StepError
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg, uuid_field

STEP = "install"
CONTAINER_NAME = "assisted-installer"
ROLES = ("auto-assign", "master", "arbiter", "worker", "bootstrap")
#: The spec's pattern for image references (install_cmd_request.installer_image and friends).
IMAGE_RE = re.compile(r"^(([a-zA-Z0-9\-\.]+)(:[0-9]+)?\/)?[a-z0-9\._\-\/@]+[?::a-zA-Z0-9_\-.]+$")
MUST_GATHER_KEYS = {"cnv", "lso", "ocs", "odf", "ocp"}
#: coreos-installer flags the service lets users pass (assisted-service ValidateInstallerArgs).
ALLOWED_INSTALLER_ARGS = {
    "--append-karg", "--delete-karg", "-n", "--copy-network", "--network-dir", "--save-partlabel",
    "--save-partindex", "--image-url", "--image-file",
}
VERSION_RE = re.compile(r"^v?\d+(\.\d+){0,2}([-+.][0-9A-Za-z.\-+]*)?$")
PULL_ATTEMPTS = 3
PULL_TIMEOUT = 600.0
EXIT_PULL_FAILED = 2


@dataclass(frozen=True)
class InstallParams:
    request: dict[str, Any]


def _check_image(name: str, value: str) -> None:
    # The spec's pattern lets a reference start with "-" (podman would read an option) and ``$`` matches before
    # a final newline: both are refused before anything reaches podman's command line.
    if value.startswith("-") or not value.isprintable() or not IMAGE_RE.fullmatch(value):
        raise InvalidStepArguments(f"{STEP}: {name} {value!r} is not a valid image reference")


def _check_proxy(name: str, value: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise InvalidStepArguments(f"{STEP}: proxy {name} {value!r} must be a {wanted} URL with a host")


def _check_no_proxy(value: str) -> None:
    if value == "*":
        return
    for item in value.split(","):
        item = item.strip()
        if not item or not re.match(r"^\.?[A-Za-z0-9\-\.:/\[\]]+$", item):
            raise InvalidStepArguments(f"{STEP}: no_proxy entry {item!r} is not a domain, IP address or CIDR")


def validate_request(obj: dict[str, Any], exists: Any) -> None:
    """Every check of the Go agent's install command before it runs (``exists`` tests a host path)."""
    for name in ("cluster_id", "infra_env_id", "host_id"):
        uuid_field(STEP, obj, name)
    role = get_field(STEP, obj, "role", str)
    if role not in ROLES:
        raise InvalidStepArguments(f"{STEP}: role must be one of {', '.join(ROLES)}, got {role!r}")
    boot = get_field(STEP, obj, "boot_device", str)
    disks = get_field(STEP, obj, "disks_to_format", list, required=False, default=[])
    for disk in [boot, *disks]:
        if not isinstance(disk, str) or not disk.startswith("/dev/"):
            raise InvalidStepArguments(f"{STEP}: device {disk!r} must be a path under /dev/")
        if not exists(disk):
            raise InvalidStepArguments(f"{STEP}: device {disk} does not exist on this host")
    for name in ("controller_image", "installer_image"):
        _check_image(name, get_field(STEP, obj, name, str))
    mco = get_field(STEP, obj, "mco_image", str, required=False)
    if mco:
        _check_image("mco_image", mco)
    gather = get_field(STEP, obj, "must_gather_image", str, required=False)
    if gather:
        if gather.lstrip().startswith("{"):
            try:
                images = json.loads(gather)
            except ValueError as exc:
                raise InvalidStepArguments(f"{STEP}: must_gather_image is not valid JSON: {exc}") from exc
            if not isinstance(images, dict) or not set(images) <= MUST_GATHER_KEYS:
                raise InvalidStepArguments(
                    f"{STEP}: must_gather_image keys must be among {', '.join(sorted(MUST_GATHER_KEYS))}"
                )
            for key, image in images.items():
                _check_image(f"must_gather_image[{key}]", str(image))
        else:
            _check_image("must_gather_image", gather)
    version = get_field(STEP, obj, "openshift_version", str, required=False)
    if version and not VERSION_RE.match(version):
        raise InvalidStepArguments(f"{STEP}: openshift_version {version!r} is not a version")
    proxy = get_field(STEP, obj, "proxy", dict, required=False, default={})
    if proxy.get("http_proxy"):
        _check_proxy("http_proxy", str(proxy["http_proxy"]), ("http",))
    if proxy.get("https_proxy"):
        _check_proxy("https_proxy", str(proxy["https_proxy"]), ("http", "https"))
    if proxy.get("no_proxy"):
        _check_no_proxy(str(proxy["no_proxy"]))
    installer_args = get_field(STEP, obj, "installer_args", str, required=False)
    if installer_args:
        check_installer_args(installer_args)
    count = get_field(STEP, obj, "control_plane_count", int, required=False)
    if count is not None and count < 1:
        raise InvalidStepArguments(f"{STEP}: control_plane_count must be positive, got {count}")
    for name in ("service_ips",):
        ips = get_field(STEP, obj, name, list, required=False, default=[])
        if not all(isinstance(ip, str) for ip in ips):
            raise InvalidStepArguments(f"{STEP}: {name} must be a list of strings")


def check_installer_args(raw: str) -> list[str]:
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise InvalidStepArguments(f"{STEP}: installer_args is not a JSON list: {exc}") from exc
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidStepArguments(f"{STEP}: installer_args must be a JSON list of strings")
    for arg in args:
        if arg.startswith("-") and arg.split("=", 1)[0] not in ALLOWED_INSTALLER_ARGS:
            allowed = ", ".join(sorted(ALLOWED_INSTALLER_ARGS))
            raise InvalidStepArguments(f"{STEP}: installer argument {arg!r} is not allowed; allowed: {allowed}")
    return args


def installer_command(req: dict[str, Any], *, url: str, agent_image: str, cacert: str | None, insecure: bool,
                      copy_network: bool = False) -> list[str]:
    """The ``podman run`` of the installer container, argument for argument as the Go agent builds it."""
    argv = ["podman", "run", "--privileged", "--pid=host", "--net=host", f"--name={CONTAINER_NAME}",
            "-v", "/dev:/dev:rw", "-v", "/opt:/opt:rw", "-v", "/var/log:/var/log:rw",
            "-v", "/run/systemd/journal/socket:/run/systemd/journal/socket",
            "-v", "/etc/pki:/etc/pki", "-v", "/tmp:/tmp", "--env=PULL_SECRET_TOKEN"]
    if cacert:
        argv += ["-v", f"{cacert}:{cacert}:rw"]
    argv += [req["installer_image"], "--role", req["role"], "--infra-env-id", req["infra_env_id"],
             "--cluster-id", req["cluster_id"], "--host-id", req["host_id"], "--boot-device", req["boot_device"],
             "--url", url, "--controller-image", req["controller_image"], "--agent-image", agent_image]
    if req.get("control_plane_count"):
        argv += ["--control-plane-count", str(req["control_plane_count"])]
    for key, flag in (("mco_image", "--mco-image"), ("must_gather_image", "--must-gather-image"),
                      ("openshift_version", "--openshift-version")):
        if req.get(key):
            argv += [flag, str(req[key])]
    for disk in req.get("disks_to_format") or []:
        argv += ["--format-disk", disk]
    if insecure:
        argv.append("--insecure")
    if req.get("check_cvo", True):
        argv.append("--check-cluster-version")
    if req.get("skip_installation_disk_cleanup"):
        argv.append("--skip-installation-disk-cleanup")
    if cacert:
        argv += ["--cacert", cacert]
    installer_args = json.loads(req["installer_args"]) if req.get("installer_args") else []
    if copy_network and "--copy-network" not in installer_args:
        installer_args.append("--copy-network")
    if installer_args:
        argv += ["--installer-args", json.dumps(installer_args)]
    if req.get("enable_skip_mco_reboot"):
        argv.append("--enable-skip-mco-reboot")
    if req.get("notify_num_reboots"):
        argv.append("--notify-num-reboots")
    proxy = req.get("proxy") or {}
    for key, flag in (("http_proxy", "--http-proxy"), ("https_proxy", "--https-proxy"), ("no_proxy", "--no-proxy")):
        if proxy.get(key):
            argv += [flag, str(proxy[key])]
    if req.get("service_ips"):
        argv += ["--service-ips", ",".join(req["service_ips"])]
    if req.get("coreos_image"):
        argv += ["--coreos-image", req["coreos_image"]]
    return argv


def wants_copy_network(ctx: StepContext) -> bool:
    """The agent-based installer's TUI case: network keyfiles written after the agent's logs dir appeared."""
    host = ctx.host
    if not host.exists("/var/log/agent/agent-tui.log"):
        return False
    try:
        since = os.stat(host.path("/var/log/agent")).st_ctime
    except OSError:
        return False
    folder = "/proc/1/root/etc/NetworkManager/system-connections"
    for name in host.listdir(folder):
        path = f"{folder}/{name}"
        try:
            fresh = os.stat(host.path(path)).st_mtime >= since
        except OSError:
            continue
        if fresh and "[connection]" in (host.read_text(path) or ""):
            return True
    return False


class InstallStep(Step[InstallParams]):
    step_type = STEP
    default_timeout = 4 * 3600.0  # the container runs until the installer reboots the host

    def parse_args(self, args: list[str]) -> InstallParams:
        expect_args(STEP, args, 1)
        obj = json_arg(STEP, args[0], dict)
        # device existence is checked in run(), against the step's host; everything else here
        validate_request(obj, lambda _path: True)
        return InstallParams(obj)

    def run(self, params: InstallParams, ctx: StepContext) -> StepResult:
        req = params.request
        validate_request(req, ctx.host.exists)
        if ctx.host.which("podman") is None:
            raise StepError(f"{STEP}: podman is not installed; the installer container cannot run")
        image = req["installer_image"]
        present = ctx.host.run(["podman", "images", "--quiet", image], timeout=60)
        if not (present.ok and present.stdout.strip()):
            errors = []
            for _ in range(PULL_ATTEMPTS):
                pulled = ctx.host.run(["podman", "pull", image], timeout=min(PULL_TIMEOUT, ctx.remaining()))
                if pulled.ok:
                    break
                errors.append((pulled.stderr or pulled.stdout).strip().splitlines()[-1:] or [""])
            else:
                last = errors[-1][0] if errors else ""
                return StepResult("", EXIT_PULL_FAILED, f"failed to pull installer image {image}: {last}")
        argv = installer_command(
            req, url=ctx.config.url, agent_image=ctx.config.agent_version, cacert=ctx.config.cacert,
            insecure=ctx.config.insecure, copy_network=wants_copy_network(ctx),
        )
        # podman hands the token to the installer (--env=PULL_SECRET_TOKEN) from its own environment
        result = ctx.host.run(argv, timeout=max(1.0, ctx.remaining() - 5), env={"PULL_SECRET_TOKEN": ctx.config.token})
        return StepResult(result.stdout, result.exit_code, result.stderr.strip() if not result.ok else "")

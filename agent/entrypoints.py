"""The Go agent image's command names, chosen by the name the program was started as (argv[0]), as in Go.

    agent              the daemon (agent.cli): in the self-contained /usr/bin/agent it registers and launches the
                       runner container (agent.launcher); the image's Python agent runs the steps itself
    next_step_runner   the poll loop the host's agent starts in a container (agent.next_step_runner)
    inventory          print this host's inventory JSON
    free_addresses     '<["10.0.0.0/24", ...]>'   print the free-network-addresses answer
    disk_speed_check   '<{"path": "/dev/sda"}>'   print the installation-disk-speed-check answer
    logs_sender        -url U -cluster-id C -host-id H [-infra-env-id I] [-bootstrap] ...   gather and upload logs

Each takes the Go binary's flags (go-agent-behaviour.md 1.1); logging and dry-run flags are accepted. In a
container that has the host's root at /host (``podman run -v /:/host ...``) they describe that host.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from common.go_bool import parse_bool

HOST_MOUNT = "/host"


def default_host_root() -> str:
    """``/host`` when the host's root is mounted there (the documented podman line), else ``/``."""
    return HOST_MOUNT if os.path.isdir(os.path.join(HOST_MOUNT, "sys", "class")) else "/"


def _go_flags(prog: str, argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The command's flags (``agent.settings.IMAGE_FLAGS``, the one table) and its other arguments; a flag
    the Go binaries do not take is a usage error (ConfigError: one line and a hint, status 2)."""
    from agent.settings import add_image_flags
    from common.argparser import Parser

    parser = Parser(prog=prog)
    add_image_flags(parser)
    parser.add_argument("args", nargs="*")
    ns, unknown = parser.parse_known_args(list(argv))
    if unknown:
        parser.error(f"unknown flags: {' '.join(unknown)}")
    return ns, list(ns.args)


def _flag(ns: argparse.Namespace, name: str) -> bool:
    value = getattr(ns, name.replace("-", "_"))
    return value is not None and parse_bool(value)


def run_step_once(step_type: str, args: list[str], ns: argparse.Namespace) -> int:
    """One step through the real runner (its own process); its output on stdout, its error on stderr."""
    from agent.runner import StepRunner
    from agent.settings import resolve
    from common.logs import setup_logging

    known = resolve(None, read_file=False)  # the environment's settings (the image's commands read no agent.conf)
    config = known._replace(url=ns.url or "", infra_env_id=ns.infra_env_id or "", cacert=ns.cacert,
                     insecure=_flag(ns, "insecure"), host_root=default_host_root(),
                     dry_run=_flag(ns, "dry-run") or known.dry_run, log_level="warning",
                     token=ns.pull_secret_token or known.token)
    setup_logging(json_lines=False, level="warning", journal=False, secrets=[config.token])
    runner = StepRunner(config)
    try:
        reply = runner.run(step_type, f"{step_type}-cli", args)
    finally:
        runner.close()
    if reply.output:
        print(reply.output)
    if reply.error:
        print(f"{step_type}: {reply.error}", file=sys.stderr)
    return 0 if reply.exit_code == 0 else 1


def _one_json_arg(prog: str, args: list[str]) -> str:
    if len(args) != 1:
        print(f"{prog}: expected one JSON argument, got {len(args)}", file=sys.stderr)
        raise SystemExit(2)
    return args[0]


def _logs_sender(argv: Sequence[str]) -> int:
    ns, _ = _go_flags("logs_sender", argv)
    missing = [f"-{n}" for n in ("url", "cluster-id", "host-id") if not getattr(ns, n.replace("-", "_"))]
    if missing:
        print(f"logs_sender: {', '.join(missing)} required", file=sys.stderr)
        return 2
    request = {"cluster_id": ns.cluster_id, "host_id": ns.host_id, "infra_env_id": ns.infra_env_id or "",
               "bootstrap": _flag(ns, "bootstrap"), "installer_gather": _flag(ns, "with-installer-gather-logging"),
               "master_ips": [ip for ip in (ns.masters_ips or "").split(",") if ip]}
    return run_step_once("logs-gather", [json.dumps(request)], ns)


def _with_host_root(argv: Sequence[str]) -> list[str]:
    args = list(argv)
    if not any(a.lstrip("-").startswith("host-root") for a in args) and default_host_root() != "/":
        args += ["--host-root", default_host_root()]
    return args


def main(argv: Sequence[str] | None = None, *, name: str | None = None) -> int:
    prog = os.path.basename(name or sys.argv[0])
    args = list(sys.argv[1:] if argv is None else argv)
    from common.usage import run_main

    return run_main(prog, lambda: _run(prog, args))


def _run(prog: str, args: list[str]) -> int:
    from agent import cli

    if prog == "agent":
        return cli.main(args)
    if prog == "next_step_runner":
        return cli.main(_with_host_root(args), role="next_step_runner")
    if prog == "inventory":
        _go_flags(prog, args)
        from agent.inventory_report import main as inventory_main

        return int(inventory_main(["--root", default_host_root()]))
    if prog == "free_addresses":
        ns, rest = _go_flags(prog, args)
        return run_step_once("free-network-addresses", [_one_json_arg(prog, rest)], ns)
    if prog == "disk_speed_check":
        ns, rest = _go_flags(prog, args)
        return run_step_once("installation-disk-speed-check", [_one_json_arg(prog, rest)], ns)
    if prog == "logs_sender":
        return _logs_sender(args)
    print(f"unknown binary name {prog}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

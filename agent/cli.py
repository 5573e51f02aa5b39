"""``agent``: the daemon (the Go agent's command line), plus developer and hardware-testing subcommands.

    agent --url URL --infra-env-id ID [--agent-version V] [--interval S] [--cacert PATH]
          [--insecure[=BOOL]] [--host-id ID] [--log-json] ...      run the daemon (what agent.service runs)
    agent step NAME [ARGS...]                                      run one step once and print its reply
    agent inventory [--format json|table]                          this host's inventory, as the service gets it
    agent record-host DIR                                          record this host as a fixture tree
    agent check [--role R] [--profile P] [--format table|json]     would this host pass the hardware validations?

Flags are accepted Go-style (``-flag``, ``--flag=value``) because the discovery image passes them so. A bad
command line is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from agent import __version__
from agent.errors import AgentError, ConfigError

if TYPE_CHECKING:
    from agent.config import AgentConfig

EXIT_USAGE = 2
#: Flags that take a value (Go style allows -flag value); boolean flags accept only -flag or -flag=BOOL.
_LONG_FLAGS = {
    "url", "infra-env-id", "agent-version", "interval", "cacert", "insecure", "host-id", "log-json",
    "log-level", "host-root", "config", "dry-run", "shutdown-grace", "with-journal-logging",
    "with-text-logging", "with-stdout-logging", "help", "version",
}
_BOOL_FLAGS = {"insecure", "log-json", "dry-run", "with-journal-logging", "with-text-logging", "with-stdout-logging"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message, hint=f"see '{self.prog} --help'")


def _go_style(argv: Sequence[str]) -> list[str]:
    """-flag and -flag=value (Go's flag package) become --flag forms argparse understands."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            name = arg[1:].split("=", 1)[0]
            if name in _LONG_FLAGS:
                arg = "-" + arg
        out.append(arg)
    return out


def _bool_flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    parser.add_argument(f"--{name}", nargs="?", const="true", default=None, metavar="BOOL", help=help)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    from agent.config import DEFAULT_CONF  # here, not at the top: `agent inventory` starts without it

    parser.add_argument("--url", help="assisted-service URL, e.g. https://service:8090")
    parser.add_argument("--infra-env-id", help="UUID of the infra-env this host belongs to")
    parser.add_argument("--agent-version", help="agent image reference, echoed to the service verbatim")
    parser.add_argument("--cacert", help="PEM file of a CA to trust in addition to the system store")
    _bool_flag(parser, "insecure", "skip TLS verification (explicit, never the default)")
    parser.add_argument("--host-id", help="use this host id instead of deriving one from the hardware")
    parser.add_argument("--host-root", help="where the host's filesystem is (default /; /host in a container)")
    _bool_flag(parser, "dry-run", "record destructive actions (reboot) instead of doing them")
    _bool_flag(parser, "log-json", "log JSON lines instead of text")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    parser.add_argument("--config", default=None, help=f"KEY=VALUE settings file (default {DEFAULT_CONF})")


def daemon_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="agent", description="OpenShift Assisted Installer agent (Python). Subcommands: "
                "step, inventory, check, record-host; see 'agent SUBCOMMAND --help'.")
    _connection_flags(p)
    p.add_argument("--interval", help="seconds between registration retries (default 60)")
    p.add_argument("--shutdown-grace", help="seconds running steps get after SIGTERM (default 30)")
    for name in ("with-journal-logging", "with-text-logging", "with-stdout-logging"):
        _bool_flag(p, name, "accepted for compatibility with the Go agent")
    p.add_argument("--version", action="version", version=f"agent {__version__}")
    return p


def build_config(ns: argparse.Namespace, *, env: dict[str, str] | None = None) -> AgentConfig:
    """Flags, then agent.conf, then defaults. The token comes from the environment, else agent.conf."""
    from agent.config import DEFAULT_CONF, PROXY_VARS, AgentConfig, parse_bool, read_conf

    env = dict(os.environ) if env is None else env
    conf_path = ns.config or env.get("AGENT_CONFIG") or DEFAULT_CONF
    conf = read_conf(conf_path)
    if ns.config and not os.path.exists(ns.config):
        raise ConfigError(f"--config {ns.config}: no such file")

    def pick(attr: str, key: str) -> Any:
        value = getattr(ns, attr, None)
        return value if value is not None else conf.get(key)

    def boolean(attr: str, key: str, default: bool) -> bool:
        value = pick(attr, key)
        if value is None:
            return default
        try:
            return parse_bool(str(value))
        except ValueError:
            raise ConfigError(f"--{attr.replace('_', '-')}: {value!r} is not a boolean (true/false)") from None

    def number(attr: str, key: str, default: float) -> float:
        value = pick(attr, key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"--{attr.replace('_', '-')}: {value!r} is not a number") from None

    cfg = AgentConfig(
        url=pick("url", "URL") or "",
        infra_env_id=pick("infra_env_id", "INFRA_ENV_ID") or "",
        agent_version=pick("agent_version", "AGENT_VERSION") or "",
        interval=number("interval", "INTERVAL", 60.0),
        cacert=pick("cacert", "CACERT") or None,
        insecure=boolean("insecure", "INSECURE", False),
        host_id=pick("host_id", "HOST_ID") or None,
        host_root=pick("host_root", "HOST_ROOT") or "/",
        log_json=boolean("log_json", "LOG_JSON", False),
        log_level=pick("log_level", "LOG_LEVEL") or "info",
        shutdown_grace=number("shutdown_grace", "SHUTDOWN_GRACE", 30.0),
        dry_run=boolean("dry_run", "DRY_RUN", False) or parse_bool(env.get("DRY_ENABLE", "false") or "false"),
    )
    cfg.token = env.get("PULL_SECRET_TOKEN") or conf.get("PULL_SECRET_TOKEN", "")
    if cfg.token and not env.get("PULL_SECRET_TOKEN"):
        os.environ["PULL_SECRET_TOKEN"] = cfg.token  # step processes read it from the environment
    for var in PROXY_VARS:  # a hand-run agent honours the proxies of agent.conf like systemd would
        if conf.get(var) and var not in env:
            os.environ[var] = conf[var]
    return cfg


def _run_daemon(argv: list[str]) -> int:
    ns = daemon_parser().parse_args(_go_style(argv))
    cfg = build_config(ns)
    cfg.validate_for_daemon()
    from agent.config import parse_bool
    from agent.logs import setup_logging

    journal = None
    if ns.with_journal_logging is not None and not parse_bool(ns.with_journal_logging):
        journal = False
    if ns.with_stdout_logging is not None and parse_bool(ns.with_stdout_logging):
        journal = False
    setup_logging(json_lines=cfg.log_json, level=cfg.log_level, journal=journal, secrets=[cfg.token])
    from agent.daemon import Daemon

    return Daemon(cfg).run()


def _run_step(argv: list[str]) -> int:
    p = _Parser(prog="agent step", description="Run one step once through the real runner and print its reply.")
    p.add_argument("name", help="wire step type, e.g. inventory")
    p.add_argument("args", nargs="*", help="the step's arguments: one JSON list, or each argument as is")
    p.add_argument("--wire", action="store_true", help="print the reply exactly as it would be posted")
    _connection_flags(p)
    ns = p.parse_intermixed_args(_go_style(argv))
    cfg = build_config(ns)
    args: list[str] = list(ns.args)
    if len(args) == 1:
        try:
            decoded = json.loads(args[0])
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            args = [a if isinstance(a, str) else json.dumps(a) for a in decoded]
    from agent.logs import setup_logging
    from agent.runner import StepRunner

    setup_logging(json_lines=cfg.log_json, level=cfg.log_level or "warning", journal=False, secrets=[cfg.token])
    reply = StepRunner(cfg).run(ns.name, f"{ns.name}-cli", args)
    if ns.wire:
        print(json.dumps(reply.to_wire()))
    else:
        try:
            print(json.dumps(json.loads(reply.output), indent=2))
        except ValueError:
            if reply.output:
                print(reply.output)
        if reply.error:
            print(f"{ns.name}: exit code {reply.exit_code}: {reply.error}", file=sys.stderr)
    return 0 if reply.exit_code == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "step":
            return _run_step(args[1:])
        if args and args[0] == "inventory":
            from agent.inventory.report import main as inventory_main

            return int(inventory_main(args[1:]))
        if args and args[0] == "check":
            from agent.check import main as check_main

            return check_main(args[1:])
        if args and args[0] == "record-host":
            from agent.inventory.record import main as record_main

            return int(record_main(args[1:]))
        return _run_daemon(args)
    except AgentError as exc:
        print(f"agent: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"agent: hint: {exc.hint}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

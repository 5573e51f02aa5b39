"""The agent's command-line parsers and how their flags become settings, shared by ``agent`` (agent.cli) and its
hand-run subcommands (agent.step_cli), so that neither imports the other.

Flags are accepted Go-style (``-flag``, ``--flag=value``) because the discovery image passes them so.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from agent import __version__
from common.errors import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from agent.config import AgentConfig

# argparse is imported by the parsers that need it, not here: `agent inventory` parses its two flags by hand.

#: Flags that take a value (Go style allows -flag value); boolean flags accept only -flag or -flag=BOOL.
_LONG_FLAGS = {
    "url", "infra-env-id", "agent-version", "interval", "cacert", "insecure", "host-id", "log-json",
    "log-level", "host-root", "config", "dry-run", "shutdown-grace", "with-journal-logging",
    "with-text-logging", "with-stdout-logging", "help", "version",
    "force-id", "force-mac", "force-hostname", "forced-ipv4", "fake-reboot-marker-path",
}
SUBCOMMANDS = {
    "step": "run one step once through the real runner and print its reply; --list shows the steps",
    "inventory": "this host's inventory: the JSON the service gets, or a table for a person",
    "check": "would this host pass the service's hardware validations? (exit 0 when it would)",
    "record-host": "record this host as a fixture tree the inventory can be replayed on",
    "completion": "print a bash or zsh completion script",
}
DAEMON_EPILOG = """subcommands (see 'agent SUBCOMMAND --help'):
{subcommands}

exit status:
  0  done (the daemon: the service said exit, or SIGTERM after the steps finished)
  1  failure at run time (the service unreachable for good, a step failed in 'agent step', ...)
  2  bad command line or agent.conf; the message says which flag and the hint what to do

environment:
  PULL_SECRET_TOKEN  the infra-env's token sent to the service (never logged)
  AGENT_CONFIG       agent.conf to read instead of {conf}
  HTTP(S)_PROXY, NO_PROXY  honoured by every request to the service
  AGENT_TRACEBACK=1  show the traceback of an unexpected error instead of one line

files:
  {conf}  KEY=VALUE settings (URL, INFRA_ENV_ID, ...), as systemd's EnvironmentFile=

examples:
  agent --url http://127.0.0.1:8090 --infra-env-id ID      register and run until the service says exit
  agent step --list                                        every step, what it does, where it comes from
  agent step inventory                                     one step's reply, as the service would get it
  agent inventory --format table                           this host, for a person
  source <(agent completion bash)                          tab completion in this shell
"""


def go_style(argv: Sequence[str]) -> list[str]:
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


def _path(action: argparse.Action, kind: str = "file") -> None:
    """Tells the generated completion (shtab) to complete a file or directory name here."""
    action.complete = {"bash": f"_shtab_compgen_{kind}s", "zsh": "_files" + (" -/" if kind == "dir" else "")}  # type: ignore[attr-defined]


def connection_flags(parser: argparse.ArgumentParser) -> None:
    from agent.config import DEFAULT_CONF  # here, not at the top: `agent inventory` starts without it

    parser.add_argument("--url", help="assisted-service URL, e.g. https://service:8090")
    parser.add_argument("--infra-env-id", help="UUID of the infra-env this host belongs to")
    parser.add_argument("--agent-version", help="agent image reference, echoed to the service verbatim")
    _path(parser.add_argument("--cacert", help="PEM file of a CA to trust in addition to the system store"))
    _bool_flag(parser, "insecure", "skip TLS verification (explicit, never the default)")
    parser.add_argument("--host-id", help="use this host id instead of deriving one from the hardware")
    _path(parser.add_argument("--host-root", help="where the host's filesystem is (default /; /host in a container)"),
          "dir")
    _bool_flag(parser, "dry-run", "record destructive actions (reboot) instead of doing them")
    _bool_flag(parser, "log-json", "log JSON lines instead of text")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    _path(parser.add_argument("--config", default=None, help=f"KEY=VALUE settings file (default {DEFAULT_CONF})"))


def not_here() -> tuple[str, ...]:
    """Subcommands the self-contained host binary (PyInstaller, sys.frozen) does not carry: it has no step code,
    which runs in the agent image; its --help does not offer them and they say where to run them instead."""
    return ("step",) if getattr(sys, "frozen", False) else ()


def daemon_parser() -> argparse.ArgumentParser:
    import argparse

    from agent.config import DEFAULT_CONF
    from common.argparser import Parser

    shown = {k: v for k, v in SUBCOMMANDS.items() if k not in not_here()}
    subcommands = "\n".join(f"  {name:12} {text}" for name, text in shown.items())
    p = Parser(prog="agent", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="OpenShift Assisted Installer agent (Python), a drop-in replacement for the Go agent. "
               "Without a subcommand it runs the daemon: register the host, then fetch, run and reply to steps.",
               epilog="\n".join(line for line in DAEMON_EPILOG.format(subcommands=subcommands, conf=DEFAULT_CONF)
                                 .split("\n") if not any(f"agent {k} " in line for k in not_here())))
    connection_flags(p)
    p.add_argument("--interval", help="seconds between registration retries (default 60)")
    p.add_argument("--shutdown-grace", help="seconds running steps get after SIGTERM (default 30)")
    for name in ("with-journal-logging", "with-text-logging", "with-stdout-logging"):
        _bool_flag(p, name, "accepted for compatibility with the Go agent")
    from common.dry_run import FLAG_ENV

    for attr, var in FLAG_ENV.items():
        p.add_argument("--" + attr.replace("_", "-"), help=f"with --dry-run: as ${var}")
    p.add_argument("--version", action="version", version=f"agent {__version__}")
    return p


def build_config(ns: argparse.Namespace, *, env: dict[str, str] | None = None) -> AgentConfig:
    """Flags, then agent.conf, then defaults. The token comes from the environment, else agent.conf."""
    from agent.config import DEFAULT_CONF, PROXY_VARS, AgentConfig, read_conf
    from common.go_bool import parse_bool

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

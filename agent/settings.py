"""Every setting of ``agent``, declared once: its flag, its agent.conf key, its environment variable, its default,
its type and its help. The daemon's parser, ``--help``, the resolution and docs/settings.md are made from
:data:`TABLE`, and a test checks the README against it, so a setting cannot be added in one place and missed in
another.

Resolved once, at start (:func:`resolve`): a flag wins over agent.conf, agent.conf over the environment, the
environment over the default; the result is one :class:`agent.config.AgentConfig`, which every part of the agent
is handed and every step process gets in its request (agent.runner), never through ``os.environ``. Two
exceptions keep what the Go agent does: the token is taken from the environment before agent.conf (systemd puts
agent.conf into the environment anyway, and a token exported by hand is the one meant), and dry-run is on when
``--dry-run`` (or ``DRY_RUN`` in agent.conf) or ``DRY_ENABLE`` says so, as the Go agent ORs them.

A malformed flag or agent.conf value is a usage error naming the flag; the step knobs' variables (for labs and
tests) were read leniently where they were used, and still are: a value that does not parse leaves the default.

What is not here, on purpose: the proxy variables (``HTTP_PROXY``...) are the environment of the agent and of
everything it starts, read by requests, podman and curl themselves; a hand-run agent honours agent.conf's as
systemd would, in its requests and in the environment of what it starts (AgentConfig.proxies). systemd's
``NOTIFY_SOCKET``/``WATCHDOG_*`` are systemd's protocol with the process (agent.notify). ``AGENT_TRACEBACK``
governs how a failure of this very resolution is shown (common.usage), so it is read where that happens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from common.errors import ConfigError
from common.go_bool import parse_bool
from common.settings_table import Setting
from common.settings_table import markdown as table_markdown

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from agent.config import AgentConfig

DEFAULT_CONF = "/etc/assisted/agent.conf"
DEFAULT_STATE_DIR = "/var/lib/assisted-agent"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def _knob(name: str, kind: type, env: str, default: Any, help: str, **kw: Any) -> Setting:
    return Setting(name, kind, default, help, env=env, where="none", **kw)


TABLE: tuple[Setting, ...] = (
    Setting("conf_path", str, DEFAULT_CONF, "KEY=VALUE settings file, as systemd's EnvironmentFile=",
            flag="--config", env="AGENT_CONFIG", complete="file", metavar="PATH"),
    Setting("url", str, "", "assisted-service URL, e.g. https://service:8090", flag="--url", key="URL",
            env="AGENT_URL"),
    Setting("infra_env_id", str, "", "UUID of the infra-env this host belongs to", flag="--infra-env-id",
            key="INFRA_ENV_ID"),
    Setting("agent_version", str, "", "agent image reference, echoed to the service verbatim",
            flag="--agent-version", key="AGENT_VERSION"),
    Setting("cacert", str, None, "PEM file of a CA to trust in addition to the system store", flag="--cacert",
            key="CACERT", complete="file"),
    Setting("insecure", bool, False, "skip TLS verification (explicit, never the default)", flag="--insecure",
            key="INSECURE"),
    Setting("host_id", str, None, "use this host id instead of deriving one from the hardware", flag="--host-id",
            key="HOST_ID"),
    Setting("host_root", str, "/", "where the host's filesystem is (/host in a container)", flag="--host-root",
            key="HOST_ROOT", complete="dir"),
    Setting("dry_run", bool, False, "record destructive actions (reboot) instead of doing them",
            flag="--dry-run", key="DRY_RUN", env="DRY_ENABLE"),
    Setting("log_json", bool, False, "log JSON lines instead of text", flag="--log-json", key="LOG_JSON"),
    Setting("log_level", str, "info", "how much to log", flag="--log-level", key="LOG_LEVEL",
            choices=("debug", "info", "warning", "error")),
    Setting("token", str, "", "the infra-env's token sent to the service (never logged)",
            key="PULL_SECRET_TOKEN", env="PULL_SECRET_TOKEN"),
    Setting("interval", float, 60.0, "seconds between registration retries", flag="--interval", key="INTERVAL",
            where="daemon"),
    Setting("shutdown_grace", float, 30.0, "seconds running steps get after SIGTERM", flag="--shutdown-grace",
            key="SHUTDOWN_GRACE", where="daemon"),
    *(Setting(f"with_{kind}_logging", bool, None, "accepted for compatibility with the Go agent",
              flag=f"--with-{kind}-logging", where="daemon") for kind in ("journal", "text", "stdout")),
    Setting("force_id", str, "", "with --dry-run: register with this host id", flag="--force-id",
            env="DRY_HOST_ID", where="daemon"),
    Setting("force_mac", str, "", "with --dry-run: the first NIC's MAC address", flag="--force-mac",
            env="DRY_FORCED_MAC_ADDRESS", where="daemon"),
    Setting("force_hostname", str, "", "with --dry-run: the inventory's hostname", flag="--force-hostname",
            env="DRY_FORCED_HOSTNAME", where="daemon"),
    Setting("forced_ipv4", str, "", "with --dry-run: the first NIC's IPv4 address", flag="--forced-ipv4",
            env="DRY_FORCED_HOST_IPV4", where="daemon"),
    Setting("fake_reboot_marker_path", str, "", "with --dry-run: a reboot creates this file, then the agent stops",
            flag="--fake-reboot-marker-path", env="DRY_FAKE_REBOOT_MARKER_PATH", where="daemon"),
    _knob("state_dir", str, "AGENT_STATE_DIR", DEFAULT_STATE_DIR,
          "the daemon's state (step history, leftovers of a previous life); empty: keep none",
          empty_is_default=False),
    _knob("runner_mode", str, "AGENT_NEXT_STEP_RUNNER", "",
          "container (launch the image's next_step_runner) or inline (run steps here; not frozen)"),
    _knob("podman_args", str, "AGENT_PODMAN_ARGS", "", "options added to every podman command (a test host's storage)"),
    _knob("chronyc_socket", str, "AGENT_CHRONYC_SOCKET", "", "ntp-synchronizer: the chronyd socket chronyc talks to"),
    _knob("chronyc_timeout", float, "AGENT_CHRONYC_TIMEOUT", 0.0,
          "ntp-synchronizer: seconds a chronyc command may take (0: its default)"),
    _knob("disk_speed_bytes", int, "AGENT_DISK_SPEED_BYTES", 0, "installation-disk-speed-check: bytes of the region"),
    _knob("virtual_nics", bool, "AGENT_VIRTUAL_NICS", False, "probes may leave from virtual NICs (veths of a lab)"),
    _knob("reboot_dry_run", bool, "AGENT_REBOOT_DRY_RUN", False, "reboot steps record the reboot instead"),
    _knob("reboot_marker", str, "AGENT_REBOOT_MARKER", "",
          "where dry-run reboots are recorded (default reboot-requests.jsonl in the state directory)"),
)
BY_NAME = {s.name: s for s in TABLE}


def _image_only(name: str, kind: type, help: str) -> Setting:
    return Setting(name, kind, None, help, flag="--" + name.replace("_", "-"), where="image")


#: The flags of the image's other commands (``agent.entrypoints``: inventory, free_addresses, disk_speed_check,
#: logs_sender), as the Go binaries take them (``-flag`` or ``--flag``, a bool bare or ``=true``): the daemon's
#: settings of the same meaning are :data:`TABLE`'s rows, the others are declared here.
IMAGE_FLAGS: tuple[Setting, ...] = (
    *(BY_NAME[n] for n in ("url", "infra_env_id", "cacert", "insecure", "host_id", "dry_run", "with_journal_logging",
                           "with_text_logging", "with_stdout_logging", "force_id", "force_mac", "force_hostname",
                           "forced_ipv4", "fake_reboot_marker_path")),
    Setting("token", str, None, "the infra-env's token sent to the service (never logged)",
            flag="--pull-secret-token", where="image"),
    _image_only("cluster_id", str, "logs_sender: the cluster whose logs these are"),
    _image_only("masters_ips", str, "logs_sender: the control-plane addresses, comma-separated"),
    _image_only("bootstrap", bool, "logs_sender: this host is the bootstrap host"),
    _image_only("with_installer_gather_logging", bool, "logs_sender: gather the installer's logs too"),
    _image_only("since", str, "accepted for compatibility with the Go agent"),
    _image_only("dont_clean", bool, "accepted for compatibility with the Go agent"),
    _image_only("gpu_config_file", str, "accepted for compatibility with the Go agent"),
)


def add_image_flags(parser: argparse.ArgumentParser) -> None:
    """:data:`IMAGE_FLAGS` on ``parser``, each as ``-flag`` and ``--flag`` (the Go binaries' spelling)."""
    for s in IMAGE_FLAGS:
        assert s.flag is not None
        names = (s.flag[1:], s.flag)
        if s.type is bool:
            parser.add_argument(*names, nargs="?", const="true", default=None, metavar="BOOL", help=s.help)
        else:
            parser.add_argument(*names, default=None, help=s.help)


def flag_settings(where: str) -> list[Setting]:
    """The settings whose flag the ``daemon`` (all of them) or every command line (``all``) takes."""
    return [s for s in TABLE if s.flag and (s.where == "all" or (where == "daemon" and s.where == "daemon"))]


def add_flags(parser: argparse.ArgumentParser, where: str) -> None:
    """The flags of :data:`TABLE` a command line takes, with their help and defaults from the table."""
    for s in flag_settings(where):
        assert s.flag is not None
        shown = s.default_shown()
        if s.type is bool:
            action = parser.add_argument(s.flag, nargs="?", const="true", default=None, metavar="BOOL",
                                         help=s.help + shown)
        else:
            action = parser.add_argument(s.flag, default=None, metavar=s.metavar, choices=s.choices or None,
                                         help=s.help + shown)
        if s.complete:  # what the generated completion (shtab) offers here
            action.complete = {  # type: ignore[attr-defined]
                "bash": f"_shtab_compgen_{s.complete}s", "zsh": "_files" + (" -/" if s.complete == "dir" else "")}


def _convert(s: Setting, raw: str, source: str) -> Any:
    if s.type is bool:
        return parse_bool(raw)
    if s.type is str:
        return raw
    try:
        return s.type(raw)
    except ValueError:
        raise ValueError(f"{source}: {raw!r} is not a number") from None


def resolve(ns: argparse.Namespace | Mapping[str, Any] | None, env: Mapping[str, str] | None = None, *,
            read_file: bool = True) -> AgentConfig:
    """The agent's settings from a parsed command line (None: none given), agent.conf (unless ``read_file`` is
    False) and the environment."""
    from agent.config import AgentConfig, read_conf

    env = os.environ if env is None else env
    given = dict(ns) if isinstance(ns, Mapping) else vars(ns) if ns is not None else {}
    conf_path = given.get("config") or env.get("AGENT_CONFIG") or DEFAULT_CONF
    conf = read_conf(conf_path) if read_file else {}
    if given.get("config") and not os.path.exists(conf_path):
        raise ConfigError(f"--config {conf_path}: no such file")
    values: dict[str, Any] = {"conf_path": conf_path}
    for s in TABLE:
        if s.name != "conf_path":
            values[s.name] = _one(s, given.get(s.dest) if s.flag else None, conf, env)
    values["dry_run"] = values["dry_run"] or _env_value(BY_NAME["dry_run"], env)  # the Go agent ORs them
    values["proxies"] = {var: conf[var] for var in PROXY_VARS if conf.get(var) and var not in env}
    return AgentConfig(**values)


def _one(s: Setting, flag: Any, conf: Mapping[str, str], env: Mapping[str, str]) -> Any:
    if s.name == "token":  # the environment's first (see the module's docstring)
        return env.get("PULL_SECRET_TOKEN") or conf.get("PULL_SECRET_TOKEN", "")
    for raw, source in ((flag, s.flag), (conf.get(s.key) if s.key else None, f"{s.key} in agent.conf")):
        if raw is None or (raw == "" and s.empty_is_default):
            continue
        try:
            return _convert(s, str(raw), str(source))
        except ValueError as exc:
            what = "not a boolean (true/false)" if s.type is bool else "not a number"
            raise ConfigError(f"{s.flag or source}: {raw!r} is {what}") from exc
    if s.name == "dry_run":
        return s.default  # DRY_ENABLE is ORed in by resolve()
    return _env_value(s, env)


def _env_value(s: Setting, env: Mapping[str, str]) -> Any:
    raw = env.get(s.env) if s.env else None
    if raw is None or (raw == "" and s.empty_is_default):
        return s.default
    try:
        return _convert(s, raw.strip() if s.type is not str else raw, s.env or "")
    except ValueError:
        return s.default  # variables were always read leniently (see the module's docstring)


def markdown() -> str:
    """docs/settings.md's table of the agent's settings."""
    return table_markdown(TABLE, file_column="agent.conf")

"""The agent's settings as one object: flags first, then ``/etc/assisted/agent.conf``, then the environment, then
defaults. Each setting is declared in agent.settings (flag, agent.conf key, environment variable, default, help),
which resolves them once at start into an :class:`AgentConfig`.

The flags are those of the Go agent (``--url``, ``--infra-env-id``, ``--agent-version``, ``--interval``,
``--cacert``, ``--insecure[=bool]``, ``--host-id``), accepted with one or two dashes and as ``--flag=value``
or ``--flag value``, because the discovery image's ``agent.service`` passes them Go-style. The token comes only
from the environment (``PULL_SECRET_TOKEN``), or from agent.conf for a hand-run agent, and is never logged.
agent.conf is the same KEY=VALUE file systemd reads with ``EnvironmentFile=``: flag names in upper case with
underscores (``URL``, ``INFRA_ENV_ID``, ...), plus ``PULL_SECRET_TOKEN`` and the proxy variables.
"""

from __future__ import annotations  # the records are common.records': their annotations are never evaluated

import os
from collections.abc import Mapping
from types import MappingProxyType

from agent.settings import DEFAULT_CONF, DEFAULT_STATE_DIR, PROXY_VARS
from common.errors import ConfigError
from common.first_contact import plain_url
from common.records import NamedTuple
from common.uuids import is_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from common.dry_run import DrySettings

__all__ = ["DEFAULT_CONF", "PROXY_VARS", "AgentConfig", "read_conf"]


class AgentConfig(NamedTuple):
    """Resolved once at start and never changed (``_replace`` makes a changed copy). A NamedTuple, not a
    dataclass: ``dataclasses`` (with inspect, ast, dis and tokenize) and the making of a forty-field dataclass
    were a fifth of the daemon's CPU before its first register (issue 29, docs/agent-cost.md)."""

    url: str = ""
    infra_env_id: str = ""
    agent_version: str = ""
    interval: float = 60.0
    cacert: str | None = None
    insecure: bool = False
    host_id: str | None = None
    token: str = ""  # never in repr()
    #: Root of the host's filesystem as this process sees it (``/host`` in the container image).
    host_root: str = "/"
    log_json: bool = False
    log_level: str = "info"
    #: Seconds running steps get to finish after SIGTERM before they are killed.
    shutdown_grace: float = 30.0
    #: Record destructive actions (reboot, ...) instead of doing them; for tests and demos.
    dry_run: bool = False
    #: The Go agent's dry-run forcing (``--force-id``/``DRY_HOST_ID`` ...; common.dry_run), used when dry_run is on.
    force_id: str = ""
    force_mac: str = ""
    force_hostname: str = ""
    forced_ipv4: str = ""
    fake_reboot_marker_path: str = ""
    #: The daemon's state directory ("" keeps no state: no history, no reaping of a previous life's steps).
    state_dir: str = DEFAULT_STATE_DIR
    #: The agent.conf that was read (--config, AGENT_CONFIG), for messages and logs.
    conf_path: str = DEFAULT_CONF
    #: The Go agent's logging flags: only their effect on where logs go is kept (agent.cli).
    with_journal_logging: bool | None = None
    with_text_logging: bool | None = None
    with_stdout_logging: bool | None = None
    #: agent.conf's proxy variables the environment lacks: a hand-run agent honours them as systemd would, in
    #: its requests (common.service_client) and in the environment of what it starts (agent.runner, launcher).
    proxies: Mapping[str, str] = MappingProxyType({})
    #: AGENT_NEXT_STEP_RUNNER: "container", "inline" or "" (agent.launcher.container_mode decides).
    runner_mode: str = ""
    #: Steps show their progress on stderr (``agent step`` on a terminal); never under the daemon.
    progress: bool = False
    #: Knobs of single steps, for labs and tests (agent.settings says which variable sets each).
    chronyc_socket: str = ""
    chronyc_timeout: float = 0.0
    disk_speed_bytes: int = 0
    virtual_nics: bool = False
    podman_args: str = ""
    reboot_dry_run: bool = False
    reboot_marker: str = ""

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
                          if name != "token")
        return f"AgentConfig({shown})"

    def to_dict(self) -> dict[str, Any]:
        """Every setting, the token included: the request a step's child process gets on its stdin (never argv
        or the environment, which other users can read in /proc), so the child reads nothing else."""
        return {**self._asdict(), "proxies": dict(self.proxies)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        return cls(**{k: v for k, v in data.items() if k in cls._fields})

    @property
    def state_path(self) -> Path | None:
        """The state directory as an absolute path, or None when the agent keeps none. (pathlib is imported
        here and not at start: it is not needed on the way to the first register.)"""
        from pathlib import Path

        return Path(self.state_dir).absolute() if self.state_dir else None

    @property
    def state_mark(self) -> str:
        """The state directory as an absolute path string, or "" when the agent keeps none: the directory the
        daemon locks before its first register, and the mark its steps carry (agent.state)."""
        return os.path.abspath(self.state_dir) if self.state_dir else ""

    @property
    def dry(self) -> DrySettings:
        """The dry-run settings in the Go agent's terms."""
        from common.dry_run import DrySettings

        return DrySettings.of(self.dry_run, host_id=self.force_id, mac_address=self.force_mac,
                              hostname=self.force_hostname, host_ipv4=self.forced_ipv4,
                              reboot_marker=self.fake_reboot_marker_path)

    def validate_for_daemon(self) -> None:
        """The checks that make a daemon start pointless if they fail; messages say what to fix."""
        if not self.url:
            raise ConfigError("--url is required", hint="pass the assisted-service URL, e.g. --url http://host:8090")
        if plain_url(self.url) is None:  # urllib.parse only for a URL that is not plain (~5 ms of CPU)
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"--url {self.url!r} is not an http(s) URL",
                                  hint="e.g. --url https://service:8090")
        if not self.infra_env_id:
            raise ConfigError("--infra-env-id is required", hint="the UUID of the infra-env this host boots from")
        _check_uuid("--infra-env-id", self.infra_env_id)
        if self.host_id:
            _check_uuid("--host-id", self.host_id)
        if self.interval <= 0:
            raise ConfigError(f"--interval must be a positive number of seconds, got {self.interval:g}")
        if self.cacert and not os.path.isfile(self.cacert):
            raise ConfigError(f"--cacert {self.cacert}: no such file", hint="pass a PEM file with the service's CA")


def _check_uuid(flag: str, value: str) -> None:
    if not is_uuid(value):
        raise ConfigError(f"{flag} {value!r} is not a UUID")


def read_conf(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a KEY=VALUE file as systemd's EnvironmentFile does: comments, blank lines, optional quotes."""
    try:
        with open(path) as stream:
            text = stream.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values

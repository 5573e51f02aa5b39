"""Every setting of ``assisted-reference-service``, declared once in :data:`TABLE` (flag, environment variable,
default, type, help): its parser and ``--help`` are made from it, docs/settings.md is generated from it, and
:func:`resolve` turns a command line and the environment into one :class:`Settings` at start, which the service
hands to whatever needs a setting. A flag wins over the environment, the environment over the default; a
variable that does not parse is a usage error that names it. Standard library only: ``--help`` needs no extra.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError
from common.settings_table import Setting
from common.settings_table import markdown as table_markdown

if TYPE_CHECKING:
    import argparse

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8090
    db: str = "reference-service.db"
    db_sync: str = "fdatasync"
    next_step_seconds: int = 60
    #: The agent image the service expects; None accepts any (no upgrade-agent step, compatible-agent passes).
    agent_image: str | None = None
    #: "none" (no auth, for local use) or "token" (per-infra-env agent token, admin token for users).
    auth: str = "none"
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: Test mode: record every request and allow fault injection through /api/reference/faults.
    test_mode: bool = False
    #: Dry-run installs: a host that reports Rebooting is installed (no controller will report Done).
    dry_run_install: bool = False
    #: Keep inventory interfaces of virtual types (veth, bridge...), as the real ENABLE_VIRTUAL_INTERFACES.
    enable_virtual_interfaces: bool = False
    #: Step types never issued, as the real service's DISABLED_STEPS (comma-separated in the environment).
    disabled_steps: frozenset[str] = frozenset()
    #: Bytes the inventory JSON may take, and the smallest disk it lists (the real AGENT_INVENTORY_MAX_SIZE and
    #: AGENT_INVENTORY_DISK_MIN_SIZE); 0: no limit, and the inventory step gets no flag for it.
    inventory_max_size: int = 0
    inventory_disk_min_size: int = 0
    #: The OS image write-image hands to installing hosts (reference_service.os_image), and the bytes per second
    #: it is served at (0: as fast as it goes; a slow mirror for demos and interrupting an install).
    os_image: str = ""
    os_image_rate: int = 0
    #: Images container-image-availability checks on every host before an installation, besides the release's.
    preinstall_images: tuple[str, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""
    #: Seconds a request body may go without a byte before it is refused (408): a silent sender would
    #: otherwise hold one of the few slots big bodies are read in (``http.routing``) for as long as it liked.
    body_stall_seconds: float = 30.0
    #: Hosts one infra-env (one agent token) may register; past it a new host is refused with 429. 10,000 hosts
    #: registered by one token in 24 s made every page megabytes and slowed every other agent's polls.
    max_hosts_per_infra_env: int = 5000
    #: The discovery ISO made by container/iso/build-iso.sh, served per infra-env (reference_service.iso).
    discovery_iso: str | None = None
    #: Registries (HOST:PORT) the discovery hosts' podman may pull from over plain HTTP (a lab's registry).
    insecure_registries: tuple[str, ...] = ()
    #: Seconds a connection's request head (line and headers) may take before it is closed (header_guard).
    header_timeout_seconds: float = 10.0
    ready_file: str = ""
    log_level: str = "info"


def _names(raw: str) -> frozenset[str]:
    return frozenset(s.strip() for s in raw.split(",") if s.strip())


def _images(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))


TABLE: tuple[Setting, ...] = (
    Setting("host", str, "127.0.0.1", "address to listen on", flag="--host"),
    Setting("port", int, 8090, "port (0 picks a free one)", flag="--port"),
    Setting("db", str, "reference-service.db", "SQLite file holding the state", flag="--db",
            env="REFERENCE_SERVICE_DB"),
    Setting("db_sync", str, "fdatasync", "fdatasync: an acknowledged write is on disk before its answer (survives a "
            "power cut); off: in the WAL only (survives a kill -9, not a power cut; benchmarks, throwaway labs)",
            flag="--db-sync", env="REFERENCE_SERVICE_DB_SYNC", choices=("fdatasync", "off")),
    Setting("auth", str, "none", "none: no authentication (local use); token: per-infra-env agent tokens, admin token",
            flag="--auth", choices=("none", "token")),
    Setting("admin_token", str, "", "user token for --auth token (default: generated and printed)",
            flag="--admin-token", env="REFERENCE_SERVICE_ADMIN_TOKEN"),
    Setting("next_step_seconds", int, 60, "next_instruction_seconds given to agents (the real service uses 60)",
            flag="--next-step-seconds"),
    Setting("agent_image", str, None, "the agent version hosts must report; others get upgrade-agent (default: "
            "accept any)", flag="--agent-image"),
    Setting("test_mode", bool, False, "journal requests and allow fault injection", flag="--test-mode"),
    Setting("dry_run_install", bool, False, "a host reporting Rebooting counts as installed (no cluster will "
            "report Done)", flag="--dry-run-install"),
    Setting("enable_virtual_interfaces", bool, False, "keep virtual NICs (veth...) of inventories, as the real "
            "service's variable", flag="--enable-virtual-interfaces", env="ENABLE_VIRTUAL_INTERFACES"),
    Setting("inventory_max_size", int, 0, "bytes an inventory may take before the agent truncates it (0: no limit)",
            flag="--inventory-max-size", env="AGENT_INVENTORY_MAX_SIZE"),
    Setting("inventory_disk_min_size", int, 0, "disks smaller than this many bytes are left out of inventories "
            "(0: none)", flag="--inventory-disk-min-size", env="AGENT_INVENTORY_DISK_MIN_SIZE"),
    Setting("disabled_steps", frozenset, frozenset(), "step types never issued (comma-separated), as the real "
            "service's variable", env="DISABLED_STEPS"),
    Setting("os_image", str, "", "OS image file handed to hosts by write-image during an installation (raw, xz, "
            "gzip or zstd)", flag="--os-image", env="REFERENCE_SERVICE_OS_IMAGE"),
    Setting("os_image_rate", int, 0, "bytes/s the OS image is served at, like a slow mirror (0: no limit)",
            env="REFERENCE_SERVICE_OS_IMAGE_RATE"),
    Setting("preinstall_images", tuple, (), "images (comma-separated) container-image-availability checks before "
            "an installation, besides the release image", env="REFERENCE_SERVICE_PREINSTALL_IMAGES"),
    Setting("tls_cert", str, "", "serve HTTPS with this PEM certificate (chain)", flag="--tls-cert"),
    Setting("tls_key", str, "", "the certificate's PEM private key", flag="--tls-key"),
    Setting("body_stall_seconds", float, 30.0, "refuse a request body that sends nothing for this long",
            flag="--body-stall-seconds"),
    Setting("max_hosts_per_infra_env", int, 5000, "hosts one infra-env (one agent token) may register; more are "
            "refused with 429", flag="--max-hosts-per-infra-env"),
    Setting("header_timeout_seconds", float, 10.0, "close a connection whose request head (line and headers) is not "
            "complete this long after it began (header_guard)", flag="--header-timeout-seconds"),
    Setting("discovery_iso", str, None, "the ISO made by container/iso/build-iso.sh, served per infra-env at "
            "downloads/image-url's URL", flag="--discovery-iso"),
    Setting("insecure_registries", tuple, (), "a registry (HOST:PORT) discovery hosts pull the agent image from "
            "over HTTP (repeatable)", flag="--insecure-registry", metavar="HOST:PORT"),
    Setting("ready_file", str, "", "write the service URL to this file once it accepts connections",
            flag="--ready-file"),
    Setting("log_level", str, "info", "how much to log", flag="--log-level", choices=LOG_LEVELS),
)
BY_NAME = {s.name: s for s in TABLE}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The table's flags, all with no default of their own: :func:`resolve` tells given from not given."""
    for s in TABLE:
        if not s.flag:
            continue
        if s.type is bool:
            parser.add_argument(s.flag, action="store_const", const=True, default=None, help=s.help)
        elif s.type is tuple:
            parser.add_argument(s.flag, action="append", default=None, metavar=s.metavar, help=s.help)
        else:
            convert: Any = s.type if s.type in (int, float) else str
            parser.add_argument(s.flag, default=None, choices=s.choices or None, metavar=s.metavar, type=convert,
                                help=s.help + s.default_shown())


def _convert(s: Setting, raw: str) -> Any:
    if s.type is bool:
        return raw.strip().lower() == "true"  # the real service's envconfig would refuse garbage; "true" is on
    if s.type is frozenset:
        return _names(raw)
    if s.type is tuple:
        return _images(raw)
    if s.type in (int, float):
        try:
            return s.type(raw)
        except ValueError:
            kind = "a whole number" if s.type is int else "a number"
            raise ConfigError(f"{s.env}: {raw!r} is not {kind}", hint=f"unset it, or see {s.flag or s.env} in "
                              "'assisted-reference-service --help'") from None
    return raw


def resolve(ns: argparse.Namespace | None, env: Mapping[str, str] | None = None) -> Settings:
    """The service's settings from its parsed command line (None: none given) and the environment."""
    env = os.environ if env is None else env
    given = vars(ns) if ns is not None else {}
    values: dict[str, Any] = {}
    for s in TABLE:
        flag = given.get(s.dest) if s.flag else None
        if flag is not None:
            values[s.name] = tuple(flag) if s.type is tuple else flag
        elif s.env and env.get(s.env):
            values[s.name] = _convert(s, env[s.env])
        elif s.name != "admin_token":  # none given: Settings generates one
            values[s.name] = s.default
    return Settings(**values)


def admin_token_given(ns: argparse.Namespace | None, env: Mapping[str, str] | None = None) -> bool:
    """Whether the admin token came from the command line or the environment (else it is printed at start)."""
    env = os.environ if env is None else env
    return bool((vars(ns) if ns is not None else {}).get("admin_token") or env.get("REFERENCE_SERVICE_ADMIN_TOKEN"))


def markdown() -> str:
    """docs/settings.md's table of the service's settings."""
    return table_markdown(TABLE)

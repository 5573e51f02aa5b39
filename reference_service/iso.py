"""The discovery ISO: one image built once (``container/iso/build-iso.sh``), made per infra-env at download time.

The real image service keeps one RHCOS ISO per version and, for each download, writes the infra-env's Ignition
into a reserved area of it (``coreos-installer iso ignition embed``'s area) while streaming: the ISO is never
rebuilt. The same here: the built ISO has a reserved file (``/assisted/ignition.img``, 256 KiB of a marker line
and NULs) whose offset the build records beside it (``NAME.iso.json``); a download streams the ISO with those
bytes replaced by the marker line, the Ignition JSON and NUL padding. On the booted host ``ignition-apply`` reads
the area back and does what Ignition does with it: writes the files, the units (``agent.service`` exactly as the
real service writes it), the SSH key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import ServiceRefusal

MARKER = b"#assisted-ignition-area v1"
IGNITION_VERSION = "3.1.0"
#: How long a pre-signed image URL is good for (the real service's image tokens last 4 hours).
URL_LIFETIME = 4 * 3600
CHUNK = 1 << 20

#: agent.service as the real assisted-service's Ignition template writes it (go-agent-behaviour.md section 1;
#: systemd/discovery-agent.service is the same text with a comment header: a test holds them equal).
AGENT_UNIT = """[Unit]
Description=agent
Wants=network-online.target
After=network-online.target

[Service]
Environment=HTTP_PROXY={{HTTP_PROXY}}
Environment=http_proxy={{HTTP_PROXY}}
Environment=HTTPS_PROXY={{HTTPS_PROXY}}
Environment=https_proxy={{HTTPS_PROXY}}
Environment=NO_PROXY={{NO_PROXY}}
Environment=no_proxy={{NO_PROXY}}
Environment=PULL_SECRET_TOKEN={{PULL_SECRET_TOKEN}}
TimeoutStartSec=3000
ExecStartPre=podman run --privileged --rm -v /usr/local/bin:/hostbin {{AGENT_IMAGE}} cp /usr/bin/agent /hostbin
ExecStart=/usr/local/bin/agent --url {{SERVICE_URL}} --infra-env-id {{INFRA_ENV_ID}} --agent-version {{AGENT_IMAGE}} --insecure={{INSECURE}}
Restart=always
RestartSec=3

[Install]
WantedBy=multi-user.target
"""  # noqa: E501 (the unit's lines are the real template's)


@dataclass(frozen=True)
class DiscoveryIso:
    """A built ISO and where its reserved area is."""

    path: Path
    area_offset: int
    area_size: int

    @classmethod
    def load(cls, path: Path) -> DiscoveryIso:
        """The ISO and its ``.json`` beside it, checked: the marker must be where the build said."""
        meta = json.loads(Path(f"{path}.json").read_text())
        iso = cls(path, int(meta["area_offset"]), int(meta["area_size"]))
        with open(path, "rb") as fh:
            fh.seek(iso.area_offset)
            if fh.read(len(MARKER)) != MARKER:
                raise ValueError(f"{path}: no reserved area at offset {iso.area_offset}")
        return iso

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def area(self, ignition: dict[str, Any]) -> bytes:
        """The reserved area's bytes carrying ``ignition``."""
        body = (MARKER + f" size={self.area_size}\n".encode()
                + json.dumps(ignition, separators=(",", ":"), sort_keys=True).encode() + b"\n")
        if len(body) > self.area_size:
            raise ServiceRefusal(400, f"the infra-env's Ignition takes {len(body)} bytes; the ISO's area holds "
                                 f"{self.area_size}")
        return body + bytes(self.area_size - len(body))

    def chunks(self, area: bytes) -> Iterator[bytes]:
        """The ISO's bytes with the area replaced, a chunk at a time (no copy of the ISO is made)."""
        return patched_chunks(self.path, [(self.area_offset, area)])


def patched_chunks(path: Path, patches: list[tuple[int, bytes]]) -> Iterator[bytes]:
    """A file's bytes with each (offset, bytes) written over it, a chunk at a time; the file is never changed."""
    with open(path, "rb") as fh:
        pos = 0
        while chunk := fh.read(CHUNK):
            start, stop = pos, pos + len(chunk)
            buf: bytearray | None = None
            for offset, data in patches:
                end = offset + len(data)
                if start < end and stop > offset:
                    buf = buf if buf is not None else bytearray(chunk)
                    lo, hi = max(start, offset), min(stop, end)
                    buf[lo - start:hi - start] = data[lo - offset:hi - offset]
            pos = stop
            yield bytes(buf) if buf is not None else chunk


def _data_url(text: str) -> str:
    return "data:text/plain;charset=utf-8;base64," + base64.b64encode(text.encode()).decode()


def agent_unit(*, service_url: str, infra_env_id: str, agent_image: str, token: str, insecure: bool,
               proxy: dict[str, Any] | None = None) -> str:
    proxy = proxy or {}
    values = {"SERVICE_URL": service_url, "INFRA_ENV_ID": infra_env_id, "AGENT_IMAGE": agent_image,
              "PULL_SECRET_TOKEN": token, "INSECURE": "true" if insecure else "false",
              "HTTP_PROXY": proxy.get("http_proxy") or "", "HTTPS_PROXY": proxy.get("https_proxy") or "",
              "NO_PROXY": proxy.get("no_proxy") or ""}
    text = AGENT_UNIT
    for key, value in values.items():
        if any(c in value for c in "\n\r"):
            raise ServiceRefusal(400, f"{key.lower()}: a line break cannot go into a unit file")
        text = text.replace("{{" + key + "}}", value)
    return text


def ignition(infra_env: dict[str, Any], *, service_url: str, agent_image: str, token: str,
             insecure_registries: tuple[str, ...] = ()) -> dict[str, Any]:
    """The infra-env's discovery Ignition, as the real service's template makes it (the parts a host uses)."""
    files: list[dict[str, Any]] = []
    if insecure_registries:
        conf = "".join(f'[[registry]]\nlocation = "{r}"\ninsecure = true\n\n' for r in insecure_registries)
        files.append({"path": "/etc/containers/registries.conf.d/99-assisted-insecure.conf", "mode": 0o644,
                      "overwrite": True, "contents": {"source": _data_url(conf)}})
    static = infra_env.get("static_network_config") or []
    if isinstance(static, str):  # the infra-env keeps it as the real one does: the configs' JSON, a string
        static = json.loads(static) if static.strip() else []
    for i, entry in enumerate(static):
        # nmstate YAML and the MAC map, kept where the real ISO's pre-network script reads them from
        files.append({"path": f"/etc/assisted/network/host{i}/network.yaml", "mode": 0o600, "overwrite": True,
                      "contents": {"source": _data_url(str(entry.get("network_yaml", "")))}})
        files.append({"path": f"/etc/assisted/network/host{i}/mac_interface.ini", "mode": 0o600,
                      "overwrite": True, "contents": {"source": _data_url("".join(
                          f"{m.get('mac_address')}={m.get('logical_nic_name')}\n"
                          for m in entry.get("mac_interface_map") or []))}})
    users = []
    if infra_env.get("ssh_authorized_key"):
        users.append({"name": "core", "sshAuthorizedKeys": [infra_env["ssh_authorized_key"]]})
    unit = agent_unit(service_url=service_url, infra_env_id=infra_env["id"], agent_image=agent_image,
                      token=token, insecure=False, proxy=infra_env.get("proxy"))
    return {"ignition": {"version": IGNITION_VERSION}, "passwd": {"users": users}, "storage": {"files": files},
            "systemd": {"units": [{"name": "agent.service", "enabled": True, "contents": unit}]}}


def sign(key: str, infra_env_id: str, expires: int) -> str:
    """The ``api_key`` of a pre-signed image URL: the infra-env and the expiry, signed with the service's key."""
    mac = hmac.new(key.encode(), f"{infra_env_id}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def check_signature(key: str, infra_env_id: str, api_key: str, now: float | None = None) -> None:
    expires, _, _ = api_key.partition(".")
    if not expires.isdigit() or not hmac.compare_digest(api_key, sign(key, infra_env_id, int(expires))):
        raise ServiceRefusal(401, "the image URL's api_key is not valid for this infra-env")
    if int(expires) < (time.time() if now is None else now):
        raise ServiceRefusal(401, "the image URL has expired: ask downloads/image-url for a new one")

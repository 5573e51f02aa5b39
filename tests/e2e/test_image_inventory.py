"""The inventory from inside the agent image equals the host's, field by field (docs/image.md, "Running it with
podman").

Both run in one network namespace made here (so the NICs are known and nothing leaves the machine): on the host
the project's ``agent inventory``, in the image the Go entry name ``inventory`` with the documented flags
(``podman run --privileged --net=host --pid=host --uts=host -v /:/host -v /dev:/dev``; this machine's podman
starts containers with the configuration of ``tests.support.image``). The image reads the host through
``/host``; what may differ is listed in ``MAY_DIFFER`` with the reason, and nothing else may.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.image import BUILD_TIMEOUT, BuiltImage, cached_image, in_netns
from tests.support.netns import Network, Nic

pytestmark = [
    pytest.mark.netns, pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (shutil.which("buildah") and shutil.which("podman")), reason="needs buildah and podman"),
    pytest.mark.timeout(BUILD_TIMEOUT + 300),
]

#: Fields that legitimately differ between two collections, and why.
MAY_DIFFER = {
    "timestamp": "the time of collection",
}
#: Per-disk SMART data comes from smartctl, which the image carries; a host without smartmontools reports none.
SMART = re.compile(r"^disks\[\d+\]\.smart: host None / ")


@pytest.fixture(scope="module")
def image() -> Iterator[BuiltImage]:
    with cached_image() as built:
        yield built


def host_inventory(netns: str, scratch: Path) -> dict[str, Any]:
    agent = str(Path(sys.executable).parent / "agent")
    proc = subprocess.run(in_netns(netns, [agent, "inventory"], scratch), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def image_inventory(image: BuiltImage, netns: str, scratch: Path) -> dict[str, Any]:
    """The documented podman line, run in the namespace as test_image_e2e enters it (cgroups still mounted)."""
    argv = ["podman", "run", "--rm", "--privileged", "--net=host", "--pid=host", "--uts=host", "-v", "/:/host",
            "-v", "/dev:/dev", image.ref, "inventory"]
    proc = subprocess.run(in_netns(netns, argv, scratch), capture_output=True, text=True, timeout=180,
                          env={**os.environ, **image.env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Every path at which the two JSON values differ (lists element by element)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += differences(a.get(key), b.get(key), f"{where}.{key}" if where else key)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: host {a!r:.200} / image {b!r:.200}"]


def test_inventory_in_the_image_equals_the_hosts(image: BuiltImage, tmp_path: Path) -> None:
    with Network(tag="iinv") as net:
        host = net.add_host(nics=[Nic(), Nic(mtu=9000)])
        on_host = host_inventory(host.name, tmp_path / "h")
        in_image = image_inventory(image, host.name, tmp_path / "i")
    assert {nic["name"] for nic in in_image["interfaces"]} >= {"eth0", "eth1"}, "not the namespace's NICs"
    assert in_image["hostname"] == os.uname().nodename, "--uts=host: the host's name, not the container's"
    found = [d for d in differences(on_host, in_image) if d.split(":")[0].split(".")[0].split("[")[0]
             not in MAY_DIFFER and not (SMART.match(d) and shutil.which("smartctl") is None)]
    assert not found, "\n".join(found)


def test_a_change_of_the_host_shows_in_the_image(image: BuiltImage, tmp_path: Path) -> None:
    """The image reads the host, not itself: a NIC added to the host appears in the image's inventory."""
    with Network(tag="iinw") as net:
        host = net.add_host()
        before = {nic["name"] for nic in image_inventory(image, host.name, tmp_path / "a")["interfaces"]}
        host.ip("link", "add", "imgdummy0", "type", "veth", "peer", "name", "imgdummy1")
        after = {nic["name"] for nic in image_inventory(image, host.name, tmp_path / "b")["interfaces"]}
    assert "imgdummy0" not in before and "imgdummy0" in after

"""The ISO's media going away under a running agent (virtual media dropped by a BMC): as the Go agent, a step is
not run and is answered with exit code 256, and the service marks the host's media disconnected.

The agent runs in a mount namespace of its own where a small loop device is mounted at /run/media/iso (a tmpfs
over /run first, so nothing of the machine's /run is touched); "disconnecting" binds an empty file over the
device node in that namespace only, so reading it gives EOF, as a vanished device does to a reader."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.media import MEDIA_DISCONNECTED
from tests.support.service import RefService, start_agent

HOST_ID = "11111111-2222-3333-4444-555555555566"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@contextmanager
def loop_device(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "media.img"
    with open(image, "wb") as fh:
        fh.truncate(4 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@pytest.mark.netns
@needs_root
def test_disconnected_media_answers_256_and_the_service_marks_it(service: RefService, tmp_path: Path,
                                                                   sample_plugins: Path) -> None:
    c = service.create_cluster(control_plane_count=1)
    ie = str(service.create_infra_env(cluster_id=c["id"])["id"])

    def queue(message: str) -> None:
        service.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{HOST_ID}/instructions", expected=201,
                     json={"step_type": "sample-echo", "args": [json.dumps({"message": message})]})

    empty = tmp_path / "gone"
    empty.write_bytes(b"")
    with loop_device(tmp_path) as dev:
        script = ('set -e; mount -t tmpfs peer-media-run /run; mkdir -p /run/media/iso; '
                  f'mount -o ro {dev} /run/media/iso; exec "$@"')
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log",
                         prefix=prefix) as agent:
            service.wait_host(ie, lambda h: h["id"] == HOST_ID)
            queue("media there")
            (first,) = service.wait_replies(HOST_ID, "sample-echo")
            assert first["exit_code"] == 0, first
            subprocess.run(["nsenter", "-t", str(agent.proc.pid), "-m", "mount", "--bind", str(empty), dev],
                           check=True)
            queue("media gone")
            replies = service.wait_replies(HOST_ID, "sample-echo", count=2)
            host = service.host(ie, HOST_ID)
    gone = replies[-1]
    assert MEDIA_DISCONNECTED == 256  # the Go agent's MediaDisconnected, which the service keys on
    assert (gone["exit_code"], gone["error"]) == (
        MEDIA_DISCONNECTED, "cannot read from the media (ISO) - media was likely disconnected: EOF")
    assert "media gone" not in (gone.get("output") or "")  # the step was not run
    assert host["media_status"] == "disconnected"
    assert "System issue detected before running step" in agent.log

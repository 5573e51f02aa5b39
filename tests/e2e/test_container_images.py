"""container-image-availability with real podman and a real registry (Debian's docker-registry) on loopback.

Images are built locally (``podman import`` of a small root filesystem) into a private podman store under
the test's tmp dir, so nothing touches the machine's image store; pushing one to the registry and removing
the local copy makes the step really pull it over HTTP. ``AGENT_PODMAN_ARGS`` carries the podman options
this VM needs (runc, cgroupfs, file events) and the private store, exactly as an operator would set them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from common.podman import podman_argv
from reference_service import spec
from reference_service.settings import Settings
from rules import preinstall
from rules.documents import HostView
from steps.base import StepContext
from steps.container_image_availability import ContainerImageAvailabilityStep
from tests.support.podman import PodmanLab, needs_podman, podman_lab

MODEL = spec.STEP_OUTPUT_MODELS["container-image-availability"]

@pytest.fixture
def lab(tmp_path: Path) -> Iterator[PodmanLab]:
    with podman_lab(tmp_path) as found:
        yield found


@contextlib.contextmanager
def silent_registry() -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers: a pull that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def images_of(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in json.loads(reply["output"])["images"]}


@needs_podman
def test_image_already_present_is_a_success_without_download_figures(lab: PodmanLab) -> None:
    ref = lab.build(f"apre-present-{uuid.uuid4().hex[:6]}")
    reply = lab.run_step([ref], timeout=120)
    assert reply.get("exit_code", 0) == 0, reply
    assert json.loads(reply["output"]) == {"images": [{"name": ref, "result": "success"}]}


@needs_podman
def test_image_is_pulled_from_the_registry_with_size_time_and_rate(lab: PodmanLab) -> None:
    ref = lab.publish(f"apre-remote-{uuid.uuid4().hex[:6]}")
    reply = lab.run_step([ref], timeout=120)
    assert reply.get("exit_code", 0) == 0, reply
    image = images_of(reply)[ref]
    assert image["result"] == "success"
    assert image["size_bytes"] > 200_000
    assert image["time"] > 0
    assert image["download_rate"] == pytest.approx(image["size_bytes"] / image["time"] / 1e6)
    assert list(image) == ["download_rate", "name", "result", "size_bytes", "time"]  # Go's field order
    assert lab.present(ref)


@needs_podman
def test_missing_image_fails_with_exit_code_2_and_others_are_still_checked(lab: PodmanLab) -> None:
    present = lab.build(f"apre-present-{uuid.uuid4().hex[:6]}")
    missing = f"{lab.registry}/apre-missing-{uuid.uuid4().hex[:6]}:1"
    reply = lab.run_step([missing, present], timeout=120)
    assert reply["exit_code"] == 2
    images = images_of(reply)
    assert images[missing] == {"name": missing, "result": "failure"}
    assert images[present] == {"name": present, "result": "success"}
    assert f"{missing}: " in reply["_log"] and "manifest unknown" in reply["_log"]


@needs_podman
def test_one_deadline_covers_all_images(lab: PodmanLab) -> None:
    present = lab.build(f"apre-present-{uuid.uuid4().hex[:6]}")
    with silent_registry() as hanging:
        stuck = f"{hanging}/apre-stuck:1"
        reply = lab.run_step([stuck, present], timeout=3,
                             env={"CONTAINERS_REGISTRIES_CONF": _insecure_conf(lab.workdir, hanging)})
    assert reply["exit_code"] == 2
    images = images_of(reply)
    assert images[stuck]["result"] == "failure"
    # The hanging pull used up the whole budget: the next image is not even looked at.
    assert images[present]["result"] == "failure"
    assert "no time left" in reply["_log"]


def _insecure_conf(workdir: Path, registry: str) -> str:
    conf = workdir / "registries-silent.conf"
    conf.write_text(f'unqualified-search-registries = []\n[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
    return str(conf)


def test_host_without_podman_reports_every_image_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    step = ContainerImageAvailabilityStep()
    ctx = StepContext(host=Host.at("/"), config=AgentConfig())
    result = step.run(step.parse_args(['{"images": ["quay.io/a/b:1", "quay.io/c/d@sha256:0a1b"]}']), ctx)
    assert result.exit_code == 2
    assert result.output == {"images": [{"name": "quay.io/a/b:1", "result": "failure"},
                                        {"name": "quay.io/c/d@sha256:0a1b", "result": "failure"}]}
    assert result.error == ""  # as the Go agent's; the reason is logged
    assert "podman is not installed" in caplog.text


def test_dry_run_reports_the_go_agents_fixed_figures() -> None:
    step = ContainerImageAvailabilityStep()
    ctx = StepContext(host=Host.at("/"), config=AgentConfig(dry_run=True))
    result = step.run(step.parse_args(['{"images": ["quay.io/a/b:1"], "timeout": 960}']), ctx)
    assert result.exit_code == 0
    assert spec.errors(MODEL, result.output) == []
    assert result.output["images"][0]["result"] == "success"


@pytest.mark.parametrize("raw", [
    '{"images": ["-v"]}', '{"images": ["a b"]}', '{"images": [""]}', '{"images": [5]}', '{"images": "quay.io/a"}',
    '{"timeout": 5}', '{"images": ["quay.io/a"], "timeout": -1}', '{"images": ["quay.io/a"], "timeout": true}',
    '{"images": ["--authfile=/etc/shadow"]}', "[]", '{"images": ["[fd00::1]:5000"]}', '{"images": ["[-v]/a"]}',
])
def test_malformed_arguments_are_refused(raw: str) -> None:
    with pytest.raises(InvalidStepArguments):
        ContainerImageAvailabilityStep().parse_args([raw])


def test_arguments_as_the_service_sends_them() -> None:
    step = ContainerImageAvailabilityStep()
    params = step.parse_args([json.dumps({"images": [
        "quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64",
        "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "ab" * 32,
        "registry.example.com:5000/ns/installer:v1",
        "[fd00:1101::1]:5000/ocp4/openshift4@sha256:" + "cd" * 32,  # mirror of an IPv6-only disconnected cluster
    ], "timeout": 960})])
    assert len(params.images) == 4 and params.timeout == 960
    assert step.parse_args(['{"images": []}']).timeout == 960  # no timeout given: the service's default


def test_podman_options_come_from_the_setting() -> None:
    assert podman_argv("pull", "x", options="--root '/var/lib/my store' --storage-driver vfs") == [
        "podman", "--root", "/var/lib/my store", "--storage-driver", "vfs", "pull", "x"]
    assert podman_argv("images") == ["podman", "images"]


# -- reference service side -----------------------------------------------------------------------------------
def _view(host: dict[str, Any], cluster: dict[str, Any] | None = None, images: tuple[str, ...] = ()) -> HostView:
    """A view whose service has the preinstall_images setting (REFERENCE_SERVICE_PREINSTALL_IMAGES) ``images``."""
    service = SimpleNamespace(settings=Settings(preinstall_images=images))
    return HostView(host=host, infra_env={}, cluster=cluster if cluster is not None else {"id": "c"}, service=service)


def test_service_asks_for_missing_images_and_merges_results() -> None:
    images = ("quay.io/x/installer:1", "quay.io/x/mco:1")
    cluster = {"id": "c", "ocp_release_image": "quay.io/x/release:4.16"}
    host: dict[str, Any] = {"id": "h", "status": "preparing-for-installation"}
    args = preinstall.images_args(_view(host, cluster, images))
    assert args is not None
    request = json.loads(args[0])
    assert request == {"images": ["quay.io/x/release:4.16", "quay.io/x/installer:1", "quay.io/x/mco:1"],
                       "timeout": 960}
    assert spec.errors("container_image_availability_request", request) == []
    assert preinstall.images_available(_view(host, cluster, images)) == ("pending", "Missing container images statuses")

    preinstall.images_reply(_view(host, cluster, images), {"images": [
        {"name": "quay.io/x/release:4.16", "result": "success"},
        {"download_rate": 12.5, "name": "quay.io/x/installer:1", "result": "success", "size_bytes": 5e8, "time": 40},
    ]}, {"exit_code": 0})
    assert json.loads(preinstall.images_args(_view(host, cluster, images))[0])["images"] == [  # type: ignore[index]
        "quay.io/x/mco:1"]
    assert preinstall.images_available(_view(host, cluster, images)) == ("pending", preinstall.IMAGES_MISSING)
    preinstall.images_reply(_view(host, cluster, images),
                            {"images": [{"name": "quay.io/x/mco:1", "result": "success"}]}, {"exit_code": 0})
    assert preinstall.images_args(_view(host, cluster, images)) is None
    assert preinstall.images_available(_view(host, cluster, images)) == ("success", preinstall.IMAGES_OK)
    assert set(json.loads(host["images_status"])) == {"quay.io/x/release:4.16", "quay.io/x/installer:1",
                                                      "quay.io/x/mco:1"}


def test_failed_or_too_slow_images_fail_the_validation() -> None:
    host: dict[str, Any] = {"id": "h", "status": "preparing-for-installation"}
    preinstall.images_reply(_view(host), {"images": [
        {"name": "quay.io/x/a:1", "result": "failure"},
        {"download_rate": 0.0005, "name": "quay.io/x/b:1", "result": "success", "size_bytes": 100, "time": 0.2},
        {"name": "quay.io/x/c:1", "result": "success"},
    ]}, {"exit_code": 2})
    outcome = preinstall.images_available(_view(host))
    assert outcome is not None
    status, message = outcome
    assert status == "failure"
    assert message.startswith("Failed to fetch container images needed for installation from "
                              "quay.io/x/a:1,quay.io/x/b:1. This may be due to a network hiccup.")
    # Nothing required and nothing recorded: nothing blocks (the real service's wording).
    assert preinstall.images_available(_view({"id": "h2", "status": "preparing-for-installation"})) == (
        "success", preinstall.IMAGES_OK)
    assert preinstall.images_args(_view({"id": "h2"})) is None

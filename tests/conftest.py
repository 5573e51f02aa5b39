"""Shared fixtures: a real reference service per test, and the sample third-party step plugins."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.children import left_behind, running_children
from tests.support.hostile import HostileService
from tests.support.install_images import RecordingServer
from tests.support.service import SPEC, RefService, start_service

PLUGINS = Path(__file__).parent / "plugins"
UNIT = Path(__file__).parent / "unit"

if SPEC.exists():
    # Validate against the contract itself (../shared/spec) rather than the bundled copy.
    os.environ.setdefault("ASSISTED_SPEC", str(SPEC))


@pytest.fixture(autouse=True)
def no_child_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """A guarded test (every unit test; an e2e module marked ``no_child_left``; every test under
    ``TESTS_NO_CHILD_LEFT=all``) fails at teardown when a process it started is still running after its fixtures
    were torn down (tests/support/children.py).

    Autouse and of the narrowest scope, so it is set up after the module- and session-wide fixtures (whose
    processes are in the list taken before the test) and torn down after the test's own fixtures."""
    everywhere = os.environ.get("TESTS_NO_CHILD_LEFT") == "all"  # a survey of the tests not yet guarded
    if not everywhere and request.node.get_closest_marker("no_child_left") is None \
            and UNIT not in request.node.path.parents:
        yield
        return
    before = running_children()
    yield
    left = left_behind(before)
    assert not left, "processes the test started are still running (killed now): " + "; ".join(left)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RefService]:
    with start_service(tmp_path) as svc:
        yield svc


@pytest.fixture
def sample_plugins(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the sample plugin distribution (tests/plugins) visible to agent processes started by the test.

    It is found the way any installed package's plugins are: through its dist-info entry points on sys.path.
    """
    path = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return PLUGINS


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    """A small HTTP server on loopback that records what it is asked and answers what a test tells it."""
    srv = RecordingServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def hostile() -> Iterator[HostileService]:
    """A service that answers the agent as a test scripts it, however wrongly (tests/support/hostile.py)."""
    svc = HostileService()
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """systemd's end of ``NOTIFY_SOCKET``, bound at ``tmp_path / "notify"``: the datagrams the agent sends it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock
    sock.close()

"""agent.registration: the host id chosen by Go's rules, refusals retried with a growing back-off and said on
the unit's status, and a stop ending the loop. Against a loopback server answering as the service would."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.identity import derive_host_id
from agent.lifecycle import Lifecycle
from agent.notify import Notifier
from agent.registration import Registrar
from common.dry_run import DrySettings
from common.host import Host
from common.service_client import ServiceClient
from tests.support.loopback_http import LoopbackHTTP
from tests.support.paths import FIXTURES

ENV = "11111111-1111-1111-1111-111111111111"
HOST = "22222222-2222-2222-2222-222222222222"


def _service(script: list[tuple[int, dict[str, object] | str]]) -> LoopbackHTTP:
    """Answers registrations from a script of (status, body: JSON, or a web server's page), then 500."""
    service = LoopbackHTTP()
    service.script = [(status, body.encode() if isinstance(body, str) else json.dumps(body).encode(),
                       {"Content-Type": "text/html" if isinstance(body, str) else "application/json"})
                      for status, body in script]
    service.fallback = (500, b"{}", {"Content-Type": "application/json"})
    return service


def _registrar(script: list[tuple[int, dict[str, object] | str]], tmp_path: Path, *, host_id: str = "",
               dry: DrySettings | None = None) -> tuple[Registrar, LoopbackHTTP]:
    service = _service(script)
    threading.Thread(target=service.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    config = AgentConfig(url=service.url, infra_env_id=ENV, agent_version="v1", token="t", host_id=host_id or None,
                         interval=0.01)
    life = Lifecycle(Notifier(str(tmp_path / "notify")))
    host = Host.at(FIXTURES / "kvm-vm")
    return Registrar(config, ServiceClient(config), host, dry or DrySettings(), life), service


def test_refusals_are_retried_and_said_then_the_answer_is_returned(
        tmp_path: Path, notify_socket: socket.socket) -> None:
    registrar, service = _registrar([(401, {"reason": "bad token"}), (409, {"reason": "installing"}),
                                     (201, {"id": HOST, "next_step_runner_command": {}})], tmp_path, host_id=HOST)
    try:
        got = registrar.register()
    finally:
        service.shutdown()
    assert got is not None and got.response["id"] == HOST and (got.host_id, got.how) == (HOST, "--host-id")
    assert [json.loads(b) for b in service.posted] == [{"host_id": HOST, "discovery_agent_version": "v1"}] * 3
    assert notify_socket.recv(4096) == b"STATUS=registration refused (401): the service rejected the agent's token"
    assert notify_socket.recv(4096).startswith(b"STATUS=registration refused (409): the cluster cannot accept")


def test_a_404_page_not_the_services_says_to_check_the_path_and_a_404_of_the_service_says_what_it_means(
        tmp_path: Path, notify_socket: socket.socket, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong path in --url meets a web server's 404 page, not the API's error: the Go agent's words come first,
    then what to check; the service's own 404 is an infra-env it does not know (issue 27)."""
    page = "<html><body><h1>404 Not Found</h1>nginx</body></html>"
    registrar, service = _registrar([(404, page), (404, {"code": "404", "reason": "infra-env not found"}),
                                     (201, {"id": HOST, "next_step_runner_command": {}})], tmp_path, host_id=HOST)
    try:
        with caplog.at_level("WARNING", logger="agent"):
            assert registrar.register() is not None
    finally:
        service.shutdown()
    wrong_path, unknown = (r.getMessage() for r in caplog.records[:2])
    assert wrong_path.startswith("Error registering host: [404] 404 Not Found nginx; hint: nothing at ")
    assert "answered as the assisted-service API" in wrong_path and "check the path in --url" in wrong_path
    assert "the infra-env does not exist, or this token cannot see it ([404] infra-env not found)" in unknown
    assert notify_socket.recv(4096).endswith(b"check the path in --url")
    assert notify_socket.recv(4096) == (b"STATUS=registration refused (404): the infra-env does not exist, or this "
                                        b"token cannot see it")


def test_the_host_id_follows_gos_rules(tmp_path: Path) -> None:
    registrar, service = _registrar([], tmp_path)
    service.server_close()
    assert registrar.host_id() == derive_host_id(Host.at(FIXTURES / "kvm-vm"))
    registrar.config = registrar.config._replace(host_id=HOST)
    assert registrar.host_id() == (HOST, "--host-id")


def test_a_stop_ends_the_loop_without_an_answer(tmp_path: Path) -> None:
    registrar, service = _registrar([], tmp_path, host_id=HOST)  # the service answers 500 for ever
    threading.Timer(0.3, registrar.life.stop.set).start()
    try:
        assert registrar.register() is None
    finally:
        service.shutdown()
    assert len(service.posted) >= 1

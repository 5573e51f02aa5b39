"""The first register and poll on a plain socket (common.first_contact): read as requests reads them, and every
answer it is not sure of handed to requests, which then carries the agent's HTTP (common.service_client)."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig
from common.errors import ServiceResponseError
from common.first_contact import Unreadable, exchange, plain_url
from common.service_client import ServiceClient
from common.uuids import is_uuid, random_uuid

IE = "11111111-1111-1111-1111-111111111111"
HOST = "00000000-0000-0000-0000-0000000000aa"


@dataclass
class RawServer:
    """A loopback server that answers each connection with the next canned bytes and records what it got."""

    answers: list[bytes]
    port: int = 0
    requests: list[bytes] = field(default_factory=list)


@contextmanager
def raw_server(*answers: bytes) -> Iterator[RawServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = RawServer(list(answers), listener.getsockname()[1])

    def serve() -> None:
        while server.answers:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                server.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(server.answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        listener.close()
        thread.join(5)


def _ask(server: RawServer, limit: int = 1 << 20) -> bytes:
    answer = exchange("127.0.0.1", server.port, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", b"",
                      timeout=(5, 5), limit=limit)
    return answer.body


def test_bodies_by_length_chunked_and_until_the_end() -> None:
    doc = b'{"a": 1}'
    with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + doc + b"trailing junk",
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3;x=y\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\nT: 1\r\n\r\n",
                    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + doc) as server:
        assert [_ask(server) for _ in range(3)] == [doc, doc, doc]


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
    b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
])
def test_an_answer_it_is_not_sure_of_is_unreadable(answer: bytes) -> None:
    with raw_server(answer) as server, pytest.raises(Unreadable):
        _ask(server)


def test_an_answer_cut_short_is_a_connection_error() -> None:
    with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{}") as server, \
            pytest.raises(ConnectionResetError):
        _ask(server)


def _client(port: int) -> ServiceClient:
    return ServiceClient(AgentConfig(url=f"http://127.0.0.1:{port}/prefix", infra_env_id=IE, agent_version="v1",
                                     token="tok-1"))


def _json_answer(status: str, body: object, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(data)}\r\n\r\n"
            .encode() + data)


def _registered() -> bytes:
    runner = json.dumps({"host_id": HOST, "infra_env_id": IE, "agent_version": "v1"})
    return _json_answer("201 Created", {"id": HOST, "next_step_runner_command": {"args": [runner]}})


def test_the_first_register_and_poll_go_out_on_a_socket_then_requests_carries_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with raw_server(_registered(), _json_answer("200 OK", {"instructions": []}),
                    _json_answer("200 OK", {"instructions": [], "next_instruction_seconds": 5})) as server:
        client = _client(server.port)
        assert client.register(HOST)["id"] == HOST
        assert client.next_steps(IE, HOST, 7) == {"instructions": []}
        client.session  # noqa: B018  loaded in the background meanwhile (a poll due before goes out on a socket)
        assert client.next_steps(IE, HOST, 8)["next_instruction_seconds"] == 5
    first, poll, later = server.requests
    assert first.startswith(f"POST /prefix/api/assisted-install/v2/infra-envs/{IE}/hosts HTTP/1.1\r\n".encode())
    assert poll.startswith(f"GET /prefix/api/assisted-install/v2/infra-envs/{IE}/hosts/{HOST}/instructions"
                           "?timestamp=7 HTTP/1.1\r\n".encode())
    assert b"\r\nConnection: close\r\n" in first and b"Connection: close" not in later  # requests keeps it alive
    for request in (first, poll, later):  # the same headers either way
        assert b"\r\nX-Secret-Key: tok-1\r\n" in request and b"\r\nDiscovery_agent_version: v1\r\n" in request
        assert b"\r\nUser-Agent: assisted-agent/" in request
        request_id = request.split(b"X-Request-Id: ")[1].split(b"\r\n")[0].decode()
        assert str(uuid.UUID(request_id)) == request_id and uuid.UUID(request_id).version == 4


def test_replies_posted_while_requests_loads_go_out_on_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first poll's quick replies (an unknown step type, bad arguments) do not wait for requests to load
    (0.1 s of CPU, most of a second at load 14 on 2 cores): from a step thread, on a plain socket, with the
    same headers; a refusal reads as through requests; once the session exists, it carries them."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    reply = {"step_id": "wrong-step", "step_type": "Step-not-exists", "exit_code": -1,
             "error": "failed to find action for step type Step-not-exists"}
    refusal = _json_answer("400 Bad Request", {"code": "400", "reason": "no such step"})
    with raw_server(b"HTTP/1.1 204 No Content\r\n\r\n", refusal, b"HTTP/1.1 204 No Content\r\n\r\n") as server:
        client = _client(server.port)
        errors: list[BaseException] = []

        def post() -> None:
            try:
                client.post_reply(IE, HOST, reply)
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        for _ in range(2):
            step = threading.Thread(target=post)
            step.start()
            step.join(30)
        client.session  # noqa: B018  requests loaded: it carries the replies from now on
        client.post_reply(IE, HOST, reply)
    assert len(errors) == 1 and isinstance(errors[0], ServiceResponseError)
    assert (errors[0].status, errors[0].reason) == (400, "no such step")
    plain, refused, later = server.requests
    path = f"POST /prefix/api/assisted-install/v2/infra-envs/{IE}/hosts/{HOST}/instructions HTTP/1.1\r\n"
    for request in (plain, refused, later):
        assert request.startswith(path.encode())
        assert b"\r\nX-Secret-Key: tok-1\r\n" in request and b"\r\nContent-Type: application/json\r\n" in request
        assert json.loads(request.partition(b"\r\n\r\n")[2]) == reply
    assert b"\r\nConnection: close\r\n" in plain and b"\r\nConnection: close\r\n" in refused
    assert b"Connection: close" not in later


def test_a_refusal_reads_as_through_requests() -> None:
    refusal = _json_answer("409 Conflict", {"code": "409", "reason": "Cannot add hosts to an existing cluster"})
    with raw_server(refusal, refusal) as server:
        client = _client(server.port)
        with pytest.raises(ServiceResponseError) as light:
            client.register(HOST)
        client.session  # noqa: B018  the first contacts end with the session
        with pytest.raises(ServiceResponseError) as full:
            client.register(HOST)
    assert len(server.requests) == 2  # one each: a refusal is not asked again
    for err in (light.value, full.value):
        assert (err.status, err.reason, err.from_service) == (409, "Cannot add hosts to an existing cluster", True)


@pytest.mark.parametrize("first", [
    _json_answer("503 Service Unavailable", {"reason": "busy"}, "Retry-After: 0\r\n"),
    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /prefix/api/assisted-install/v2/infra-envs/" + IE.encode()
    + b"/hosts\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}",  # cut short
])
def test_what_requests_retries_or_follows_is_asked_again_through_it(first: bytes) -> None:
    with raw_server(first, _registered()) as server:
        assert _client(server.port).register(HOST)["id"] == HOST
    assert len(server.requests) == 2
    assert b"Connection: close" not in server.requests[1]


def test_a_proxy_leaves_even_the_first_request_to_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with raw_server(_registered()) as server:
        assert _client(server.port).register(HOST)["id"] == HOST
    assert b"Connection: close" not in server.requests[0]


def test_uuids_without_the_uuid_module() -> None:
    made = [random_uuid() for _ in range(200)]
    assert all(uuid.UUID(u).version == 4 and str(uuid.UUID(u)) == u for u in made)
    assert len(set(made)) == 200
    for text in (HOST, HOST.upper(), "{" + HOST + "}", "urn:uuid:" + HOST, HOST.replace("-", "")):
        assert is_uuid(text)
    for text in ("", "x", HOST[:-1], HOST + "0", HOST.replace("0", "g", 1)):
        assert not is_uuid(text)


def _as_urlsplit_reads(url: str) -> tuple[str, str, str | None, int, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), \
        parts.path


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8090", "https://service.example:8443/", "http://Service.Example/prefix/api",
    "http://h:65535", "http://h:0123/", "https://h/a;b=c/d:e@f/~g_(h)",
])
def test_a_plain_url_is_read_as_urlsplit_reads_it(url: str) -> None:
    assert plain_url(url) == _as_urlsplit_reads(url)


@pytest.mark.parametrize("url", [
    "http://user:pw@h/", "http://h/?q=1", "http://h/#f", "http://h/%41", "HTTP://h/", "ftp://h/", "http://h:0/",
    "http://h:65536/", "http://h:/", "http:///x", "http://h /", " http://h/", "http://h/\t", "http://[fe80::1%25e]/",
    "https://[::1]:9443/x", "http://[a]/", "http://h/[x]",
    "http://h\u00e9/", "",
])
def test_any_other_url_is_left_to_urllib(url: str) -> None:
    assert plain_url(url) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="htps:/[]@?#%.-_~ 09aAzZ:;=!$&'()*+,\t\u00e9", max_size=30))
def test_whatever_plain_url_reads_urlsplit_reads_alike(tail: str) -> None:
    for url in (tail, "http://" + tail, "https://" + tail):
        got = plain_url(url)
        if got is not None:
            assert got == _as_urlsplit_reads(url)


def test_a_url_that_is_not_plain_leaves_even_the_first_request_to_requests() -> None:
    with raw_server(_registered()) as server:
        client = ServiceClient(AgentConfig(url=f"http://127.0.0.1:{server.port}/prefix?x=1", infra_env_id=IE,
                                           agent_version="v1", token="tok-1"))
        assert client.register(HOST)["id"] == HOST
    assert b"Connection: close" not in server.requests[0]

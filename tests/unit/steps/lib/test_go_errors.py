"""Transport failures in the Go agent's words, from real failures on 127.0.0.1 (and one synthetic DNS one:
resolving a missing name could ask a resolver off this machine)."""

from __future__ import annotations

import socket
import threading

import requests

from steps.lib.go_errors import http_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failure(url: str, timeout: float = 2.0) -> requests.RequestException:
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        return exc
    raise AssertionError(f"{url} answered")


def test_refused() -> None:
    url = f"http://127.0.0.1:{_free_port()}/adv/x"
    assert http_error("GET", url, _failure(url)) == (
        f'Get "{url}": dial tcp 127.0.0.1:{url.split(":")[2].split("/")[0]}: connect: connection refused')


def test_refused_ipv6_literal_is_bracketed() -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    url = f"http://[::1]:{port}/"
    assert http_error("GET", url, _failure(url)).endswith(f"dial tcp [::1]:{port}: connect: connection refused")


def test_silent_server_is_a_client_timeout() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        assert http_error("GET", url, _failure(url, timeout=0.2)) == (
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)')


def test_closed_without_answer_is_eof() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        def hang_up() -> None:
            conn, _ = server.accept()
            conn.recv(4096)
            conn.close()

        t = threading.Thread(target=hang_up)
        t.start()
        exc = _failure(url)
        t.join(5)
    assert http_error("GET", url, exc) == f'Get "{url}": EOF'


def test_unknown_host() -> None:
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as dns:
            raise requests.ConnectionError("Max retries exceeded") from dns
    except requests.ConnectionError as exc:
        text = http_error("GET", "http://tang.example:7500/adv/x", exc)
    assert text == 'Get "http://tang.example:7500/adv/x": dial tcp: lookup tang.example: no such host'


def test_anything_else_keeps_its_own_text() -> None:
    assert http_error("GET", "http://x/", ValueError("odd")) == 'Get "http://x/": odd'

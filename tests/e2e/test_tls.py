"""TLS: verified by default against the system store plus --cacert; skipped only with --insecure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.config import AgentConfig
from common.errors import TransportError
from common.service_client import ServiceClient
from tests.support.service import start_agent, start_service


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": d / "ca.pem", "cert": d / "srv.pem", "key": d / "srv.key"}


def test_cacert_is_trusted_and_default_verification_refuses_a_private_ca(tmp_path: Path,
                                                                         pki: dict[str, Path]) -> None:
    tls = ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])]
    with start_service(tmp_path, extra=tls) as svc:
        assert svc.url.startswith("https://")
        svc.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        svc.session.verify = str(pki["ca"])
        ie = svc.create_infra_env()["id"]
        with start_agent(svc.url, ie, args=["--cacert", str(pki["ca"])], log=tmp_path / "ok.log"):
            svc.wait_host(ie, lambda h: True, timeout=30)
        with start_agent(svc.url, ie, log=tmp_path / "untrusted.log") as untrusted:
            untrusted.wait_log("TLS verification of", timeout=30)
        assert "hint: pass the service's CA with --cacert" in untrusted.log
        with start_agent(svc.url, ie, args=["--insecure=true", "--host-id",
                                            "99999999-0000-0000-0000-000000000000"], log=tmp_path / "insecure.log"):
            svc.wait_host(ie, lambda h: h["id"] == "99999999-0000-0000-0000-000000000000", timeout=30)


def test_client_keeps_the_system_store_when_a_cacert_is_added(pki: dict[str, Path]) -> None:
    client = ServiceClient(AgentConfig(url="https://127.0.0.1:1", infra_env_id="x", cacert=str(pki["ca"])))
    adapter = client.session.get_adapter("https://127.0.0.1:1")
    ctx = adapter._ssl_context  # type: ignore[attr-defined]
    subjects = [dict(x[0] for x in c["subject"]).get("commonName") for c in ctx.get_ca_certs()]
    assert "test CA" in subjects
    assert len(subjects) > 1, "the system trust store must still be loaded"


def test_a_connection_failure_is_a_transport_error_with_a_hint(pki: dict[str, Path]) -> None:
    client = ServiceClient(AgentConfig(url="https://127.0.0.1:1", infra_env_id="x"))
    client.session.get_adapter("https://").max_retries.total = 0  # type: ignore[attr-defined]
    with pytest.raises(TransportError, match=r"cannot reach https://127\.0\.0\.1:1") as err:
        client.register("11111111-2222-3333-4444-555555555555")
    assert err.value.hint and "--url" in err.value.hint


def test_the_first_contact_speaks_tls_itself_and_verifies_the_service(pki: dict[str, Path]) -> None:
    """The first register and poll go out on the C module's socket (common.first_contact); over https it is
    handed to ssl as the socket module's class, verified against --cacert, and refused without it."""
    import socket
    import ssl
    import threading

    from common.first_contact import exchange, trust_context

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(pki["cert"]), str(pki["key"]))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(count: int) -> None:
        for _ in range(count):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(65536)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            except (ssl.SSLError, OSError):  # the refused handshake
                pass

    server = threading.Thread(target=serve, args=(2,), daemon=True)
    server.start()
    try:
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        answer = exchange("127.0.0.1", port, head, b"", timeout=(30, 30), limit=1024,
                          tls=trust_context(str(pki["ca"])))
        assert (answer.status, answer.body) == (200, b"{}")
        with pytest.raises(ssl.SSLCertVerificationError):
            exchange("127.0.0.1", port, head, b"", timeout=(30, 30), limit=1024, tls=trust_context(None))
        server.join(30)
    finally:
        listener.close()

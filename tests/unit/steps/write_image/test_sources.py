"""write-image's sources: a file on the host, or HTTP(S) with short and broken downloads told apart, and the
agent's token sent to the service only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import AgentConfig
from common.host import Host
from steps.base import StepContext
from steps.write_image.errors import WriteFailed
from steps.write_image.sources import FileSource, HttpSource, Source, open_source
from tests.support.install_images import RecordingServer


def _ctx(url: str) -> StepContext:
    return StepContext(host=Host(), config=AgentConfig(url=url, token="agent-token"))


def _drain(source: Source) -> bytes:
    out = bytearray()
    while data := source.read(65536):
        out += data
    return bytes(out)


def test_a_file_url_is_read_from_the_host(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    (tmp_path / "img").write_bytes(data)
    source = open_source(_ctx("http://127.0.0.1:9"), f"file://{tmp_path / 'img'}")
    assert isinstance(source, FileSource) and source.total == len(data)
    assert _drain(source) == data and source.consumed == len(data)
    source.close()


def test_a_service_path_is_fetched_from_the_service_with_the_token(server: RecordingServer, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "img").write_bytes(data)
    server.serve("/images/rhcos.raw", tmp_path / "img")
    source = open_source(_ctx(server.url), "/images/rhcos.raw")
    assert isinstance(source, HttpSource) and source.total == len(data)
    assert _drain(source) == data
    source.close()
    headers = server.requests[-1]["headers"]
    assert isinstance(headers, dict) and headers.get("X-Secret-Key") == "agent-token"
    assert headers.get("Accept-Encoding") == "identity"


def test_the_token_is_not_sent_to_a_mirror(server: RecordingServer, tmp_path: Path) -> None:
    (tmp_path / "img").write_bytes(b"x" * 100)
    url = server.serve("/mirror/img", tmp_path / "img").replace("127.0.0.1", "localhost")  # another origin
    source = open_source(_ctx(server.url), url)
    assert _drain(source) == b"x" * 100
    source.close()
    headers = server.requests[-1]["headers"]
    assert isinstance(headers, dict) and "X-Secret-Key" not in headers


def test_a_short_download_is_refused(server: RecordingServer, tmp_path: Path) -> None:
    (tmp_path / "img").write_bytes(os.urandom(200_000))
    url = server.serve("/img", tmp_path / "img", fault="truncate")
    source = open_source(_ctx(server.url), url)
    with pytest.raises(WriteFailed, match=r"(short download: got 100000 of 200000 bytes|broke after)"):
        _drain(source)
    source.close()


def test_a_missing_image_is_refused(server: RecordingServer) -> None:
    with pytest.raises(WriteFailed, match=f"downloading the image from {server.url}/nothing failed: HTTP 404"):
        open_source(_ctx(server.url), server.url + "/nothing")

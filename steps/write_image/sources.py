"""Where the image's bytes come from: a file on the host, or HTTP(S) (the service's own path or a mirror)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import Protocol
from urllib.parse import urlsplit

from common.logs import redact_url
from steps.base import StepContext
from steps.write_image.errors import WriteFailed

#: Seconds a stalled download may stay silent before the write fails.
READ_TIMEOUT = 60.0


class Source(Protocol):
    total: int | None
    consumed: int

    def read(self, n: int) -> bytes: ...

    def readinto(self, buf: memoryview) -> int: ...

    def close(self) -> None: ...


class FileSource:
    def __init__(self, path: str) -> None:
        try:
            self._fh: io.FileIO = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise WriteFailed(f"cannot open the image {path}: {exc.strerror}") from exc
        self.total: int | None = os.fstat(self._fh.fileno()).st_size
        self.consumed = 0

    def read(self, n: int) -> bytes:
        try:
            data = self._fh.read(n) or b""
        except OSError as exc:
            raise WriteFailed(f"reading the image failed: {exc.strerror}") from exc
        self.consumed += len(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        try:
            n = self._fh.readinto(buf) or 0
        except OSError as exc:
            raise WriteFailed(f"reading the image failed: {exc.strerror}") from exc
        self.consumed += n
        return n

    def close(self) -> None:
        self._fh.close()


class HttpSource:
    def __init__(self, ctx: StepContext, url: str) -> None:
        import requests

        from common.service_client import build_session

        if url.startswith("/"):
            session = ctx.client.session
            url = ctx.config.url.rstrip("/") + url
        else:
            session = build_session(ctx.config)  # the token goes to the service's origin only
        self.url = redact_url(url)  # what messages show: no URL password reaches a reply or a progress line
        try:
            self._resp = session.get(
                url, stream=True, timeout=(10.0, READ_TIMEOUT), headers={"Accept-Encoding": "identity"}
            )
        except requests.RequestException as exc:
            raise WriteFailed(f"cannot download the image from {self.url}: {_short(exc)}") from exc
        if self._resp.status_code != 200:
            self._resp.close()
            raise WriteFailed(f"downloading the image from {self.url} failed: HTTP {self._resp.status_code}")
        length = self._resp.headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.consumed = 0

    def read(self, n: int) -> bytes:
        with self._broken_stream():
            data: bytes = self._resp.raw.read(n)
        self._check(len(data))
        return data

    def readinto(self, buf: memoryview) -> int:
        with self._broken_stream():
            n: int = self._resp.raw.readinto(buf)
        self._check(n)
        return n

    @contextlib.contextmanager
    def _broken_stream(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # urllib3 raises several unrelated types for a broken stream
            raise WriteFailed(
                f"the image download from {self.url} broke after {self.consumed} bytes: {_short(exc)}"
            ) from exc

    def _check(self, n: int) -> None:
        self.consumed += n
        if not n and self.total is not None and self.consumed < self.total:
            raise WriteFailed(f"short download: got {self.consumed} of {self.total} bytes from {self.url}")

    def close(self) -> None:
        self._resp.close()


def _short(exc: BaseException) -> str:
    text = redact_url(str(exc))
    return text if len(text) < 300 else text[:300] + "..."


def open_source(ctx: StepContext, url: str) -> Source:
    if urlsplit(url).scheme == "file":
        return FileSource(urlsplit(url).path)
    return HttpSource(ctx, url)

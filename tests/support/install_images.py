"""Disk images and loop devices for the install tests: built here, with the real tools, never downloaded.

The image is laid out like a CoreOS metal image: a GPT with ``EFI-SYSTEM``, ``boot`` (ext4 labelled ``boot``,
holding ``loader/entries/*.conf`` BLS entries) and ``root`` (ext4 labelled ``root``). Filesystems are made with
``mkfs.ext4 -E offset=... -d DIR`` straight into the image file, so building needs no loop device. Every loop
backing file and mount point created here starts with ``ainst`` so parallel test runs of other areas never
collide with ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "ainst"
MIB = 1 << 20
BLS_OPTIONS = "root=UUID=00000000-0000-4000-8000-000000000001 rw ignition.platform.id=metal $ignition_firstboot"


@dataclass(frozen=True)
class BuiltImage:
    raw: Path
    size: int
    raw_sha256: str
    #: compression -> (file, sha256 of the file)
    compressed: dict[str, tuple[Path, str]]

    def file(self, compression: str) -> tuple[Path, str]:
        return (self.raw, self.raw_sha256) if compression == "none" else self.compressed[compression]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kw)  # type: ignore


def build_image(workdir: Path, *, size_mib: int = 48, seed: int = 7, root_payload_mib: int = 8) -> BuiltImage:
    """A CoreOS-like GPT image with realistic (partly compressible, partly random) content."""
    raw = workdir / f"{PREFIX}-image.raw"
    size = size_mib * MIB
    with open(raw, "wb") as fh:
        fh.truncate(size)
    boot_start, boot_size = 5 * MIB, 16 * MIB
    root_start = boot_start + boot_size
    root_size = size - root_start - MIB  # leave room for the backup GPT
    layout = (
        "label: gpt\n"
        f"start=2048, size={4 * MIB // 512}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI-SYSTEM\n"
        f"start={boot_start // 512}, size={boot_size // 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\n"
        f"start={root_start // 512}, size={root_size // 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n"
    )
    run(["sfdisk", "--quiet", str(raw)], input=layout)
    boot_dir = workdir / "boot-tree"
    entries = boot_dir / "loader" / "entries"
    entries.mkdir(parents=True)
    for n, version in ((1, "416.94.202405291527-0"), (2, "416.94.202406010000-0")):
        (entries / f"ostree-{n}-rhcos.conf").write_text(
            f"title Red Hat Enterprise Linux CoreOS {version} (ostree:{n - 1})\nversion {n}\n"
            f"options {BLS_OPTIONS} ostree=/ostree/boot.1/rhcos/{n}/0\n"
            f"linux /ostree/rhcos-{n}/vmlinuz-5.14.0\ninitrd /ostree/rhcos-{n}/initramfs-5.14.0.img\n"
        )
    (boot_dir / "ignition.firstboot").write_text("")
    root_dir = workdir / "root-tree"
    (root_dir / "etc").mkdir(parents=True)
    (root_dir / "etc" / "os-release").write_text('NAME="Red Hat Enterprise Linux CoreOS"\nVERSION_ID="4.16"\n')
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(512)]
    with open(root_dir / "usr-share-doc.txt", "wb") as fh:  # compressible text
        for _ in range(root_payload_mib * MIB // 6):
            fh.write(rng.choice(words) + b" ")
    (root_dir / "firmware.bin").write_bytes(rng.randbytes(root_payload_mib * MIB // 4))  # incompressible
    for label, start, length, tree in (("boot", boot_start, boot_size, boot_dir), ("root", root_start, root_size,
                                                                                      root_dir)):
        run(["mkfs.ext4", "-q", "-F", "-L", label, "-E", f"offset={start}", "-d", str(tree), str(raw),
             f"{length // 1024}k"])
    compressed = {}
    for kind, argv, suffix in (("xz", ["xz", "-T1", "-3", "-c"], "xz"), ("gzip", ["gzip", "-c"], "gz"),
                               ("zstd", ["zstd", "-q", "-c"], "zst")):
        out = workdir / f"{PREFIX}-image.raw.{suffix}"
        with open(raw, "rb") as src, open(out, "wb") as dst:
            subprocess.run(argv, stdin=src, stdout=dst, check=True, timeout=300)
        compressed[kind] = (out, sha256_file(out))
    return BuiltImage(raw, size, sha256_file(raw), compressed)


@dataclass
class LoopDevice:
    path: str
    backing: Path

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb", buffering=0) as fh:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            fh.seek(offset)
            return fh.read(length)

    def write(self, offset: int, data: bytes) -> None:
        with open(self.path, "r+b", buffering=0) as fh:
            fh.seek(offset)
            fh.write(data)
            os.fsync(fh.fileno())

    def partitions(self) -> list[str]:
        sysdir = Path("/sys/class/block") / self.name
        return sorted(f"/dev/{p.name}" for p in sysdir.iterdir() if p.name.startswith(self.name))


@contextlib.contextmanager
def loop_device(size: int, directory: Path | None = None) -> Iterator[LoopDevice]:
    """A loop device over a sparse ``ainst-*`` backing file; detached (and its mounts undone) at the end."""
    fd, name = tempfile.mkstemp(prefix=f"{PREFIX}-loop-", suffix=".img", dir=directory)
    os.close(fd)
    backing = Path(name)
    os.truncate(backing, size)
    path = run(["losetup", "--find", "--show", "--direct-io=on", str(backing)]).stdout.strip()
    dev = LoopDevice(path, backing)
    try:
        yield dev
    finally:
        for node in [*dev.partitions(), dev.path]:
            for _ in range(3):
                if subprocess.run(["findmnt", "-n", "--source", node], capture_output=True).returncode != 0:
                    break
                subprocess.run(["umount", node], capture_output=True)
        subprocess.run(["losetup", "-d", path], capture_output=True)
        backing.unlink(missing_ok=True)


@contextlib.contextmanager
def mounted(device: str) -> Iterator[Path]:
    """Read-only, so the kernel writes nothing to the device behind the test's back (ext4 lazy init, journal)."""
    where = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-mnt-"))
    run(["mount", "-o", "ro", device, str(where)])
    try:
        yield where
    finally:
        for _ in range(10):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        with contextlib.suppress(OSError):
            where.rmdir()


class RecordingServer:
    """A small HTTP server on 127.0.0.1 standing in for the service in step-level tests.

    It records every request (method, path, headers, body), answers progress and logs calls like the service,
    serves Ignition, and serves files with optional faults: ``truncate`` announces the full Content-Length but
    stops half-way and closes; ``trickle`` sends slowly (for interrupting a write); ``no_length`` streams
    without a Content-Length.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[dict[str, object]] = []
        self.files: dict[str, tuple[Path, str]] = {}  # url path -> (file, fault)
        self.ignition = b'{"ignition":{"version":"3.2.0"},"storage":{"files":[]}}'
        self.progress_status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                       "body": body})
                return body

            def _reply(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                self._record()
                self._reply(outer.progress_status if self.path.endswith("/progress") else 204)

            def do_POST(self) -> None:
                self._record()
                self._reply(204)

            def do_GET(self) -> None:
                self._record()
                path = self.path.split("?")[0]
                if path.endswith("/downloads/ignition"):
                    self._reply(200, outer.ignition, "application/octet-stream")
                    return
                if path not in outer.files:
                    self._reply(404, b'{"reason":"not found"}')
                    return
                file, fault = outer.files[path]
                data = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if fault == "no_length":
                    self.send_header("Connection", "close")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "trickle":
                    for i in range(0, len(data), 256 * 1024):
                        self.wfile.write(data[i : i + 256 * 1024])
                        time.sleep(0.2)
                    return
                if fault == "no_length":
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, path: str, file: Path, fault: str = "") -> str:
        self.files[path] = (file, fault)
        return self.url + path

    def progress(self) -> list[str]:
        """Progress updates received, as "stage" or "stage info"."""
        import json

        out = []
        for r in self.requests:
            if r["method"] == "PUT" and str(r["path"]).endswith("/progress"):
                body = json.loads(r["body"])  # type: ignore[arg-type]
                out.append(f"{body['current_stage']} {body.get('progress_info', '')}".strip())
        return out

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

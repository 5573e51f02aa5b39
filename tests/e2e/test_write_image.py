"""write-image on real loop devices: every compression, the read-back, Ignition and kargs, progress, refusals
and failures. The images are built by the tests (tests/support/install_images.py); loop backing files,
mounts and device-mapper names start with ``ainst``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments, UnsafeTarget
from common.host import Host
from reference_service import spec
from steps.base import StepContext
from steps.write_image import WriteFailed, WriteImageStep
from tests.support.install_images import (
    MIB,
    BuiltImage,
    LoopDevice,
    RecordingServer,
    build_image,
    loop_device,
    mounted,
    run,
    sha256_file,
)
from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices")

IE = "6d9d4d5e-0a1b-4c2d-8e3f-000000000001"
HOST = "6d9d4d5e-0a1b-4c2d-8e3f-000000000002"
IGNITION = json.dumps({"ignition": {"version": "3.2.0"}, "passwd": {"users": [{"name": "core"}]}})
MARK = b"AINST-OLD-DATA!!" * 32


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build_image(tmp_path_factory.mktemp("ainst-image"))


@pytest.fixture
def loop() -> Iterator[LoopDevice]:
    with loop_device(96 * MIB) as dev:
        yield dev


def ctx_for(url: str = "", **cfg: Any) -> StepContext:
    config = AgentConfig(url=url, infra_env_id=IE if url else "", host_id=HOST if url else None, **cfg)
    return StepContext(host=Host.at("/"), config=config)


def request(image_file: Path | str, target: str, **extra: Any) -> list[str]:
    url = image_file if isinstance(image_file, str) else f"file://{image_file}"
    return [json.dumps({"image_url": url, "target_device": target, **extra})]


def write(args: list[str], ctx: StepContext | None = None) -> dict[str, Any]:
    step = WriteImageStep()
    result = step.run(step.parse_args(args), ctx or ctx_for())
    assert result.exit_code == 0
    assert spec.errors("write_image_response", result.output) == []
    return result.output  # type: ignore[no-any-return]


def mark_disk(dev: LoopDevice, size: int) -> None:
    """Old data at the start, just after the first MiB and at the end: a refusal must leave all of it."""
    for offset in (0, MIB, size - len(MARK)):
        dev.write(offset, MARK)


def assert_untouched(dev: LoopDevice, size: int) -> None:
    for offset in (0, MIB, size - len(MARK)):
        assert dev.read(offset, len(MARK)) == MARK, f"the disk was written at {offset}"


def assert_no_partition_table(dev: LoopDevice) -> None:
    head = dev.read(0, MIB)
    assert head[510:512] != b"\x55\xaa" and head[512:520] != b"EFI PART"
    assert subprocess.run(["sfdisk", "--json", dev.path], capture_output=True).returncode != 0


def partition_names(dev: LoopDevice) -> list[str]:
    table = json.loads(run(["sfdisk", "--json", dev.path]).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    return [p.get("name") for p in table["partitions"]]


def boot_partition(dev: LoopDevice) -> str:
    run(["partx", "-u", dev.path])
    table = json.loads(run(["sfdisk", "--json", dev.path]).stdout)["partitiontable"]
    node = next(p["node"] for p in table["partitions"] if p.get("name") == "boot")
    deadline = time.monotonic() + 5
    while not os.path.exists(node) and time.monotonic() < deadline:
        time.sleep(0.05)
    return str(node)


def device_sha256(dev: LoopDevice, size: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(dev.path, "rb", buffering=0) as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        left = size
        while left:
            chunk = fh.read(min(left, 4 * MIB))
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


# -- success ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["none", "xz", "gzip", "zstd"])
def test_writes_image_places_ignition_and_kargs(image: BuiltImage, loop: LoopDevice, compression: str) -> None:
    path, sha = image.file(compression)
    out = write(request(path, loop.path, image_sha256=sha, raw_sha256=image.raw_sha256, ignition=IGNITION,
                        append_kargs=["console=ttyS0,115200n8", "ip=eth0:dhcp"], delete_kargs=["rw"]))
    assert out["compression"] == compression
    assert out["bytes_written"] == image.size
    assert out["raw_sha256"] == image.raw_sha256 and out["image_sha256"] == sha
    assert out["partitions"] == ["EFI-SYSTEM", "boot", "root"]
    # read back with independent tools: the partition table, the bytes, the boot filesystem
    assert partition_names(loop) == ["EFI-SYSTEM", "boot", "root"]
    node = boot_partition(loop)
    with mounted(node) as boot:
        assert (boot / "ignition" / "config.ign").read_text() == IGNITION
        assert (boot / "ignition" / "config.ign").stat().st_mode & 0o777 == 0o600
        entries = sorted((boot / "loader" / "entries").glob("*.conf"))
        assert len(entries) == 2
        for entry in entries:
            options = next(line for line in entry.read_text().splitlines() if line.startswith("options "))
            args = options.split()[1:]
            assert args[-2:] == ["console=ttyS0,115200n8", "ip=eth0:dhcp"]
            assert "rw" not in args and "ignition.platform.id=metal" in args
    assert out["boot_partition"] == node


def test_without_ignition_the_image_is_written_byte_for_byte(image: BuiltImage, loop: LoopDevice) -> None:
    path, sha = image.file("xz")
    out = write(request(path, loop.path, image_sha256=sha))
    assert "boot_partition" not in out
    assert "raw_sha256" not in out  # not asked for: the decompressed stream was not hashed a second time
    assert device_sha256(loop, image.size) == image.raw_sha256


@pytest.mark.parametrize("compression", ["xz", "gzip"])
def test_in_process_decompression_when_the_tools_are_missing(
    image: BuiltImage, loop: LoopDevice, compression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("steps.write_image.decompress.shutil.which", lambda name: None)
    path, sha = image.file(compression)
    write(request(path, loop.path, image_sha256=sha, raw_sha256=image.raw_sha256))
    assert device_sha256(loop, image.size) == image.raw_sha256


def test_concatenated_gzip_members_are_followed_in_process(
    image: BuiltImage, loop: LoopDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``gzip -dc`` accepts (members written one after the other) the in-process path accepts too."""
    import gzip

    data = image.raw.read_bytes()
    multi = tmp_path / "ainst-multi.raw.gz"
    multi.write_bytes(gzip.compress(data[: 20 * MIB], 1) + gzip.compress(data[20 * MIB :], 1))
    write(request(multi, loop.path, image_sha256=sha256_file(multi), raw_sha256=image.raw_sha256))
    assert device_sha256(loop, image.size) == image.raw_sha256


def test_zstd_frames_one_after_another_and_skippable_frames_are_followed(
    image: BuiltImage, loop: LoopDevice, tmp_path: Path
) -> None:
    """What ``zstd -dc`` accepts (frames one after the other, skippable frames between them) is accepted too."""
    import zstandard

    data = image.raw.read_bytes()
    skippable = (0x184D2A5A).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"notes"
    multi = tmp_path / "ainst-multi.raw.zst"
    multi.write_bytes(zstandard.ZstdCompressor(level=1, write_checksum=True).compress(data[: 20 * MIB]) + skippable
                      + zstandard.ZstdCompressor(level=1, write_content_size=False).compress(data[20 * MIB :]))
    write(request(multi, loop.path, image_sha256=sha256_file(multi), raw_sha256=image.raw_sha256))
    assert device_sha256(loop, image.size) == image.raw_sha256


def test_a_zstd_stream_cut_inside_a_frame_or_corrupted_fails(
    image: BuiltImage, loop: LoopDevice, server: RecordingServer, tmp_path: Path
) -> None:
    """libzstd's streaming reader takes a stream cut mid-frame for a clean end: the step must not."""
    path, _ = image.file("zstd")
    whole = path.read_bytes()
    cut = tmp_path / "ainst-cut.raw.zst"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    failed(request(cut, loop.path, image_sha256=sha256_file(cut)), loop, "the stream ends inside a frame", server)
    corrupt = bytearray(whole)
    for offset in range(len(whole) // 3, len(whole) // 3 + 64):
        corrupt[offset] ^= 0x5A
    cut.write_bytes(bytes(corrupt))
    failed(request(cut, loop.path, image_sha256=sha256_file(cut)), loop, "corrupt or truncated: zstd: ", server)


def test_http_download_reports_progress_and_uses_the_service_ignition(
    image: BuiltImage, loop: LoopDevice, server: RecordingServer
) -> None:
    path, sha = image.file("xz")
    server.serve("/images/rhcos.raw.xz", path)
    ctx = ctx_for(server.url, token="agent-secret-token")
    out = write(request("/images/rhcos.raw.xz", loop.path, image_sha256=sha, image_size=image.size,
                        ignition_from_service=True, role="master"), ctx)
    progress = server.progress()
    assert progress[:2] == ["Starting installation master", "Installing master"]
    percents = [int(p.rsplit(" ", 1)[1].rstrip("%")) for p in progress[2:]]
    assert all(p.startswith("Writing image to disk ") for p in progress[2:])
    assert percents[0] == 0 and percents[-1] == 100
    assert all(b - a >= 5 or b == 100 for a, b in itertools.pairwise(percents))
    assert not any(p.startswith(("Failed", "Rebooting")) for p in progress)
    assert out["progress"] == progress
    gets = [r for r in server.requests if r["method"] == "GET"]
    ignition_path = f"/api/assisted-install/v2/infra-env/{IE}/hosts/{HOST}/downloads/ignition"
    assert [str(r["path"]) for r in gets] == [ignition_path, "/images/rhcos.raw.xz"]
    assert all(r["headers"].get("X-Secret-Key") == "agent-secret-token" for r in gets)  # type: ignore[attr-defined]
    with mounted(boot_partition(loop)) as boot:
        assert (boot / "ignition" / "config.ign").read_bytes() == server.ignition


def test_the_token_is_not_sent_to_another_origin(image: BuiltImage, loop: LoopDevice, server: RecordingServer) -> None:
    other = RecordingServer()
    try:
        path, sha = image.file("zstd")
        url = other.serve("/rhcos.raw.zst", path)
        write(request(url, loop.path, image_sha256=sha), ctx_for(server.url, token="agent-secret-token"))
        (get,) = other.requests
        assert "X-Secret-Key" not in get["headers"]  # type: ignore[operator]
    finally:
        other.close()


# -- refusals: nothing is written ----------------------------------------------------------------------------------
def refused(args: list[str], dev: LoopDevice, size: int, match: str, server: RecordingServer | None = None) -> None:
    mark_disk(dev, size)
    with pytest.raises(UnsafeTarget, match=match):
        write(args, ctx_for(server.url) if server else None)
    assert_untouched(dev, size)
    if server is not None:
        assert server.progress()[-1].startswith("Failed refusing to write")


def test_refuses_a_mounted_disk(image: BuiltImage, loop: LoopDevice, server: RecordingServer) -> None:
    run(["mkfs.ext4", "-q", "-F", loop.path])
    with mounted(loop.path) as where:
        refused(request(image.raw, loop.path, raw_sha256=image.raw_sha256), loop, 96 * MIB,
                f"the device is mounted on {where}", server)


def test_refuses_a_disk_with_a_mounted_partition(image: BuiltImage, loop: LoopDevice) -> None:
    with open(image.raw, "rb") as src, open(loop.path, "r+b") as dst:
        dst.write(src.read())
    node = boot_partition(loop)
    with mounted(node):
        with pytest.raises(UnsafeTarget, match=f"its partition {node} is mounted"):
            write(request(image.raw, loop.path, raw_sha256=image.raw_sha256))
        assert device_sha256(loop, MIB) == sha256_file_head(image.raw, MIB)


def test_format_disks_lose_their_first_sector_only(image: BuiltImage, loop: LoopDevice) -> None:
    old_mbr = b"\xeb\x63\x90" + bytes(507) + b"\x55\xaa"
    with loop_device(8 * MIB) as other:
        other.write(0, old_mbr + MARK)
        other.write(4 * MIB, MARK)
        out = write(request(image.raw, loop.path, raw_sha256=image.raw_sha256,
                            format_disks=[other.path, loop.path]))
        assert out["formatted_disks"] == [other.path]  # the target is written, not also formatted
        assert other.read(0, 512) == bytes(512)
        assert other.read(512, len(MARK)) == MARK and other.read(4 * MIB, len(MARK)) == MARK
        assert device_sha256(loop, image.size) == image.raw_sha256


def test_an_unsafe_format_disk_is_refused_before_anything_is_written(image: BuiltImage, loop: LoopDevice) -> None:
    with loop_device(8 * MIB) as other:
        run(["mkfs.ext4", "-q", "-F", other.path])
        with mounted(other.path) as where:
            before = other.read(0, MIB)
            refused(request(image.raw, loop.path, raw_sha256=image.raw_sha256, format_disks=[other.path]),
                    loop, 96 * MIB, f"refusing to write to {other.path}: the device is mounted on {where}")
            assert other.read(0, MIB) == before
    with pytest.raises(InvalidStepArguments, match="format_disks must list paths under /dev/"):
        WriteImageStep().parse_args(request(image.raw, loop.path, raw_sha256=image.raw_sha256,
                                            format_disks=["sdb"]))


def sha256_file_head(path: Path, size: int) -> str:
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(size)).hexdigest()


def test_refuses_the_installation_media(image: BuiltImage, loop: LoopDevice) -> None:
    pvd = bytearray(2048)
    pvd[0:6] = b"\x01CD001"
    pvd[40:72] = b"rhcos-416.94.202405291527-0".ljust(32)
    mark_disk(loop, 96 * MIB)
    loop.write(0x8000, bytes(pvd))
    with pytest.raises(UnsafeTarget, match="installation media"):
        write(request(image.raw, loop.path, raw_sha256=image.raw_sha256))
    assert loop.read(0x8000, 6) == b"\x01CD001"
    assert_untouched(loop, 96 * MIB)


def test_refuses_a_partition_and_non_block_devices(image: BuiltImage, loop: LoopDevice) -> None:
    with open(image.raw, "rb") as src, open(loop.path, "r+b") as dst:
        dst.write(src.read())
    node = boot_partition(loop)
    with pytest.raises(UnsafeTarget, match="is a partition, not a whole disk"):
        write(request(image.raw, node, raw_sha256=image.raw_sha256))
    with pytest.raises(UnsafeTarget, match="not a block device"):
        write(request(image.raw, "/dev/null", raw_sha256=image.raw_sha256))
    with pytest.raises(UnsafeTarget, match="No such file"):
        write(request(image.raw, "/dev/ainst-missing-disk", raw_sha256=image.raw_sha256))


def test_refuses_a_device_mapper_member(loop: LoopDevice, tmp_path: Path) -> None:
    """This kernel has neither device-mapper nor md, so the holder link is recorded in a fixture tree whose
    /dev node is the real loop device (a block node with its major:minor) and whose sysfs says dm-0 holds it."""
    from steps.lib.disk_safety import check_target

    st = os.stat(loop.path)
    (tmp_path / "dev").mkdir()
    os.mknod(tmp_path / "dev" / "sdx", 0o600 | 0o060000, st.st_rdev)
    sysfs = tmp_path / "sys" / "class" / "block" / "sdx"
    (sysfs / "holders" / "dm-0").mkdir(parents=True)
    (sysfs / "size").write_text(str(96 * MIB // 512))
    (sysfs / "dev").write_text(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    host = Host.at(tmp_path)
    with pytest.raises(UnsafeTarget, match=r"/dev/sdx is held by dm-0 \(active LVM, RAID or device-mapper\)"):
        check_target(host, "/dev/sdx")
    os.rmdir(sysfs / "holders" / "dm-0")
    assert check_target(host, "/dev/sdx").size_bytes == 96 * MIB


def test_refuses_a_disk_other_than_the_one_chosen(image: BuiltImage, loop: LoopDevice) -> None:
    with loop_device(96 * MIB) as other:
        refused(request(image.raw, loop.path, raw_sha256=image.raw_sha256, disk_id=other.path), loop, 96 * MIB,
                "not the disk the service chose")
    refused(request(image.raw, loop.path, raw_sha256=image.raw_sha256, disk_size_bytes=120 * MIB), loop,
            96 * MIB, "the service chose a disk of 125829120 bytes")


def test_refuses_a_disk_smaller_than_the_announced_image(image: BuiltImage) -> None:
    with loop_device(32 * MIB) as small:
        refused(request(image.raw, small.path, raw_sha256=image.raw_sha256, image_size=image.size), small,
                32 * MIB, "the image needs 50331648 bytes but the disk has only 33554432")


# -- failures: Failed is reported and no partition table is left --------------------------------------------------
def failed(args: list[str], dev: LoopDevice, match: str, server: RecordingServer) -> None:
    mark_disk(dev, 96 * MIB)
    with pytest.raises(WriteFailed, match=match):
        write(args, ctx_for(server.url))
    assert_no_partition_table(dev)
    progress = server.progress()
    assert progress[-1].startswith("Failed ") and "Rebooting" not in progress


def test_wrong_checksum_fails_and_leaves_no_partition_table(
    image: BuiltImage, loop: LoopDevice, server: RecordingServer
) -> None:
    path, sha = image.file("gzip")
    failed(request(path, loop.path, image_sha256="0" * 64), loop, "image checksum mismatch", server)
    failed(request(path, loop.path, image_sha256=sha, raw_sha256="f" * 64), loop, "raw image checksum mismatch",
           server)


def test_a_truncated_download_fails(image: BuiltImage, loop: LoopDevice, server: RecordingServer) -> None:
    path, sha = image.file("none")
    url = server.serve("/truncated.raw", path, fault="truncate")
    failed(request(url, loop.path, raw_sha256=sha), loop, r"broke after \d+ bytes|short download", server)


def test_a_truncated_compressed_stream_fails(image: BuiltImage, loop: LoopDevice, server: RecordingServer,
                                             tmp_path: Path) -> None:
    path, _ = image.file("xz")
    cut = tmp_path / "ainst-cut.raw.xz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    failed(request(cut, loop.path, image_sha256=sha256_file(cut)), loop, "corrupt or truncated", server)
    url = server.serve("/nolength.raw.zst", image.file("zstd")[0], fault="no_length")
    failed(request(url, loop.path, image_sha256=image.file("zstd")[1]), loop, "corrupt or truncated", server)


DYING_SERVER = textwrap.dedent("""
    import http.server, sys, time
    data = open(sys.argv[1], "rb").read()
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            print("half", flush=True)
            time.sleep(60)
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    print(srv.server_address[1], flush=True)
    srv.handle_request()
""")


def test_the_server_dying_mid_stream_fails(image: BuiltImage, loop: LoopDevice, server: RecordingServer) -> None:
    path, sha = image.file("none")
    proc = subprocess.Popen([sys.executable, "-c", DYING_SERVER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())

        def kill_after_half() -> None:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == "half":
                proc.kill()

        killer = threading.Thread(target=kill_after_half, daemon=True)
        killer.start()
        failed(request(f"http://127.0.0.1:{port}/image.raw", loop.path, raw_sha256=sha), loop,
               r"broke after \d+ bytes|short download", server)
        killer.join(timeout=10)
        assert proc.poll() is not None
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_an_image_larger_than_the_disk_fails_before_the_table_is_written(
    image: BuiltImage, server: RecordingServer
) -> None:
    path, sha = image.file("xz")
    with loop_device(32 * MIB) as small:
        mark_disk(small, 32 * MIB)
        with pytest.raises(WriteFailed, match="does not fit"):
            write(request(path, small.path, image_sha256=sha), ctx_for(server.url))
        assert_no_partition_table(small)
        assert server.progress()[-1].startswith("Failed the image does not fit")


SIGTERM_CHILD = textwrap.dedent("""
    import json, sys
    from agent.config import AgentConfig
    from common.host import Host
    from steps.base import StepContext
    from steps.write_image import WriteImageStep
    url, ie, host, args = sys.argv[1:5]
    step = WriteImageStep()
    params = step.parse_args([args])
    print("started", flush=True)
    try:
        step.run(params, StepContext(host=Host.at("/"), config=AgentConfig(url=url, infra_env_id=ie, host_id=host)))
    except Exception as exc:
        print(type(exc).__name__, exc, flush=True)
        sys.exit(143)
""")


def test_sigterm_mid_write_reports_failed_and_leaves_no_partition_table(
    image: BuiltImage, loop: LoopDevice, server: RecordingServer
) -> None:
    path, sha = image.file("none")
    url = server.serve("/slow.raw", path, fault="trickle")
    mark_disk(loop, 96 * MIB)
    args = request(url, loop.path, raw_sha256=sha, image_size=image.size)[0]
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD, server.url, IE, HOST, args],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not any(p.startswith("Writing image to disk") and p != "Writing image to disk 0%"
                      for p in server.progress()):
            assert time.monotonic() < deadline and proc.poll() is None, server.progress()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert "Interrupted" in out
    assert server.progress()[-1] == "Failed the write was interrupted by SIGTERM (the agent is stopping)"
    assert_no_partition_table(loop)


# -- the GPT: checked before the body is written, and read back after ------------------------------------------
def test_an_image_for_another_sector_size_is_refused_before_the_body_is_written(
    image: BuiltImage, server: RecordingServer, tmp_path: Path
) -> None:
    """A 512-byte-sector image on a 4K-native disk would not boot: refused as soon as its GPT is seen."""
    fd_path = tmp_path / "ainst-4k.img"
    with open(fd_path, "wb") as fh:
        fh.truncate(96 * MIB)
    device = run(["losetup", "--find", "--show", "--sector-size", "4096", str(fd_path)]).stdout.strip()
    try:
        dev = LoopDevice(device, fd_path)
        mark_disk(dev, 96 * MIB)
        with pytest.raises(WriteFailed, match=r"laid out for 512-byte sectors but .* has 4096-byte sectors"):
            write(request(image.raw, device, raw_sha256=image.raw_sha256), ctx_for(server.url))
        assert dev.read(MIB, len(MARK)) == MARK  # the body was never written
        assert_no_partition_table(dev)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


def test_a_file_that_is_not_a_disk_image_is_refused_before_the_body_is_written(
    loop: LoopDevice, server: RecordingServer, tmp_path: Path
) -> None:
    junk = tmp_path / "ainst-junk.raw"
    junk.write_bytes(os.urandom(4 * MIB))
    mark_disk(loop, 96 * MIB)
    with pytest.raises(WriteFailed, match="not a GPT disk image"):
        write(request(junk, loop.path, raw_sha256=sha256_file(junk)), ctx_for(server.url))
    assert loop.read(MIB, len(MARK)) == MARK


def test_the_gpt_read_back_catches_corruption(image: BuiltImage) -> None:
    """The proof after writing parses the GPT itself: each kind of damage is named."""
    from steps.lib.bootfs import ImageVerificationError, parse_gpt

    good = image.raw.read_bytes()

    def reader(data: bytes) -> Any:
        return lambda offset, length: data[offset : offset + length]

    table = parse_gpt(reader(good), 512)
    assert [p.name for p in table.partitions] == ["EFI-SYSTEM", "boot", "root"]
    assert table.find("boot") is not None and table.alternate_lba == image.size // 512 - 1
    damaged = {
        "header CRC mismatch": (512 + 40, b"\x07"),  # first usable LBA changed, CRC left as it was
        "entry array CRC mismatch": (1024 + 56, b"X"),  # a partition name changed
        "backup GPT header missing": (image.size - 512, b"\0" * 8),
        "no GPT found": (512, b"NOT PART"),
    }
    for message, (offset, patch) in damaged.items():
        data = good[:offset] + patch + good[offset + len(patch) :]
        with pytest.raises(ImageVerificationError, match=message):
            parse_gpt(reader(data), 512)

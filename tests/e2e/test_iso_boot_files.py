"""The minimal ISO, the boot artifacts and the iPXE script through the real services' paths (issue 24, item 2),
called with the client generated from the spec (``assisted-service-client``), each JSON answer checked against
the spec's model: ``downloads/image-url`` for a ``minimal-iso`` infra-env, the minimal ISO with the infra-env's
Ignition and rootfs URL written into its two reserved areas, ``downloads/files?file_name=ipxe-script`` naming
``/boot-artifacts/kernel``, ``/images/{id}/pxe-initrd`` and ``/boot-artifacts/rootfs`` (the image service's
paths), each of them downloaded, and ``downloads/minimal-initrd``.

The built files here are small ones made by xorriso as ``build-iso.sh`` lays them out (the booted ISO is tested in
tests/e2e/test_lab.py); the real reference service serves them over HTTP.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from reference_service import iso, iso_boot, spec
from reference_service.http import iso_routes
from tests.support.service import RefService, start_service

client = pytest.importorskip("assisted_service_client")

IMAGE = "10.77.0.1:5000/assisted-agent:latest"
AREA = 262144
KARGS = 512
KARGS_MARKER = "#assisted-kargs-area"

pytestmark = pytest.mark.skipif(not shutil.which("xorriso"), reason="needs xorriso")


def _lba(out: Path, path: str) -> int:
    report = subprocess.run(["xorriso", "-indev", str(out), "-find", path, "-exec", "report_lba", "--"],
                            capture_output=True, text=True, timeout=60).stdout
    line = next(x for x in report.splitlines() if x.startswith("File data lba:"))
    return int(line.split(",")[1]) * 2048


def built_files(work: Path) -> Path:
    """A full ISO, a minimal ISO and the three boot artifacts, with the .json build-iso.sh writes beside them."""
    (work / "d.vmlinuz").write_bytes(b"KERNEL" * 1000)
    (work / "d.initrd.img").write_bytes(b"INITRD" * 1001)  # not a multiple of 4: the cpio is padded after it
    (work / "d.rootfs.img").write_bytes(b"hsqs" + bytes(range(256)) * 64)
    marker = iso.MARKER + f" size={AREA}\n".encode()
    stages = {t: work / t for t in ("full", "minimal")}
    for stage in stages.values():
        (stage / "live").mkdir(parents=True)
        (stage / "isolinux").mkdir()
    (stages["full"] / "assisted").mkdir()
    (stages["full"] / "assisted" / "ignition.img").write_bytes(marker + bytes(AREA - len(marker)))
    (stages["minimal"] / "live" / "assisted.img").write_bytes(marker + bytes(AREA - len(marker)))
    kargs = (KARGS_MARKER + " " * KARGS)[:KARGS]
    (stages["minimal"] / "isolinux" / "isolinux.cfg").write_text(
        f"label discovery\n  kernel /live/vmlinuz\n  append initrd=/live/initrd.img,/live/assisted.img boot=live "
        f"{kargs}\n")
    for name, stage in stages.items():
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(work / f"d.{name}.iso"), "-V", "DISCOVERY",
                        "-J", "-r", str(stage)], check=True, capture_output=True, timeout=60)
    full, minimal = work / "d.full.iso", work / "d.minimal.iso"
    cfg = _lba(minimal, "/isolinux/isolinux.cfg")
    cfg += (stages["minimal"] / "isolinux" / "isolinux.cfg").read_bytes().index(KARGS_MARKER.encode())
    meta = {"area_offset": _lba(full, "/assisted/ignition.img"), "area_size": AREA, "minimal_iso": minimal.name,
            "minimal_area_offset": _lba(minimal, "/live/assisted.img"), "minimal_kargs_offset": cfg,
            "minimal_kargs_size": KARGS, "kernel": "d.vmlinuz", "initrd": "d.initrd.img", "rootfs": "d.rootfs.img"}
    Path(f"{full}.json").write_text(json.dumps(meta))
    return full


def cpio_files(data: bytes) -> dict[str, bytes]:
    """The members of a newc cpio archive (to its trailer; the NULs padding what came before it skipped)."""
    out: dict[str, bytes] = {}
    data = data.lstrip(b"\0")
    pos = 0
    while True:
        assert data[pos:pos + 6] == b"070701", data[pos:pos + 16]
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = data[pos:pos + size]
        pos += size + (-size % 4)


def the_ignition(area: bytes) -> dict[str, Any]:
    first, _, rest = area.rstrip(b"\0").partition(b"\n")
    assert first.startswith(iso.MARKER)
    return json.loads(rest)  # type: ignore[no-any-return]


def extract(path: Path, member: str, work: Path) -> bytes:
    target = work / member.replace("/", "_")
    target.unlink(missing_ok=True)
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(path), "-extract", member, str(target)], check=True,
                   capture_output=True, timeout=60)
    return target.read_bytes()


def installer(svc: RefService) -> Any:
    config = client.Configuration()
    config.host = svc.url + "/api/assisted-install"
    config.api_key["Authorization"] = "test-admin-token"
    return client.InstallerApi(api_client=client.ApiClient(configuration=config))


def raw(call: Any, *args: Any, **kw: Any) -> Any:
    """A call of the generated client, its raw answer (urllib3's response)."""
    return call(*args, _preload_content=False, **kw)


def test_the_minimal_iso_carries_the_ignition_and_the_rootfs_url(tmp_path: Path) -> None:
    built = built_files(tmp_path)
    minimal = tmp_path / "d.minimal.iso"
    before = minimal.read_bytes()
    with start_service(tmp_path, auth="token", extra=["--discovery-iso", str(built), "--agent-image", IMAGE]) as svc:
        api = installer(svc)
        ie = svc.create_infra_env(image_type="minimal-iso", ssh_authorized_key="ssh-ed25519 AAAAC3 lab@test")
        presigned = json.loads(raw(api.get_infra_env_download_url, ie["id"]).data)
        assert spec.errors("presigned-url", presigned) == []
        assert presigned["url"].startswith(f"{svc.url}/images/{ie['id']}?arch=x86_64&type=minimal-iso")
        resp = requests.get(presigned["url"], timeout=60)
        assert resp.status_code == 200 and int(resp.headers["content-length"]) == len(before)
        ign = json.loads(raw(api.v2_download_infra_env_files, ie["id"], "discovery.ign").data)
        assert requests.get(presigned["url"].split("&api_key=")[0], timeout=30).status_code == 401
    got = tmp_path / "got.iso"
    got.write_bytes(resp.content)
    assert minimal.read_bytes() == before, "the built ISO is never changed"
    meta = json.loads(Path(f"{built}.json").read_text())
    changed = [i for i in range(0, len(before), 2048) if before[i:i + 2048] != resp.content[i:i + 2048]]
    areas = [(meta["minimal_area_offset"], AREA), (meta["minimal_kargs_offset"], KARGS)]
    assert all(any(o - 2048 < i < o + n for o, n in areas) for i in changed), "only the two areas change"
    members = cpio_files(extract(got, "/live/assisted.img", tmp_path))
    assert set(members) == {"assisted", "assisted/ignition.img"}
    assert the_ignition(members["assisted/ignition.img"]) == ign
    cfg = extract(got, "/isolinux/isolinux.cfg", tmp_path).decode()
    version = ie.get("openshift_version") or iso_routes.DEFAULT_VERSION
    rootfs = f"{svc.url}/boot-artifacts/rootfs?arch=x86_64&version={version}"
    assert f" fetch={rootfs}&file=filesystem.squashfs " in cfg
    assert len(cfg) == len(extract(minimal, "/isolinux/isolinux.cfg", tmp_path))


def test_the_ipxe_script_names_boot_artifacts_that_download(tmp_path: Path) -> None:
    built = built_files(tmp_path)
    with start_service(tmp_path, auth="token", extra=["--discovery-iso", str(built), "--agent-image", IMAGE]) as svc:
        api = installer(svc)
        ie = svc.create_infra_env(image_type="minimal-iso")
        script = raw(api.v2_download_infra_env_files, ie["id"], "ipxe-script").data.decode()
        ign = json.loads(raw(api.v2_download_infra_env_files, ie["id"], "discovery.ign").data)
        # the shape real clients parse (assisted-test-infra's regular expressions)
        initrd_url = re.search(r"\ninitrd --name initrd (.*)\n", script).group(1)  # type: ignore[union-attr]
        kernel_url, rootfs_url = re.search(  # type: ignore[union-attr]
            r"\nkernel ([^ ]*) initrd=initrd coreos.live.rootfs_url=([^ ]*)", script).groups()
        assert script.startswith("#!ipxe\n") and script.endswith("\nboot\n")
        version = ie.get("openshift_version") or iso_routes.DEFAULT_VERSION
        assert kernel_url == f"{svc.url}/boot-artifacts/kernel?arch=x86_64&version={version}"
        assert rootfs_url == f"{svc.url}/boot-artifacts/rootfs?arch=x86_64&version={version}"
        assert initrd_url.startswith(f"{svc.url}/images/{ie['id']}/pxe-initrd?api_key=")
        assert f" fetch={rootfs_url}&file=filesystem.squashfs" in script
        fetched = {name: requests.get(url, timeout=60) for name, url in
                   (("kernel", kernel_url), ("rootfs", rootfs_url), ("initrd", initrd_url))}
        assert all(r.status_code == 200 for r in fetched.values()), {k: r.text for k, r in fetched.items()}
        assert requests.get(initrd_url.replace("api_key=", "api_key=0"), timeout=30).status_code == 401
        assert requests.get(kernel_url.split("&version")[0], timeout=30).status_code == 400
        assert requests.get(f"{svc.url}/boot-artifacts/initrd?arch=x86_64&version=4.18", timeout=30).status_code == 404
        bad = requests.get(f"{svc.url}/api/assisted-install/v2/infra-envs/{ie['id']}/downloads/files",
                           params={"file_name": "ipxe-script", "ipxe_script_type": "boot-order-control"},
                           headers={"Authorization": "test-admin-token"}, timeout=30)
        assert bad.status_code == 400 and spec.errors("error", bad.json()) == []
    assert fetched["kernel"].content == (tmp_path / "d.vmlinuz").read_bytes()
    assert fetched["rootfs"].content == (tmp_path / "d.rootfs.img").read_bytes()
    initrd = (tmp_path / "d.initrd.img").read_bytes()
    body = fetched["initrd"].content
    assert body[:len(initrd)] == initrd and int(fetched["initrd"].headers["content-length"]) == len(body)
    members = cpio_files(body[len(initrd):])
    assert the_ignition(members["assisted/ignition.img"]) == ign


def test_minimal_initrd_holds_the_static_network_configs(tmp_path: Path) -> None:
    built = built_files(tmp_path)
    yaml = "interfaces:\n- name: eth0\n  type: ethernet\n"
    network = {"network_yaml": yaml,
               "mac_interface_map": [{"mac_address": "52:54:00:1a:b0:00", "logical_nic_name": "eth0"}]}
    with start_service(tmp_path, extra=["--discovery-iso", str(built), "--agent-image", IMAGE]) as svc:
        api = installer(svc)
        plain = svc.create_infra_env(image_type="minimal-iso")
        assert raw(api.download_minimal_initrd, plain["id"]).status == 204
        static = svc.create_infra_env(image_type="minimal-iso", static_network_config=[network])
        members = cpio_files(raw(api.download_minimal_initrd, static["id"]).data)
    assert members["etc/assisted/network/host0/network.yaml"] == yaml.encode()
    assert members["etc/assisted/network/host0/mac_interface.ini"] == b"52:54:00:1a:b0:00=eth0\n"


def test_an_iso_built_without_boot_files_says_so(tmp_path: Path) -> None:
    built = built_files(tmp_path)
    meta = json.loads(Path(f"{built}.json").read_text())
    Path(f"{built}.json").write_text(json.dumps({k: meta[k] for k in ("area_offset", "area_size")}))
    with start_service(tmp_path, extra=["--discovery-iso", str(built), "--agent-image", IMAGE]) as svc:
        ie = svc.create_infra_env(image_type="minimal-iso")
        resp = requests.get(f"{svc.url}/boot-artifacts/kernel?arch=x86_64&version=4.18", timeout=30)
        assert resp.status_code == 404 and "build-iso.sh" in resp.text
        url = svc.api("GET", f"/v2/infra-envs/{ie['id']}/downloads/image-url")["url"]
        assert requests.get(url, timeout=30).status_code == 404


def test_the_boot_routes_are_the_real_services_paths() -> None:
    paths = {r.path for r in iso_routes.ROUTES}
    assert {"/images/{infra_env_id}/pxe-initrd", "/boot-artifacts/{artifact}",
            "/api/assisted-install/v2/infra-envs/{infra_env_id}/downloads/minimal-initrd"} <= paths
    assert iso_boot.FETCH_SUFFIX.endswith(".squashfs")

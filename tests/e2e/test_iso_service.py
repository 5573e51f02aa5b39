"""The discovery ISO through the real service's API paths (issue 24, item 2): the pre-signed URL, the image with
the infra-env's Ignition in its reserved area, ``discovery.ign``; one ISO, never rebuilt per infra-env.

The ISO here is a small one made by xorriso with the reserved file as ``build-iso.sh`` makes it (the booted one
is tested in tests/e2e/test_lab.py); the real reference service serves it over HTTP.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from reference_service import iso
from reference_service.http import iso_routes
from tests.support.service import RefService, start_service

ROOT = Path(__file__).parents[2]
IMAGE = "10.77.0.1:5000/assisted-agent:latest"
AREA = 262144

pytestmark = pytest.mark.skipif(not shutil.which("xorriso"), reason="needs xorriso")


def small_iso(work: Path) -> Path:
    stage = work / "stage"
    (stage / "assisted").mkdir(parents=True)
    (stage / "live").mkdir()
    (stage / "live" / "filesystem.squashfs").write_bytes(bytes(range(256)) * 4096)
    marker = iso.MARKER + f" size={AREA}\n".encode()
    (stage / "assisted" / "ignition.img").write_bytes(marker + bytes(AREA - len(marker)))
    out = work / "discovery.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(out), "-V", "DISCOVERY", "-J", "-r",
                    str(stage)], check=True, capture_output=True, timeout=60)
    report = subprocess.run(["xorriso", "-indev", str(out), "-find", "/assisted/ignition.img", "-exec",
                             "report_lba", "--"], capture_output=True, text=True, timeout=60).stdout
    line = next(x for x in report.splitlines() if x.startswith("File data lba:"))
    offset = int(line.split(",")[1]) * 2048
    Path(f"{out}.json").write_text(json.dumps({"area_offset": offset, "area_size": AREA}))
    return out


def extract_area(path: Path, work: Path) -> dict[str, Any]:
    """The area as the booted host reads it: the file /assisted/ignition.img of the ISO's filesystem."""
    target = work / "area.img"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(path), "-extract", "/assisted/ignition.img",
                    str(target)], check=True, capture_output=True, timeout=60)
    raw = target.read_bytes()
    assert len(raw) == AREA
    first, _, rest = raw.rstrip(b"\0").partition(b"\n")
    assert first.startswith(iso.MARKER)
    return json.loads(rest)  # type: ignore[no-any-return]


def download(svc: RefService, infra_env_id: str, work: Path, name: str) -> tuple[Path, dict[str, Any]]:
    presigned = svc.api("GET", f"/v2/infra-envs/{infra_env_id}/downloads/image-url")
    assert set(presigned) == {"url", "expires_at"}
    resp = requests.get(presigned["url"], timeout=60)
    assert resp.status_code == 200, resp.text
    out = work / name
    out.write_bytes(resp.content)
    assert int(resp.headers["content-length"]) == len(resp.content)
    return out, presigned


def test_each_infra_env_gets_the_one_iso_with_its_own_ignition(tmp_path: Path) -> None:
    built = small_iso(tmp_path)
    before = built.read_bytes()
    extra = ["--discovery-iso", str(built), "--agent-image", IMAGE, "--insecure-registry", "10.77.0.1:5000"]
    with start_service(tmp_path, extra=extra) as svc:
        cluster = svc.create_cluster()
        first = svc.create_infra_env(cluster["id"], ssh_authorized_key="ssh-ed25519 AAAAC3 lab@test",
                                     proxy={"http_proxy": "http://proxy:3128", "no_proxy": "example.com"})
        second = svc.create_infra_env(cluster["id"])
        path1, presigned = download(svc, first["id"], tmp_path, "one.iso")
        path2, _ = download(svc, second["id"], tmp_path, "two.iso")
        assert presigned["url"].startswith(f"{svc.url}/images/{first['id']}?arch=x86_64&type=full-iso")
        expires = time.mktime(time.strptime(presigned["expires_at"], "%Y-%m-%dT%H:%M:%S.000Z")) - time.timezone
        assert abs(expires - (time.time() + iso.URL_LIFETIME)) < 120
        ign = svc.api("GET", f"/v2/infra-envs/{first['id']}/downloads/files", params={"file_name": "discovery.ign"})
    assert built.read_bytes() == before, "the built ISO is never changed"
    meta = json.loads(Path(f"{built}.json").read_text())
    lo, hi = meta["area_offset"], meta["area_offset"] + AREA
    for path in (path1, path2):
        data = path.read_bytes()
        assert len(data) == len(before) and data[:lo] == before[:lo] and data[hi:] == before[hi:]
    one, two = extract_area(path1, tmp_path), extract_area(path2, tmp_path)
    assert one == ign and one["ignition"]["version"] == "3.1.0"
    unit = one["systemd"]["units"][0]
    assert unit["name"] == "agent.service" and unit["enabled"] is True
    assert f"--url {svc.url} --infra-env-id {first['id']} --agent-version {IMAGE} --insecure=false" in unit["contents"]
    assert "Environment=HTTP_PROXY=http://proxy:3128\n" in unit["contents"]
    assert "Environment=no_proxy=example.com\n" in unit["contents"]
    assert one["passwd"]["users"] == [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3 lab@test"]}]
    registries = one["storage"]["files"][0]
    assert registries["path"] == "/etc/containers/registries.conf.d/99-assisted-insecure.conf"
    assert second["id"] in two["systemd"]["units"][0]["contents"] and not two["passwd"]["users"]


def test_the_unit_is_the_stock_one() -> None:
    """The unit the ISO carries is systemd/discovery-agent.service (the real template) line for line."""
    stock = [x for x in (ROOT / "systemd" / "discovery-agent.service").read_text().splitlines()
             if not x.startswith("#")]
    placeholders = {k: "{{" + k + "}}" for k in ("SERVICE_URL", "INFRA_ENV_ID", "AGENT_IMAGE", "PULL_SECRET_TOKEN")}
    made = iso.agent_unit(service_url=placeholders["SERVICE_URL"], infra_env_id=placeholders["INFRA_ENV_ID"],
                          agent_image=placeholders["AGENT_IMAGE"], token=placeholders["PULL_SECRET_TOKEN"],
                          insecure=False)
    assert made.splitlines() == [x.replace("{{INSECURE}}", "false") for x in stock]


def test_token_auth_signs_the_url(tmp_path: Path) -> None:
    built = small_iso(tmp_path)
    extra = ["--discovery-iso", str(built), "--agent-image", IMAGE]
    with start_service(tmp_path, auth="token", extra=extra) as svc:
        ie = svc.create_infra_env()
        path, presigned = download(svc, ie["id"], tmp_path, "signed.iso")
        unit = extract_area(path, tmp_path)["systemd"]["units"][0]["contents"]
        assert f"Environment=PULL_SECRET_TOKEN={svc.token(ie['id'])}\n" in unit
        url = presigned["url"]
        assert "api_key=" in url
        bare = url.split("&api_key=")[0]
        assert requests.get(bare, timeout=30).status_code == 401
        assert requests.get(url[:-1] + ("0" if url[-1] != "0" else "1"), timeout=30).status_code == 401
        other = svc.create_infra_env()
        assert requests.get(url.replace(ie["id"], other["id"]), timeout=30).status_code == 401
        expired = f"{bare}&api_key={iso.sign('test-admin-token', ie['id'], 1000)}"
        resp = requests.get(expired, timeout=30)
        assert resp.status_code == 401 and "expired" in resp.text


def test_without_an_iso_or_an_image_the_answer_says_why(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        ie = svc.create_infra_env()
        url = svc.api("GET", f"/v2/infra-envs/{ie['id']}/downloads/image-url")["url"]
        resp = requests.get(url, timeout=30)
        assert resp.status_code == 404 and "--discovery-iso" in resp.text
    built = small_iso(tmp_path)
    with start_service(tmp_path, extra=["--discovery-iso", str(built)]) as svc:
        ie = svc.create_infra_env()
        url = svc.api("GET", f"/v2/infra-envs/{ie['id']}/downloads/image-url")["url"]
        resp = requests.get(url, timeout=30)
        assert resp.status_code == 409 and "--agent-image" in resp.text
        svc.api("GET", "/v2/infra-envs/6fde0f02-fb37-b620-d208-51bf93374c7d/downloads/image-url", expected=404)


def test_the_routes_are_the_real_services_paths() -> None:
    paths = {r.path for r in iso_routes.ROUTES}
    assert paths >= {"/api/assisted-install/v2/infra-envs/{infra_env_id}/downloads/image-url",
                     "/api/assisted-install/v2/infra-envs/{infra_env_id}/downloads/files",
                     "/images/{infra_env_id}"}

"""logs-gather: what goes into the archive, its bounds, and the upload the service sees (multipart upfile,
logs-progress around it)."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments, ServiceResponseError
from common.host import Host
from reference_service import spec
from steps import logs_gather
from steps.base import StepContext
from steps.logs_gather import LogsGatherStep
from tests.support.install_images import RecordingServer

IE = "6d9d4d5e-0a1b-4c2d-8e3f-000000000001"
HOST = "6d9d4d5e-0a1b-4c2d-8e3f-000000000002"
CLUSTER = "6d9d4d5e-0a1b-4c2d-8e3f-000000000003"
REQUEST = {"cluster_id": CLUSTER, "infra_env_id": IE, "host_id": HOST, "bootstrap": False, "installer_gather": True}


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    (tmp_path / "history.jsonl").write_text(json.dumps({"step_type": "inventory", "exit_code": 0}) + "\n")
    return tmp_path


def run_step(url: str, state: Path, request: dict[str, Any] = REQUEST) -> Any:
    step = LogsGatherStep()
    config = AgentConfig(url=url, infra_env_id=IE, host_id=HOST, token="tok", state_dir=str(state))
    ctx = StepContext(host=Host.at("/"), config=config)
    return step.run(step.parse_args([json.dumps(request)]), ctx)


def uploaded(server: RecordingServer) -> tuple[dict[str, Any], dict[str, bytes]]:
    (post,) = [r for r in server.requests if r["method"] == "POST"]
    headers: dict[str, str] = post["headers"]  # type: ignore[assignment]
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + post["body"])  # type: ignore[operator]
    (part,) = list(msg.iter_parts())
    assert part.get_param("name", header="content-disposition") == "upfile"
    assert part.get_filename() == "logs.tar.gz"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    return post, files


def test_collects_and_uploads_with_logs_progress(server: RecordingServer, state_dir: Path) -> None:
    assert spec.errors("logs_gather_cmd_request", REQUEST) == []
    result = run_step(server.url, state_dir)
    assert result.exit_code == 0 and result.output.startswith("Logs were sent\n")
    puts = [(r["path"], json.loads(r["body"])) for r in server.requests if r["method"] == "PUT"]  # type: ignore
    path = f"/api/assisted-install/v2/infra-envs/{IE}/hosts/{HOST}/logs-progress"
    assert puts == [(path, {"logs_state": "collecting"}), (path, {"logs_state": "completed"})]
    post, files = uploaded(server)
    url = urlsplit(str(post["path"]))
    assert url.path == f"/api/assisted-install/v2/clusters/{CLUSTER}/logs"
    assert parse_qs(url.query) == {"logs_type": ["host"], "infra_env_id": [IE], "host_id": [HOST]}
    assert post["headers"]["X-Secret-Key"] == "tok"
    assert b"/proc" in files["logs/mountinfo.txt"] or b" / " in files["logs/mountinfo.txt"]
    assert files["logs/step-history.jsonl"] == (state_dir / "history.jsonl").read_bytes()
    assert "logs/dmesg.log" in files
    inventory = json.loads(files["logs/inventory.json"])
    assert "error" in inventory or spec.errors("inventory", inventory) == []
    report = files["logs/collection-report.txt"].decode()
    assert "step-history.jsonl:" in report and "mountinfo.txt:" in report


def test_the_archive_is_bounded(server: RecordingServer, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_gather, "SOURCE_LIMIT", 64)
    monkeypatch.setattr(logs_gather, "TOTAL_LIMIT", 200)
    (state_dir / "history.jsonl").write_text("x" * 1000)
    run_step(server.url, state_dir)
    _, files = uploaded(server)
    payload = {name: data for name, data in files.items() if not name.endswith("collection-report.txt")}
    assert all(len(data) <= 64 for data in payload.values())
    assert sum(len(d) for d in payload.values()) <= 200
    report = files["logs/collection-report.txt"].decode()
    assert "cut to its last 64 of" in report and "reached its 200 byte limit" in report


def test_an_upload_refused_by_the_service_fails_the_step(server: RecordingServer, state_dir: Path) -> None:
    orig = server.httpd.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def refuse(handler: Any) -> None:
        handler._record()
        handler._reply(404, b'{"reason":"cluster not found"}')

    server.httpd.RequestHandlerClass.do_POST = refuse  # type: ignore[attr-defined]
    try:
        with pytest.raises(ServiceResponseError, match="cluster not found"):
            run_step(server.url, state_dir)
    finally:
        server.httpd.RequestHandlerClass.do_POST = orig  # type: ignore[attr-defined]
    states = [json.loads(r["body"])["logs_state"] for r in server.requests if r["method"] == "PUT"]  # type: ignore
    assert states == ["collecting"]


@pytest.mark.parametrize(("change", "message"), [
    ({"cluster_id": "c"}, "cluster_id must be a UUID"),
    ({"bootstrap": "no"}, "must be a boolean"),
    ({"installer_gather": None}, "missing required field 'installer_gather'"),
    ({"master_ips": "1.2.3.4"}, "must be a array"),
])
def test_bad_arguments(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidStepArguments, match=message):
        LogsGatherStep().parse_args([json.dumps({**REQUEST, **change})])

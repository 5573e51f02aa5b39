"""The swarm: simulated hosts that the real service takes for discovery hosts, through to a dry-run install."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest

from reference_service import spec
from swarm import machine as swarm_machine
from swarm.run import Options, Swarm
from tests.support.release_rules import release_stand_in
from tests.support.service import BIN, start_service


def test_simulated_hosts_are_distinct_and_their_inventories_valid() -> None:
    hosts = [swarm_machine.sim_host(i) for i in (0, 1, swarm_machine.PER_BLOCK, 9999)]
    assert len({h.host_id for h in hosts}) == len({h.mac for h in hosts}) == len({h.ip for h in hosts}) == 4
    assert hosts[0] == swarm_machine.sim_host(0)  # the same seed and index: the same host
    assert hosts[2].block != hosts[0].block
    for host in hosts:
        inv = swarm_machine.inventory(host)
        assert spec.errors("inventory", inv) == []
        assert inv["hostname"] == host.hostname
        assert host.address in [a for n in inv["interfaces"] for a in n.get("ipv4_addresses") or []]
    with pytest.raises(ValueError):
        swarm_machine.sim_host(swarm_machine.MAX_HOSTS)


def test_replies_validate_against_their_output_models() -> None:
    me, peer = swarm_machine.sim_host(0), swarm_machine.sim_host(1)
    peers = json.dumps([{"host_id": peer.host_id, "nics": [{"name": "eno8303", "mac": peer.mac,
                                                              "ip_addresses": [peer.ip]}]}])
    cases = {
        "connectivity-check": [peers],
        "free-network-addresses": [json.dumps([str(me.block)])],
        "ntp-synchronizer": [json.dumps({"ntp_source": ""})],
        "domain-resolution": [json.dumps({"domains": [{"domain_name": "api.x.example.com"}]})],
        "installation-disk-speed-check": [json.dumps({"path": "/dev/sda"}), "480.00"],
        "container-image-availability": [json.dumps({"images": ["quay.io/a/b:c"], "timeout": 960})],
    }
    for step_type, args in cases.items():
        code, output, _ = swarm_machine.reply_output(step_type, args, me, 2)
        assert code == 0
        assert spec.errors(spec.STEP_OUTPUT_MODELS[step_type], output) == [], step_type
    report = swarm_machine.reply_output("connectivity-check", [peers], me, 2)[1]
    assert report["remote_hosts"][0]["l2_connectivity"][0]["remote_mac"] == peer.mac
    free = swarm_machine.reply_output("free-network-addresses", cases["free-network-addresses"], me, 2)[1]
    assert me.ip not in free[0]["free_addresses"] and peer.ip not in free[0]["free_addresses"]
    assert swarm_machine.reply_output("no-such-step", [], me, 2)[0] == -1


def test_a_swarm_reaches_known_and_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six hosts on a token-authenticated service, every step issued (the swarm sends no packets)."""
    monkeypatch.setenv("DISABLED_STEPS", "")
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    with start_service(tmp_path, auth="token", extra=["--dry-run-install", "--os-image", str(image)]) as svc:
        out = tmp_path / "swarm.json"
        proc = subprocess.run(
            [str(BIN / "assisted-reference-service"), "swarm", "--url", svc.url, "--hosts", "6", "--interval", "0.5",
             "--duration", "90", "--install", "--admin-token", "test-admin-token", "--json", str(out)],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(out.read_text())
        assert result["statuses"] == {"installed": 6}
        assert result["seconds"] < 80  # it ends once installed
        endpoints = result["endpoints"]
        assert {"register", "poll", "reply", "progress"} <= set(endpoints)
        assert 0 < endpoints["poll-cc"]["count"] < endpoints["poll"]["count"]  # a subset: those listing peers
        assert all(e["errors"] == 0 for e in endpoints.values()), result["errors_sample"]
        assert result["service"]["rss_max_mib"] > 0
        replies = svc.replies(svc.hosts(svc.call("GET", "/api/assisted-install/v2/infra-envs")[0]["id"])[0]["id"])
        assert {"inventory", "connectivity-check", "free-network-addresses", "write-image", "reboot"} <= {
            r["step_type"] for r in replies}
        assert "6 hosts (6 registered)" in proc.stdout and "p99" in proc.stdout


def test_a_host_polls_on_its_interval_while_its_replies_are_slow(tmp_path: Path) -> None:
    """As the Go agent: the instructions are answered in the background and the next poll comes an interval
    after the last one's answer. A swarm that slept after its replies made hosts poll in cohorts (the hosts
    one group commit acknowledged); here every reply takes 3 s, and the host still polls every second."""
    with start_service(tmp_path) as svc:
        svc.call("POST", "/api/reference/faults", expected=201, json={
            "method": "POST", "path": r"/instructions$", "status": 503, "delay": 3, "count": 1000})
        out = tmp_path / "swarm.json"
        proc = subprocess.run(
            [str(BIN / "assisted-reference-service"), "swarm", "--url", svc.url, "--hosts", "1", "--interval", "1",
             "--duration", "8", "--json", str(out)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(out.read_text())
    endpoints = result["endpoints"]
    assert endpoints["reply"]["errors"] >= 1 and endpoints["reply"]["p50"] >= 3  # the replies were slow
    assert endpoints["poll"]["count"] >= 5, endpoints  # sleeping after them: 2 polls in 8 s
    assert result["seconds"] < 8 + 1 + 3 + 2  # the run ends with the reply under way, not with every one


def _setup(url: str) -> Swarm:
    async def run() -> Swarm:
        async with aiohttp.ClientSession() as session:
            swarm = Swarm(Options(url=url, hosts=1), session)
            await swarm.setup()
            return swarm

    return asyncio.run(run())


@pytest.mark.parametrize(("release", "self_version", "tries"), [
    ((2, 20, 0), "quay.io/edge-infrastructure/assisted-service:v2.20.0", 1),  # says its release: singular VIPs
    ((2, 20, 0), "quay.io/app-sre/assisted-service:5f2a1b3", 2),  # says none: lists, 400, then singular
    ((2, 35, 0), "quay.io/edge-infrastructure/assisted-service:v2.35.0", 1),  # lists only
])
def test_the_swarm_creates_its_cluster_as_the_services_release_takes_it(
        release: tuple[int, ...], self_version: str, tries: int) -> None:
    """Against a stand-in answering as that release of the real service does (its rules, ported as facts in
    tests/support/release_rules.py; the real service cannot run here)."""
    with release_stand_in(release, self_version, ["4.11", "4.12", "4.13"]) as server:
        swarm = _setup(f"http://127.0.0.1:{server.server_address[1]}")
    clusters = [body for path, body in server.posted if path.endswith("/v2/clusters")]
    assert len(clusters) == tries and swarm.cluster_id and swarm.infra_env_id
    created = clusters[-1]
    assert created["openshift_version"] == "4.13"  # the service's default, not one it does not list
    assert ("api_vips" in created) == (release >= (2, 29)) and ("api_vip" in created) == (release < (2, 29))

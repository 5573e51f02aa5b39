"""``agent inventory`` and ``agent record-host`` as a person runs them, and the netlink reader on real links."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_service import spec
from tests.support.paths import FIXTURES

AGENT = str(Path(sys.executable).parent / "agent")
FIXTURES = FIXTURES


def agent(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, AGENT, *args], capture_output=True, text=True, timeout=60, check=False)


def test_json_is_the_step_output_and_valid() -> None:
    out = agent("inventory", "--root", str(FIXTURES / "cloud-ec2"))
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert out.stdout.startswith('{"bmc_address":"0.0.0.0",')  # compact, keys sorted, as the Go agent
    assert inv == json.loads((FIXTURES / "cloud-ec2.expected.json").read_text())
    assert spec.errors("inventory", inv) == []


def test_table_tells_a_person_why_disks_are_not_eligible() -> None:
    out = agent("inventory", "--format", "table", "--root", str(FIXTURES / "baremetal-server"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    lines = text.splitlines()
    assert "16 x Intel(R) Xeon(R) Silver 4309Y CPU @ 2.80GHz" in text
    assert "Memory    128.0 GiB physical (DMI, dmidecode), 125.4 GiB usable (/proc/meminfo)" in lines
    assert "sizes in IEC units (1 GiB = 1024^3 bytes)" in text
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("sdb "))
    assert lines[at].split() == ["sdb", "HDD", "2.2", "TiB", "NO"]
    assert lines[at + 1].strip() == "/dev/disk/by-id/wwn-0x5000c500d4b6e1f3"
    assert lines[at + 2].strip() == "- Disk has partition 'sdb1' mounted on '/var/mnt/data'"
    sde = "\n".join(lines[next(i for i, line in enumerate(lines) if line.strip().startswith("sde ")):])
    assert "- Disk is too small (disk only has 31 GB, but 100 GB are required)" in sde
    sda = next(line for line in lines if line.strip().startswith("sda "))
    assert sda.split() == ["sda", "SSD", "447.1", "GiB", "yes"]
    assert "  eno8303  physical  b4:96:91:a1:30:e8  1500   1000 Mb/s  yes      10.1.0.21/24" in lines
    assert "Dell Inc. PowerEdge R650, serial 7XJ2HQ3, bare metal (DMI)" in text
    assert "BMC       10.1.100.21 / 2001:db8:100::21 (ipmitool)" in lines


@pytest.mark.parametrize("host", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_table_fits_80_columns_and_names_its_sources(host: str) -> None:
    out = agent("inventory", "--format", "table", "--root", str(FIXTURES / host))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "ghw" not in out.stdout and " GB " not in out.stdout.replace("GB are required", "")
    assert "usable (/proc/meminfo)" in " ".join(out.stdout.split())  # wrapped or not
    inv = json.loads(agent("inventory", "--root", str(FIXTURES / host)).stdout)
    has_bmc = inv.get("bmc_address", "0.0.0.0") != "0.0.0.0" or inv.get("bmc_v6address", "::/0") != "::/0"
    assert any(line.startswith("BMC ") for line in lines) == has_bmc


def test_table_leaves_out_a_bmc_that_is_not_there() -> None:
    out = agent("inventory", "--format", "table", "--root", str(FIXTURES / "cloud-ec2"))
    assert "BMC" not in out.stdout and "0.0.0.0" not in out.stdout


def test_record_host_then_inventory_of_the_recording(tmp_path: Path) -> None:
    dest = tmp_path / "rec"
    out = agent("record-host", str(dest))
    assert out.returncode == 0, out.stderr
    live = json.loads(agent("inventory").stdout)
    replayed = json.loads(agent("inventory", "--root", str(dest)).stdout)
    assert replayed == live
    again = agent("record-host", str(dest))
    assert again.returncode == 2 and "not an empty directory" in again.stderr


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with a veth pair, a bridge, an ifb, both families, a multipath route and a second table."""
    name = f"ainv-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            "link set lo up",
            "link add ainv-va type veth peer name ainv-vb",
            "link add ainv-br type bridge",
            "link add ainv-ifb type ifb",
            "link set ainv-vb master ainv-br",
            "addr add 10.77.0.2/24 dev ainv-va",
            "addr add 10.78.0.1/24 dev ainv-br",
            "-6 addr add 2001:db8:77::2/128 dev ainv-va nodad",
            "link set ainv-va up",
            "link set ainv-vb up",
            "link set ainv-br up",
            "-6 route add 2001:db8:77::/64 dev ainv-va proto ra metric 100",
            "route add default via 10.77.0.1 dev ainv-va metric 50",
            "route add 172.20.0.0/16 nexthop via 10.77.0.1 dev ainv-va nexthop via 10.77.0.3 dev ainv-va",
            "route add 192.0.2.0/24 via 10.77.0.9 dev ainv-va table 100",
        ):
            subprocess.run(["ip", "-n", name, *cmd.split()], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.netns
def test_interfaces_and_routes_from_real_netlink(netns: str) -> None:
    out = agent("inventory", netns=netns)
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert spec.errors("inventory", inv) == []
    nics = {i["name"]: i for i in inv["interfaces"]}
    assert set(nics) == {"lo", "ainv-va", "ainv-vb", "ainv-br", "ainv-ifb"}
    assert {n: i["type"] for n, i in nics.items()} == {
        "lo": "device",
        "ainv-va": "veth",
        "ainv-vb": "veth",
        "ainv-br": "bridge",
        "ainv-ifb": "ifb",
    }
    va = nics["ainv-va"]
    assert va["ipv4_addresses"] == ["10.77.0.2/24"]
    assert va["ipv6_addresses"] == ["2001:db8:77::2/64"]  # the /128 takes the prefix of the RA route
    assert va["flags"][:2] == ["up", "broadcast"] and "multicast" in va["flags"]
    assert not Path("/sys/class/net/ainv-va").exists()  # the link exists only in the namespace
    assert nics["ainv-br"]["ipv4_addresses"] == ["10.78.0.1/24"]
    assert nics["ainv-ifb"]["flags"] == ["broadcast"]
    routes = inv["routes"]
    assert {
        "destination": "0.0.0.0",
        "family": 2,
        "gateway": "10.77.0.1",
        "interface": "ainv-va",
        "metric": 50,
    } in routes
    assert {"destination": "172.20.0.0", "family": 2, "gateway": "10.77.0.1", "interface": "ainv-va"} in routes
    assert {"destination": "2001:db8:77::", "family": 10, "interface": "ainv-va", "metric": 100} in routes
    assert not any(r["destination"] == "192.0.2.0" for r in routes)  # table 100 is not the main table


def test_step_through_the_real_runner_replies_like_the_go_agent() -> None:
    bad = agent("step", "--wire", "inventory", "not-a-uuid")
    assert json.loads(bad.stdout) == {
        "step_id": "inventory-cli",
        "step_type": "inventory",
        "exit_code": -1,
        "error": "inventory cmd accepts only 1 params in args and it should be UUID, given args [not-a-uuid]",
    }
    args = json.dumps(["2b0e5a8e-4f7c-4a3e-9d1b-6c8f0e2a7b31", "--output-max-size=1048576"])
    good = agent("step", "--wire", "--host-root", str(FIXTURES / "kvm-vm"), "inventory", args)
    reply = json.loads(good.stdout)
    assert "exit_code" not in reply and "error" not in reply  # omitempty, as the Go agent
    assert json.loads(reply["output"]) == json.loads((FIXTURES / "kvm-vm.expected.json").read_text())
    assert spec.errors("step-reply", reply) == []

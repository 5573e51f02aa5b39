"""The inventory step and its collectors: recorded machines, this machine, the rules, isolation of collectors."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.host import Host
from inventory import collect, cpu, disks, memory
from inventory.collect import Collector, go_shape, inventory, truncate
from inventory.disks import (
    REASON_IBFT_MISSING,
    REASON_ISCSI_NO_SESSION,
    REASON_ISCSI_NO_TARGET,
    REASON_ISCSI_NOT_IN_IBFT,
    REASON_ISCSI_NOT_RUNNING,
    REASON_ISCSI_STATE_UNREADABLE,
    REASON_ISO,
    REASON_LVM,
    REASON_UNKNOWN_CONTROLLER,
    DiskFacts,
    IscsiFacts,
    Partition,
    disk_id,
    drive_type,
    eligibility,
    iscsi_facts,
)
from inventory.hostname import replace_localhost
from inventory.options import Options
from reference_service import spec
from steps.base import StepContext
from steps.inventory import InventoryStep
from tests.support.paths import FIXTURES

FIXTURES = FIXTURES
MACHINES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
HOST_ID = "2b0e5a8e-4f7c-4a3e-9d1b-6c8f0e2a7b31"


def run_step(root: str | Path, args: list[str] | None = None) -> Any:
    step = InventoryStep()
    params = step.parse_args(args or [HOST_ID])
    ctx = StepContext(host=Host.at(root), config=AgentConfig(host_root=str(root)))
    result = step.run(params, ctx)
    assert result.exit_code == 0
    return json.loads(result.encoded_output())


# -- recorded machines -----------------------------------------------------------------------------------------
def test_every_kind_of_machine_is_recorded() -> None:
    assert set(MACHINES) >= {"kvm-vm", "baremetal-server", "cloud-ec2", "bonds-vlans-bridges", "this-vm-no-dmi"}


@pytest.mark.parametrize("machine", MACHINES)
def test_fixture_inventory_matches_expected(machine: str) -> None:
    got = run_step(FIXTURES / machine)
    expected = json.loads((FIXTURES / f"{machine}.expected.json").read_text())
    assert got == expected
    assert spec.errors("inventory", got) == []


def test_kvm_vm_details() -> None:
    inv = run_step(FIXTURES / "kvm-vm")
    # "localhost" is replaced by the MAC of the addressed physical NIC (Go agent PR #449)
    assert inv["hostname"] == "52-54-00-6b-3c-58"
    assert inv["memory"]["physical_bytes_method"] == "dmidecode"
    assert inv["boot"] == {
        "command_line": inv["boot"]["command_line"],
        "current_boot_mode": "uefi",
        "device_type": "ephemeral",
        "secure_boot_state": "Disabled",
    }
    nic = next(i for i in inv["interfaces"] if i["name"] == "enp1s0")
    assert nic["ipv6_addresses"] == ["fd00:122::32/64"]  # /128 widened to the RA route's prefix
    assert nic["speed_mbps"] == -1
    sr0 = next(d for d in inv["disks"] if d["name"] == "sr0")
    assert sr0["drive_type"] == "ODD" and sr0["is_installation_media"] is True
    vda = next(d for d in inv["disks"] if d["name"] == "vda")
    assert vda["id"] == "/dev/disk/by-path/pci-0000:04:00.0" and "by_id" not in vda  # virtio-* is no by-id
    assert inv["gpus"] == [
        {
            "address": "0000:00:01.0",
            "device_id": "1050",
            "name": "Virtio 1.0 GPU",
            "vendor": "Red Hat, Inc.",
            "vendor_id": "1af4",
        }
    ]
    assert inv["tpm_version"] == "2.0"


def test_baremetal_details() -> None:
    inv = run_step(FIXTURES / "baremetal-server")
    disks = {d["name"]: d for d in inv["disks"]}
    assert {n: d["drive_type"] for n, d in disks.items()} == {
        "dm-0": "Multipath",
        "nvme0n1": "SSD",
        "sda": "SSD",
        "sdb": "HDD",
        "sdc": "FC",
        "sdd": "FC",
        "sde": "SSD",
    }
    assert disks["nvme0n1"]["id"] == "/dev/disk/by-id/nvme-eui.01000000000000005cd2e4e3c21b5451"
    assert disks["sda"]["id"] == disks["sda"]["by_id"] == "/dev/disk/by-id/wwn-0x5002538f4274a1b2"
    assert disks["sdc"]["holders"] == "dm-0"
    assert disks["sdb"]["installation_eligibility"] == {
        "not_eligible_reasons": ["Disk has partition 'sdb1' mounted on '/var/mnt/data'"]
    }
    assert disks["sde"]["removable"] is True and disks["sde"]["is_installation_media"] is True
    assert disks["sde"]["installation_eligibility"]["not_eligible_reasons"] == [REASON_ISO]
    assert inv["memory"] == {
        "physical_bytes": 128 << 30,
        "physical_bytes_method": "dmidecode",
        "usable_bytes": 131447292 * 1024,
    }
    assert inv["bmc_address"] == "10.1.100.21" and inv["bmc_v6address"] == "2001:db8:100::21"
    assert inv["boot"]["secure_boot_state"] == "Enabled" and inv["boot"]["pxe_interface"] == "01-b4-96-91-a1-30-e8"
    assert inv["cpu"]["frequency"] == 3600.0 and inv["cpu"]["count"] == 16
    assert [g["name"] for g in inv["gpus"]] == ["Integrated Matrox G200eW3 Graphics Controller", "GA107GL [A2 / A16]"]
    assert inv["system_vendor"] == {
        "manufacturer": "Dell Inc.",
        "product_name": "PowerEdge R650",
        "serial_number": "7XJ2HQ3",
    }


def test_cloud_without_dmi_memory_falls_back_to_meminfo() -> None:
    inv = run_step(FIXTURES / "cloud-ec2")
    assert inv["memory"] == {
        "physical_bytes": 15896040 * 1024,
        "physical_bytes_method": "meminfo",
        "usable_bytes": 15896040 * 1024,
    }
    assert inv["system_vendor"]["virtual"] is True
    assert [d["id"] for d in inv["disks"]] == [
        "/dev/disk/by-path/pci-0000:00:04.0-nvme-1",
        "/dev/disk/by-path/pci-0000:00:1f.0-nvme-1",
    ]


def test_bonds_vlans_bridges() -> None:
    inv = run_step(FIXTURES / "bonds-vlans-bridges")
    nics = {i["name"]: i for i in inv["interfaces"]}
    assert {n: i["type"] for n, i in nics.items()} == {
        "lo": "device",
        "ens1f0": "physical",
        "ens1f1": "physical",
        "bond0": "bond",
        "br-ex": "bridge",
        "bond0.200": "vlan",
        "dummy0": "dummy",
        "tun0": "tuntap",
    }
    # bond members report their permanent MACs, not the bond's
    assert nics["ens1f1"]["mac_address"] == "0c:42:a1:5e:7a:11"
    assert nics["tun0"]["flags"] == ["up", "pointtopoint", "multicast", "running"]
    routes = inv["routes"]
    assert {
        "destination": "172.16.0.0",
        "family": 2,
        "gateway": "192.168.200.1",
        "interface": "bond0.200",
        "metric": 20,
    } in routes  # first hop of a multipath route
    assert not any(r.get("gateway") == "192.168.200.254" for r in routes)  # table 100 is not the main table
    assert not any(r["destination"] == "203.0.113.0" for r in routes)  # unreachable: no interface
    disks = {d["name"]: d for d in inv["disks"]}
    assert disks["md127"]["drive_type"] == "RAID" and disks["sdb"]["holders"] == "md127"


# -- this machine ------------------------------------------------------------------------------------------------
def test_live_inventory_validates_against_the_spec() -> None:
    inv = run_step("/")
    assert spec.errors("inventory", inv) == []
    assert inv["cpu"]["count"] == os.cpu_count()
    assert any(i["name"] == "lo" and "127.0.0.1/8" in i["ipv4_addresses"] for i in inv["interfaces"])
    assert inv["memory"]["usable_bytes"] == memory.meminfo_total(Host())
    assert inv["disks"], "this machine has a disk"


# -- rules, table-driven -------------------------------------------------------------------------------------------
IQN = "iqn.2024-01.com.example:boot-disk"


@pytest.mark.parametrize(
    ("facts", "reasons", "media"),
    [
        (DiskFacts("sda", "HDD"), [], False),
        (DiskFacts("nvme0n1", "SSD"), [], False),
        (DiskFacts("vda", "HDD"), [], False),
        (DiskFacts("xvda", "SSD"), [], False),  # ghw: xvd* is a SCSI controller
        (DiskFacts("nbd0", "SSD"), [REASON_UNKNOWN_CONTROLLER], False),
        (DiskFacts("rbd0", "HDD"), [REASON_UNKNOWN_CONTROLLER], False),
        (DiskFacts("dm-0", "Multipath"), [], False),
        (DiskFacts("dm-1", "LVM"), [REASON_LVM], False),
        (DiskFacts("md127", "RAID"), [], False),
        (DiskFacts("dasda", "ECKD"), [], False),
        (DiskFacts("sr0", "ODD"), [], True),
        (DiskFacts("sdb", "iSCSI", iscsi=IscsiFacts("running", "session1", IQN, [IQN])), [], False),
        (DiskFacts("sdb", "iSCSI", iscsi=IscsiFacts("offline", "session1", IQN, [IQN])), [REASON_ISCSI_NOT_RUNNING],
         False),
        (DiskFacts("sdb", "iSCSI"), [REASON_ISCSI_STATE_UNREADABLE], False),
        (DiskFacts("sdb", "iSCSI", iscsi=IscsiFacts("running")), [REASON_ISCSI_NO_SESSION], False),
        (DiskFacts("sdb", "iSCSI", iscsi=IscsiFacts("running", "session1")), [REASON_ISCSI_NO_TARGET], False),
        (DiskFacts("sdb", "iSCSI", iscsi=IscsiFacts("running", "session1", IQN)), [REASON_IBFT_MISSING], False),
        (DiskFacts("sdb", "iSCSI", iscsi=IscsiFacts("running", "session1", IQN, ["iqn.2024-01.com.x:other"])),
         [REASON_ISCSI_NOT_IN_IBFT], False),
        (DiskFacts("sdc", "SSD", [Partition("sdc1", "/run/media/iso")]), [REASON_ISO], True),
        (DiskFacts("sr0", "ODD", [Partition("sr0p1", "/run/media/iso")]), [REASON_ISO], True),
        (DiskFacts("sdc", "SSD", [Partition("sdc1", "/a-iso"), Partition("sdc2", "/b-iso")]), [REASON_ISO], True),
        (
            DiskFacts("sdc", "SSD", [Partition("sdc1", "/var/mnt/data"), Partition("sdc2", "/boot")]),
            ["Disk has partition 'sdc1' mounted on '/var/mnt/data'", "Disk has partition 'sdc2' mounted on '/boot'"],
            False,
        ),
        # a disk of an appliance image (partition label "agent...") skips the partition checks
        (
            DiskFacts("sdc", "SSD", [Partition("sdc1", "/run/media/iso"), Partition("sdc2", "/x", "agentdata")]),
            [],
            False,
        ),
        (DiskFacts("sdc", "SSD", [Partition("sdc1", "")]), [], False),
    ],
)
def test_eligibility_rules(facts: DiskFacts, reasons: list[str], media: bool) -> None:
    assert eligibility(facts) == (reasons, media)


def _iscsi_tree(root: Path, *, ibft: list[str] | None, state: str = "running") -> None:
    """A sysfs tree of an iSCSI disk as the kernel lays it out: the LUN under its session under its host."""
    lun = root / "sys/devices/platform/host3/session1/target3:0:0/3:0:0:0"
    (lun / "block/sdb").mkdir(parents=True)
    (lun / "state").write_text(state + "\n")
    (lun / "block/sdb/device").symlink_to("../../../3:0:0:0")
    (root / "sys/block").mkdir(parents=True)
    (root / "sys/block/sdb").symlink_to("../devices/platform/host3/session1/target3:0:0/3:0:0:0/block/sdb")
    (root / "sys/class/iscsi_session/session1").mkdir(parents=True)
    (root / "sys/class/iscsi_session/session1/targetname").write_text(IQN + "\n")
    for i, name in enumerate(ibft or []):
        (root / f"sys/firmware/ibft/target{i}").mkdir(parents=True)
        (root / f"sys/firmware/ibft/target{i}/target-name").write_text(name + "\n")
    if ibft == []:
        (root / "sys/firmware/ibft").mkdir(parents=True)


@pytest.mark.parametrize(
    ("ibft", "state", "reasons"),
    [
        ([IQN], "running", []),
        (["iqn.2024-01.com.example:other", IQN], "running", []),
        (["iqn.2024-01.com.example:other"], "running", [REASON_ISCSI_NOT_IN_IBFT]),
        ([], "running", [REASON_ISCSI_NOT_IN_IBFT]),
        (None, "running", [REASON_IBFT_MISSING]),
        ([IQN], "blocked", [REASON_ISCSI_NOT_RUNNING]),
    ],
)
def test_iscsi_disk_is_eligible_only_when_the_firmware_can_boot_it(
    tmp_path: Path, ibft: list[str] | None, state: str, reasons: list[str]
) -> None:
    _iscsi_tree(tmp_path, ibft=ibft, state=state)
    facts = iscsi_facts(Host.at(tmp_path), "/sys/block/sdb")
    assert (facts.state, facts.session, facts.target) == (state, "session1", IQN)
    assert eligibility(DiskFacts("sdb", "iSCSI", iscsi=facts)) == (reasons, False)


@pytest.mark.parametrize(
    ("by_id", "by_path", "path", "expected"),
    [
        (
            "/dev/disk/by-id/wwn-0x5000c500d4b6e1f3",
            "/dev/disk/by-path/pci-0000:17:00.0-sas-phy0-lun-0",
            "/dev/sdb",
            "/dev/disk/by-id/wwn-0x5000c500d4b6e1f3",
        ),
        ("", "/dev/disk/by-path/pci-0000:04:00.0", "/dev/vda", "/dev/disk/by-path/pci-0000:04:00.0"),
        ("", "", "/dev/vda", "/dev/vda"),
    ],
)
def test_disk_id_rule(by_id: str, by_path: str, path: str, expected: str) -> None:
    assert disk_id(by_id, by_path, path) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "sda", "rotational": True}, "HDD"),
        ({"name": "sda", "rotational": False}, "SSD"),
        ({"name": "sr0", "rotational": True}, "ODD"),
        ({"name": "fd0", "rotational": True}, "FDD"),
        ({"name": "xvda", "rotational": True}, "HDD"),
        ({"name": "rbd0", "rotational": True}, "Unknown"),  # ghw has no default type for this name
        ({"name": "rbd0", "rotational": False}, "SSD"),
        ({"name": "md0", "rotational": False}, "RAID"),
        ({"name": "dm-0", "rotational": False, "dm_uuid": "mpath-3600a"}, "Multipath"),
        ({"name": "dm-1", "rotational": False, "dm_uuid": "LVM-abc"}, "LVM"),
        (
            {"name": "sdb", "rotational": False, "bus_path": "ip-192.0.2.9:3260-iscsi-iqn.2024-01.com.x:t-lun-0"},
            "iSCSI",
        ),
        ({"name": "sdc", "rotational": True, "bus_path": "pci-0000:3b:00.0-fc-0x500a0981-lun-1"}, "FC"),
        ({"name": "sdc", "rotational": True, "bus_path": "fc-0x500a0981-lun-1"}, "FC"),
        ({"name": "dasda", "rotational": False, "dasd_discipline": "ECKD"}, "ECKD"),
        ({"name": "dasda", "rotational": False, "dasd_discipline": "ECKD", "dasd_ese": True}, "ECKD (ESE)"),
        ({"name": "dasdb", "rotational": False, "dasd_discipline": "FBA"}, "FBA"),
        # precedence: the bus path wins over the kernel name
        ({"name": "dm-2", "rotational": False, "bus_path": "ip-x-iscsi-y", "dm_uuid": "mpath-1"}, "iSCSI"),
    ],
)
def test_drive_type_precedence(kwargs: dict[str, Any], expected: str) -> None:
    assert drive_type(**kwargs) == expected


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("master-0.example.com", "master-0.example.com"),
        ("localhost", "52-54-00-aa-bb-cc"),
        ("localhost.localdomain", "52-54-00-aa-bb-cc"),
        ("localhost6", "52-54-00-aa-bb-cc"),
    ],
)
def test_localhost_is_replaced_by_a_mac(hostname: str, expected: str) -> None:
    nics = [
        {"name": "bond0", "type": "bond", "mac_address": "02:00:00:00:00:01", "ipv4_addresses": ["10.0.0.2/24"]},
        {"name": "eth1", "type": "physical", "mac_address": "52:54:00:AA:BB:CC", "ipv4_addresses": ["10.0.0.3/24"]},
        {
            "name": "eth0",
            "type": "physical",
            "mac_address": "52:54:00:00:00:01",
            "ipv4_addresses": [],
            "ipv6_addresses": ["fe80::1/64"],
        },  # link-local only: not used
    ]
    assert replace_localhost(hostname, nics) == expected


def test_dmidecode_sizes_are_summed() -> None:
    out = "\tSize: 16 GB\n\tSize: No Module Installed\n\tSize: 8192 MB\n\tVolatile Size: 16 GB\n\tSize: 512 kB\n"
    assert memory.dmidecode_bytes(out) == (16 << 30) + (8192 << 20) + (512 << 10)


def test_cpu_architecture_without_proc_arch(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\nCPU architecture: 8\n\n"
        "processor\t: 1\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\nCPU architecture: 8\n"
    )
    host = Host.at(tmp_path)
    got = cpu.collect(host, Options())["cpu"]
    assert got == {"architecture": "aarch64", "count": 2, "flags": ["fp", "asimd", "evtstrm"], "model_name": ""}


def test_by_id_of_a_disk_with_several_links_is_the_go_agents(tmp_path: Path) -> None:
    # Go maps every wwn-*/nvme-eui* link to its target in directory order: the last name wins.
    (tmp_path / "sys" / "block" / "nvme0n1").mkdir(parents=True)
    (tmp_path / "sys" / "block" / "nvme0n1" / "size").write_text("2000000\n")
    (tmp_path / "dev" / "disk" / "by-id").mkdir(parents=True)
    (tmp_path / "dev" / "nvme0n1").write_text("")
    for link in ("nvme-eui.0025388b71b2d1a5", "wwn-eui.0025388b71b2d1a5", "nvme-Samsung_SSD_970_S4EWNX0R"):
        os.symlink("../../nvme0n1", tmp_path / "dev" / "disk" / "by-id" / link)
    (disk,) = disks.collect(Host.at(tmp_path), Options())["disks"]
    assert disk["by_id"] == disk["id"] == "/dev/disk/by-id/wwn-eui.0025388b71b2d1a5"


def test_disk_min_size_leaves_small_disks_out() -> None:
    inv = run_step(FIXTURES / "cloud-ec2", [HOST_ID, "--disk-min-size=100000000000"])
    assert [d["name"] for d in inv["disks"]] == ["nvme0n1"]


@pytest.mark.parametrize("max_size", [5500, 4500, 1500])
def test_output_max_size_truncates_and_says_so(max_size: int) -> None:
    full = run_step(FIXTURES / "baremetal-server")
    inv = run_step(FIXTURES / "baremetal-server", [HOST_ID, f"--output-max-size={max_size}"])
    assert len(json.dumps(full, separators=(",", ":"))) > 5500
    assert spec.errors("inventory", inv) == []
    assert inv["truncation"]["reasons"]
    assert list(inv) == sorted(inv)  # keys in Go's struct order, truncated or not
    if inv["truncation"]["type"] == "partial":
        assert len(json.dumps(inv, separators=(",", ":"))) <= max_size
        assert inv["memory"] == full["memory"]
    else:
        assert inv["disks"] == [] and inv["cpu"]["model_name"] == full["cpu"]["model_name"]


def test_truncate_leaves_a_small_inventory_alone() -> None:
    inv = {"hostname": "a"}
    assert truncate(inv, 100) is inv


def test_go_shape_omits_empty_scalars_but_keeps_arrays() -> None:
    shaped = go_shape(
        {
            "b": "",
            "a": 0,
            "flags": None,
            "disks": [
                {
                    "installation_eligibility": {"eligible": False, "not_eligible_reasons": []},
                    "speed_mbps": -1,
                    "bootable": False,
                }
            ],
        }
    )
    assert shaped == {
        "disks": [{"installation_eligibility": {"not_eligible_reasons": None}, "speed_mbps": -1}],
        "flags": [],
    }
    assert list(shaped) == sorted(shaped)


# -- isolation of collectors ----------------------------------------------------------------------------------------
def test_a_collector_that_raises_or_hangs_leaves_only_its_part_out(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def broken(host: Host, options: Options) -> dict[str, Any]:
        raise OSError("disk controller on fire")

    def hung(host: Host, options: Options) -> dict[str, Any]:
        release.wait(30)
        return {"bmc_address": "10.0.0.1"}

    collectors = [
        *(c for c in collect.COLLECTORS if c.name not in ("disks", "bmc")),
        Collector("disks", broken, 5),
        Collector("bmc", hung, 0.3),
    ]
    monkeypatch.setattr(collect, "COLLECTORS", tuple(collectors))
    try:
        inv = run_step(FIXTURES / "baremetal-server")
        _, problems = inventory(Host.at(FIXTURES / "baremetal-server"), collectors=collectors[-2:])
    finally:
        release.set()
    assert inv["disks"] == []
    # given up at its budget: had it been waited for, it would have returned its address
    assert "bmc_address" not in inv and "bmc_v6address" not in inv
    assert inv["cpu"]["count"] == 16 and inv["hostname"] == "r650-node1.lab.example.com"
    assert spec.errors("inventory", inv) == []
    assert problems[0] == "disks: OSError: disk controller on fire"
    assert problems[1].startswith("bmc: did not finish within 0.3s")

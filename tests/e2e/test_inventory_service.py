"""The reference service's hardware area: stored inventories, the hardware validations, the hosts page."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from rules import hardware
from rules.disk_reasons import service_disk_reasons
from rules.disks import eligible_disks, store_inventory
from rules.documents import HostView
from rules.registry import Rulebook
from rules.requirements import bytes_to_string, humanize_bytes
from tests.support.paths import FIXTURES
from tests.support.service import start_agent, start_service

RULES = Rulebook.of()  # every area's hooks, as the service's
VALIDATIONS = RULES.validations

FIXTURES = FIXTURES
HOST_ID = "2b0e5a8e-4f7c-4a3e-9d1b-6c8f0e2a7b31"
CLUSTER = {"id": "c1", "openshift_version": "4.16", "control_plane_count": 3}


def fixture_inventory(machine: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{machine}.expected.json").read_text())  # type: ignore[no-any-return]


def view_of(
    inventory: dict[str, Any] | None,
    *,
    role: str = "auto-assign",
    cluster: dict[str, Any] | None = None,
    others: list[dict[str, Any]] | None = None,
    **host: Any,
) -> HostView:
    doc = {"id": HOST_ID, "role": role, **host}
    if inventory is not None:
        doc["inventory"] = json.dumps(inventory)
    return HostView(host=doc, infra_env={"id": "ie"}, cluster=cluster, hosts=[doc, *(others or [])])


def outcome(vid: str, view: HostView) -> tuple[str, str] | None:
    return VALIDATIONS[vid].func(view)


# -- formatting ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (9, "9 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1031798784, "1.0 GB"),
        (108984320, "109 MB"),
        (120 * 10**9, "120 GB"),
        (30752000000, "31 GB"),
        (9_950_000_000, "10 GB"),
        (1600321314816, "1.6 TB"),
    ],
)
def test_humanize_bytes_as_go_humanize(n: int, text: str) -> None:
    assert humanize_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (8192 << 20, "8.00 GiB"),
        (15896040 * 1024, "15.16 GiB"),
        (512 << 20, "512 MiB"),
        (2048, "2 KiB"),
        (5, "5 bytes"),
    ],
)
def test_bytes_to_string_as_the_service(n: int, text: str) -> None:
    assert bytes_to_string(n) == text


# -- disks -------------------------------------------------------------------------------------------------------
def _disk(**kw: Any) -> dict[str, Any]:
    return {"name": "sda", "drive_type": "SSD", "size_bytes": 480 * 10**9, **kw}


@pytest.mark.parametrize(
    ("disk", "role", "cluster", "reasons"),
    [
        (_disk(), "worker", CLUSTER, []),
        (
            _disk(size_bytes=30752000000),
            "worker",
            CLUSTER,
            ["Disk is too small (disk only has 31 GB, but 100 GB are required)"],
        ),
        (_disk(size_bytes=60 * 10**9), "arbiter", CLUSTER, []),
        (
            _disk(drive_type="ODD", size_bytes=1031798784),
            "master",
            CLUSTER,
            [
                "Disk is too small (disk only has 1.0 GB, but 100 GB are required)",
                "Drive type is ODD, it must be one of HDD, SSD, Multipath, RAID, iSCSI, FC.",
            ],
        ),
        (
            _disk(drive_type="RAID"),
            "worker",
            {**CLUSTER, "openshift_version": "4.13"},
            ["Drive type is RAID, it must be one of HDD, SSD, Multipath, FC."],
        ),
        (
            _disk(drive_type="iSCSI", iscsi={"host_ip_address": "10.1.0.21"}),
            "worker",
            {**CLUSTER, "openshift_version": "4.14"},
            [
                "Drive type is iSCSI, it must be one of HDD, SSD, Multipath, RAID, FC.",
                "iSCSI host IP 10.1.0.21 is the same as host IP, they must be different",
            ],
        ),
        (_disk(drive_type="iSCSI", iscsi={"host_ip_address": "192.0.2.50"}), "worker", CLUSTER, []),
        (_disk(drive_type="iSCSI"), "worker", CLUSTER, ["Host IP address is not available"]),
        (
            _disk(name="dm-0", drive_type="Multipath"),
            "worker",
            CLUSTER,
            ["Multipath device has path of type SSD, it must be FC"],
        ),
    ],
)
def test_service_disk_reasons(disk: dict[str, Any], role: str, cluster: dict[str, Any], reasons: list[str]) -> None:
    inventory = {
        "cpu": {"architecture": "x86_64"},
        "disks": [disk, {"name": "sdz", "drive_type": "SSD", "holders": "dm-0"}],
        "interfaces": [{"name": "eno1", "ipv4_addresses": ["10.1.0.21/24"]}],
        "routes": [{"destination": "0.0.0.0", "family": 2, "interface": "eno1", "gateway": "10.1.0.1"}],
    }
    assert service_disk_reasons(disk, inventory, role=role, cluster=cluster) == reasons


def test_malformed_interface_address_does_not_break_the_iscsi_check() -> None:
    disk = _disk(drive_type="iSCSI", iscsi={"host_ip_address": "10.1.0.21"})
    inventory = {
        "cpu": {"architecture": "x86_64"},
        "disks": [disk],
        "interfaces": [{"name": "eno1", "ipv4_addresses": ["not-an-address", "10.1.0.21/24"]}],
        "routes": [{"destination": "0.0.0.0", "family": 2, "interface": "eno1", "gateway": "10.1.0.1"}],
    }
    assert service_disk_reasons(disk, inventory, role="worker", cluster=CLUSTER) == [
        "iSCSI host IP 10.1.0.21 is the same as host IP, they must be different"
    ]


def test_eligible_disks_order() -> None:
    disks = [
        {"name": "nvme0n1", "drive_type": "SSD", "size_bytes": 200, "bootable": True},
        {"name": "sdb", "drive_type": "SSD", "size_bytes": 100},
        {"name": "sdc", "drive_type": "HDD", "size_bytes": 300, "hctl": "1:0:0:0"},
        {"name": "sdd", "drive_type": "HDD", "size_bytes": 300, "hctl": "0:0:0:0"},
        {"name": "sde", "drive_type": "SSD", "size_bytes": 50, "bootable": True},
        {"name": "sdf", "drive_type": "SSD", "size_bytes": 10},  # not eligible
    ]
    for d in disks:
        d["installation_eligibility"] = {"eligible": d["name"] != "sdf"}
    assert [d["name"] for d in eligible_disks({"disks": disks})] == ["sde", "nvme0n1", "sdd", "sdc", "sdb"]


def test_reply_handler_stores_the_inventory_as_the_service_does() -> None:
    inv = fixture_inventory("bonds-vlans-bridges")
    view = view_of(None, cluster=CLUSTER, role="master")
    store_inventory(view, copy.deepcopy(inv), {"step_type": "inventory", "exit_code": 0})
    stored = json.loads(view.host["inventory"])
    # virtual interface types are dropped, physical/bond/vlan kept
    assert [i["name"] for i in stored["interfaces"]] == ["ens1f0", "ens1f1", "bond0", "bond0.200"]
    disks = {d["name"]: d for d in stored["disks"]}
    assert disks["sda"]["installation_eligibility"] == {"eligible": True, "not_eligible_reasons": None}
    assert disks["md127"]["installation_eligibility"]["eligible"] is True  # RAID allowed from 4.14
    # the bootable disk is chosen
    assert view.host["installation_disk_id"] == "/dev/disk/by-id/wwn-0x5002538e0012ab34"
    assert view.host["installation_disk_path"] == "/dev/sda"
    # a still-eligible disk the user chose is kept on the next update; service reasons never pile up
    view.host["installation_disk_id"] = "/dev/disk/by-path/pci-0000:05:00.2-ata-3.0"
    store_inventory(view, json.loads(view.host["inventory"]), {"step_type": "inventory", "exit_code": 0})
    assert view.host["installation_disk_path"] == "/dev/sdb"
    failed = copy.deepcopy(view.host)
    store_inventory(view, None, {"step_type": "inventory", "exit_code": -1})
    assert view.host == failed


def test_disks_to_be_formatted_and_skipping_their_formatting() -> None:
    """Bootable local disks are formatted; removable media, shared (FC, iSCSI, multipath) and LVM are not.
    Skipping the installation disk, or a disk that is gone, blocks the installation."""
    from rules.install import format_disk_paths

    inv = fixture_inventory("bonds-vlans-bridges")
    inv["disks"][2]["bootable"] = True  # sdb: an old OS on a second local disk
    view = view_of(None, cluster=CLUSTER, role="master")
    store_inventory(view, copy.deepcopy(inv), {"step_type": "inventory", "exit_code": 0})
    sda, sdb = "/dev/disk/by-id/wwn-0x5002538e0012ab34", "/dev/disk/by-path/pci-0000:05:00.2-ata-3.0"
    assert view.host["disks_to_be_formatted"] == f"{sda},{sdb}"
    assert format_disk_paths(view) == ["/dev/sdb"]  # the installation disk sda is written, not formatted
    ok = ("success", "No request to skip formatting of the installation disk")
    assert outcome("no-skip-installation-disk", view) == ok
    assert outcome("no-skip-missing-disk", view) == (
        "success", "All disks that have skipped formatting are present in the host inventory")
    view.host["skip_formatting_disks"] = sdb
    assert format_disk_paths(view) == []
    assert outcome("no-skip-installation-disk", view) == ok
    view.host["skip_formatting_disks"] = f"{sdb},{sda}"
    assert outcome("no-skip-installation-disk", view)[0] == "failure"  # type: ignore[index]
    view.host["skip_formatting_disks"] = "/dev/disk/by-id/wwn-0xgone"
    assert outcome("no-skip-missing-disk", view)[0] == "failure"  # type: ignore[index]
    server = view_of(None, cluster=CLUSTER)
    store_inventory(server, fixture_inventory("baremetal-server"), {"step_type": "inventory", "exit_code": 0})
    assert server.host["disks_to_be_formatted"] == "/dev/disk/by-id/wwn-0x5002538f4274a1b2"  # not the USB stick


@pytest.mark.parametrize(("status", "stored"), [
    ("known", True), ("insufficient-unbound", True), ("installing-in-progress", True),
    ("preparing-for-installation", False), ("installing", False), ("installed", False),
])
def test_inventory_is_only_taken_in_the_states_the_service_takes_it(status: str, stored: bool) -> None:
    # assisted-service-api.md 4.3: UpdateInventory is refused outside these states
    view = view_of(None, status=status, installation_disk_id="/dev/disk/by-id/wwn-chosen-before")
    store_inventory(view, fixture_inventory("baremetal-server"), {"step_type": "inventory", "exit_code": 0})
    assert ("inventory" in view.host) is stored
    assert (view.host["installation_disk_id"] != "/dev/disk/by-id/wwn-chosen-before") is stored


def test_reply_handler_adds_reasons_and_fills_ids() -> None:
    inv = fixture_inventory("cloud-ec2")
    inv["disks"][0].pop("id")
    view = view_of(None, cluster=CLUSTER)
    store_inventory(view, inv, {"step_type": "inventory", "exit_code": 0})
    disks = json.loads(view.host["inventory"])["disks"]
    assert disks[0]["id"] == "/dev/disk/by-path/pci-0000:00:04.0-nvme-1"
    assert disks[1]["installation_eligibility"] == {
        "eligible": False,
        "not_eligible_reasons": ["Disk is too small (disk only has 22 GB, but 100 GB are required)"],
    }


# -- validations ----------------------------------------------------------------------------------------------------
def test_validations_are_registered_with_the_real_ids_and_categories() -> None:
    for vid in ("has-inventory", "has-min-cpu-cores", "has-min-memory", "has-min-valid-disks"):
        assert VALIDATIONS[vid].category == "hardware" and VALIDATIONS[vid].hardware_gate and VALIDATIONS[vid].unbound
    for vid in ("has-cpu-cores-for-role", "has-memory-for-role", "hostname-unique", "hostname-valid"):
        assert VALIDATIONS[vid].category == "hardware" and not VALIDATIONS[vid].hardware_gate


def test_without_inventory() -> None:
    view = view_of(None, cluster=CLUSTER)
    assert outcome("has-inventory", view) == ("failure", "Inventory has not been received for the host")
    assert outcome("has-min-cpu-cores", view) == ("pending", "Missing inventory")
    assert outcome("has-min-memory", view) == ("pending", "Missing inventory")
    assert outcome("has-min-valid-disks", view) == ("pending", "Missing inventory")
    assert outcome("has-cpu-cores-for-role", view) == ("pending", "Missing inventory or role")
    assert outcome("has-memory-for-role", view) == ("pending", "Missing inventory or role")
    assert outcome("hostname-unique", view) == ("pending", "Missing inventory")
    assert outcome("hostname-valid", view) == ("failure", "Missing inventory")
    no_disks = {**fixture_inventory("cloud-ec2"), "disks": []}
    assert outcome("has-inventory", view_of(no_disks))[0] == "failure"  # type: ignore[index]


def test_truncated_inventories() -> None:
    """Partial truncation is a warning; a full one leaves nothing to validate, so the host is not discovered."""
    inv = fixture_inventory("baremetal-server")
    view = view_of(inv, cluster=CLUSTER)
    for vid in ("inventory-not-fully-truncated", "inventory-not-partially-truncated"):
        assert outcome(vid, view_of(None, cluster=CLUSTER)) == ("pending", "Missing inventory")
    assert outcome("inventory-not-fully-truncated", view) == ("success", "Inventory is not fully truncated")
    partial = {**inv, "truncation": {"type": "partial", "reasons": ["routes removed", "CPU flags removed"]}}
    view = view_of(partial, cluster=CLUSTER)
    assert outcome("inventory-not-partially-truncated", view) == (
        "failure", "Inventory is truncated (partial): routes removed, CPU flags removed")
    assert outcome("inventory-not-fully-truncated", view) == ("success", "Inventory is not fully truncated")
    assert outcome("has-inventory", view) == ("success", "Valid inventory exists for the host")
    assert not VALIDATIONS["inventory-not-partially-truncated"].blocking
    full = {**inv, "disks": [], "interfaces": [], "truncation": {"type": "full", "reasons": ["too large"]}}
    view = view_of(full, cluster=CLUSTER)
    assert outcome("inventory-not-fully-truncated", view) == ("failure", "Inventory is truncated (full): too large")
    assert outcome("inventory-not-partially-truncated", view)[0] == "success"  # type: ignore[index]
    assert outcome("has-inventory", view) == (
        "failure", "Inventory has been received for the host but it is fully truncated")
    assert VALIDATIONS["inventory-not-fully-truncated"].hardware_gate


def test_inventory_step_gets_the_sizing_flags_only_when_set() -> None:
    from types import SimpleNamespace

    from reference_service.settings import Settings
    from rules import core

    view = view_of(None, service=None)
    view.service = SimpleNamespace(settings=Settings())
    assert core.inventory_args(view) == [HOST_ID]
    view.service = SimpleNamespace(settings=Settings(inventory_max_size=65536, inventory_disk_min_size=5 << 30))
    assert core.inventory_args(view) == [HOST_ID, "--output-max-size=65536", "--disk-min-size=5368709120"]


def test_sufficient_host() -> None:
    view = view_of(fixture_inventory("baremetal-server"), cluster=CLUSTER, role="master")
    assert outcome("has-inventory", view) == ("success", "Valid inventory exists for the host")
    assert outcome("has-min-cpu-cores", view) == ("success", "Sufficient CPU cores")
    assert outcome("has-min-memory", view) == ("success", "Sufficient minimum RAM")
    assert outcome("has-min-valid-disks", view) == ("success", "Sufficient disk capacity")
    assert outcome("has-cpu-cores-for-role", view) == ("success", "Sufficient CPU cores for role master")
    assert outcome("has-memory-for-role", view) == ("success", "Sufficient RAM for role master")
    assert outcome("hostname-unique", view) == ("success", "Hostname r650-node1.lab.example.com is unique in cluster")
    assert outcome("hostname-valid", view) == ("success", "Hostname r650-node1.lab.example.com is allowed")


def test_small_host() -> None:
    inv = fixture_inventory("cloud-ec2")
    inv["cpu"]["count"] = 1
    inv["memory"] = {"physical_bytes": 4 << 30, "physical_bytes_method": "dmidecode", "usable_bytes": 4 << 30}
    for d in inv["disks"]:
        d["size_bytes"] = 20 * 10**9
    view = view_of(inv, cluster=CLUSTER, role="master")
    assert outcome("has-min-cpu-cores", view) == (
        "failure",
        (
            "The host is not eligible to participate in Openshift Cluster because the minimum required CPU cores "
            "for any role is 2, found only 1"
        ),
    )
    assert outcome("has-min-memory", view) == (
        "failure",
        (
            "The host is not eligible to participate in Openshift Cluster because the minimum required RAM for any "
            "role is 8.00 GiB, found only 4.00 GiB"
        ),
    )
    assert outcome("has-min-valid-disks", view) == (
        "failure",
        ("No eligible disks were found, please check specific disks to see why they are not eligible"),
    )
    assert outcome("has-cpu-cores-for-role", view) == (
        "failure",
        "Require at least 4 CPU cores for master role, found only 1",
    )
    assert outcome("has-memory-for-role", view) == (
        "failure",
        ("Require at least 16.00 GiB RAM for role master, found only 4.00 GiB"),
    )


@pytest.mark.parametrize(
    ("physical", "method", "status"),
    [
        ((8192 - 100) << 20, "dmidecode", "success"),  # within the 100 MiB tolerance
        ((8192 - 101) << 20, "dmidecode", "failure"),
        ((8192 - 200) << 20, "meminfo", "success"),  # meminfo: 2 % more tolerance
        ((8192 - 100 - 164) << 20, "meminfo", "failure"),
    ],
)
def test_memory_tolerance(physical: int, method: str, status: str) -> None:
    inv = fixture_inventory("cloud-ec2")
    inv["memory"] = {"physical_bytes": physical, "physical_bytes_method": method}
    assert outcome("has-memory-for-role", view_of(inv, cluster=CLUSTER, role="worker"))[0] == status  # type: ignore[index]


def test_single_node_master_needs_more_cores() -> None:
    inv = fixture_inventory("cloud-ec2")  # 4 cores
    sno = {**CLUSTER, "control_plane_count": 1}
    assert outcome("has-cpu-cores-for-role", view_of(inv, cluster=sno, role="master")) == (
        "failure",
        "Require at least 8 CPU cores for master role, found only 4",
    )
    sno422 = {**sno, "openshift_version": "4.22"}
    assert outcome("has-cpu-cores-for-role", view_of(inv, cluster=sno422, role="master"))[0] == "success"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "requested", "expected"),
    [
        ("master-0", None, ("success", "Hostname master-0 is allowed")),
        ("localhost", None, ("failure", "The host name localhost is forbidden")),
        ("localhost", "worker-1", ("success", "Hostname worker-1 is allowed")),
        (
            "Master_0",
            None,
            ("failure", "Hostname Master_0 is forbidden, hostname should match pattern " + hardware.HOSTNAME_PATTERN),
        ),
    ],
)
def test_hostname_valid(name: str, requested: str | None, expected: tuple[str, str]) -> None:
    inv = {**fixture_inventory("cloud-ec2"), "hostname": name}
    extra: dict[str, Any] = {"requested_hostname": requested} if requested else {}
    assert outcome("hostname-valid", view_of(inv, cluster=CLUSTER, **extra)) == expected


def test_hostname_unique() -> None:
    inv = fixture_inventory("cloud-ec2")
    other = {"id": "other", "inventory": json.dumps(inv)}
    view = view_of(inv, cluster=CLUSTER, others=[other])
    assert outcome("hostname-unique", view) == (
        "failure",
        "Hostname ip-172-31-20-15.ec2.internal is not unique in cluster",
    )
    other = {**other, "requested_hostname": "worker-9"}  # documents are replaced, never changed in place
    view = view_of(inv, cluster=CLUSTER, others=[other])
    assert outcome("hostname-unique", view)[0] == "success"  # type: ignore[index]


# -- end to end ------------------------------------------------------------------------------------------------------
def test_end_to_end_inventory_and_hardware_validations(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        cluster = svc.create_cluster()
        ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
        with start_agent(svc.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log"):
            host = svc.wait_host(
                ie,
                lambda h: bool(h.get("inventory")) and "has-min-valid-disks" in h.get("validations_info", ""),
                timeout=60,
            )
            inv = json.loads(host["inventory"])
            assert [i["name"] for i in inv["interfaces"]] == ["eth0"]  # lo (device) and ifb dropped
            assert host["installation_disk_path"] == "/dev/vda"
            checks = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
            assert checks["has-inventory"]["status"] == "success"
            assert checks["has-min-cpu-cores"]["message"] == "Sufficient CPU cores"
            assert checks["has-min-valid-disks"]["message"] == "Sufficient disk capacity"
            assert checks["hostname-valid"]["status"] == "success"
            # a master needs 4 cores; this machine has 2: the validation says so and the host is not known
            updated = svc.patch_host(ie, HOST_ID, disks_skip_formatting=[
                {"disk_id": host["installation_disk_id"], "skip_formatting": True},
                {"disk_id": "/dev/disk/by-id/wwn-0xother", "skip_formatting": True},
                {"disk_id": "/dev/disk/by-id/wwn-0xother", "skip_formatting": False}])
            assert updated["skip_formatting_disks"] == host["installation_disk_id"]
            checks = {v["id"]: v for vs in json.loads(updated["validations_info"]).values() for v in vs}
            assert checks["no-skip-installation-disk"]["status"] == "failure"
            svc.patch_host(ie, HOST_ID, disks_skip_formatting=[
                {"disk_id": host["installation_disk_id"], "skip_formatting": False}])
            svc.patch_host(ie, HOST_ID, host_role="master")
            want = "Require at least 4 CPU cores for master role, found only 2"
            host = svc.wait_host(ie, lambda h: want in (h.get("validations_info") or ""), timeout=30)
            checks = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
            assert checks["has-cpu-cores-for-role"] == {
                "id": "has-cpu-cores-for-role",
                "status": "failure",
                "message": want,
            }
            assert host["status"] != "known"
            page = requests.get(f"{svc.url}/infra-envs/{ie}/hosts/{HOST_ID}", timeout=10).text
            assert want in page
            assert 'data-disk="vda"' in page


def test_end_to_end_a_fully_truncated_inventory_keeps_the_host_discovering(tmp_path: Path) -> None:
    """The limit travels from the service's setting through the step's flags to the agent's truncation, and
    back to a validation that says why the host is not discovered."""
    with start_service(tmp_path, extra=["--inventory-max-size", "100"]) as svc:
        cluster = svc.create_cluster()
        ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
        with start_agent(svc.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log"):
            host = svc.wait_host(ie, lambda h: "inventory-not-fully-truncated" in h.get("validations_info", "")
                                 and bool(h.get("inventory")), timeout=60)
            inv = json.loads(host["inventory"])
            assert inv["truncation"]["type"] == "full" and inv["disks"] == []
            assert inv["truncation"]["reasons"][-1] == (
                "inventory still larger than 100 bytes: only the hardware summary kept")
            checks = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
            assert checks["inventory-not-fully-truncated"]["status"] == "failure"
            assert checks["has-inventory"]["message"] == (
                "Inventory has been received for the host but it is fully truncated")
            assert host["status"] == "discovering"


def test_judging_the_disks_changes_neither_the_reply_nor_the_stored_inventory() -> None:
    """store_inventory and has-min-valid-disks work on a two-level copy (disks.eligibility_copy), not on a JSON
    round trip: what they were handed, a shared decoded field among them, stays as it was."""
    inv = fixture_inventory("bonds-vlans-bridges")
    handed = copy.deepcopy(inv)
    view = view_of(None, cluster=CLUSTER, role="master")
    store_inventory(view, handed, {"step_type": "inventory", "exit_code": 0})
    assert handed == inv
    stored = view.host["inventory"]
    decoded = json.loads(stored)
    small = {**decoded, "disks": [{**d, "size_bytes": 1 << 30} for d in decoded["disks"]]}
    view.host["inventory"] = json.dumps(small)
    before = copy.deepcopy(small)
    assert outcome("has-min-valid-disks", view) == (
        "failure", "No eligible disks were found, please check specific disks to see why they are not eligible")
    from rules.documents import parse_json_field
    assert parse_json_field(view.host, "inventory") == before  # the shared decoded field is untouched

"""inventory.gpus: display and accelerator PCI devices, named from pci.ids."""

from __future__ import annotations

from pathlib import Path

from common.host import Host
from inventory import gpus
from inventory.options import Options
from tests.support.paths import FIXTURES

PCI_IDS = """# comment
10de  NVIDIA Corporation
\t25b6  GA107GL [A2 / A16]
\t\t10de 14a9  A16
\t1234  Something Else
1af4  Red Hat, Inc.
\t1050  Virtio 1.0 GPU
C 03  Display controller
\t00  VGA compatible controller
"""


def test_pci_names_reads_vendor_and_device_and_stops_at_the_classes() -> None:
    wanted = {("10de", "25b6"), ("1af4", "1050"), ("1af4", "ffff"), ("abcd", "0001")}
    assert gpus.pci_names(PCI_IDS, wanted) == {
        ("10de", "25b6"): ("NVIDIA Corporation", "GA107GL [A2 / A16]"),
        ("1af4", "1050"): ("Red Hat, Inc.", "Virtio 1.0 GPU"),
        ("1af4", "ffff"): ("Red Hat, Inc.", ""),  # a known vendor, an unknown device
    }
    # subsystem lines (two tabs) are not devices; the class section's lines are nobody's devices
    assert gpus.pci_names(PCI_IDS, {("10de", "14a9"), ("1af4", "00")}) == {
        ("10de", "14a9"): ("NVIDIA Corporation", ""), ("1af4", "00"): ("Red Hat, Inc.", "")}


def test_the_recorded_server_has_a_bmc_console_and_an_accelerator() -> None:
    got = gpus.collect(Host.at(FIXTURES / "baremetal-server"), Options())["gpus"]
    assert [(g["address"], g["vendor_id"], g["device_id"], g["vendor"]) for g in got] == [
        ("0000:03:00.0", "102b", "0536", "Matrox Electronics Systems Ltd."),
        ("0000:ca:00.0", "10de", "25b6", "NVIDIA Corporation"),
    ]
    assert got[1]["name"] == "GA107GL [A2 / A16]"


def test_only_display_and_accelerator_classes_count(tmp_path: Path) -> None:
    for dev, cls, vendor, device in (
        ("0000:00:02.0", "0x030000", "0x1af4", "0x1050"),  # VGA
        ("0000:00:03.0", "0x020000", "0x8086", "0x100e"),  # ethernet: not a GPU
        ("0000:00:04.0", "0x120000", "0x10de", "0x25b6"),  # processing accelerator
    ):
        base = tmp_path / "sys/bus/pci/devices" / dev
        base.mkdir(parents=True)
        (base / "class").write_text(cls + "\n")
        (base / "vendor").write_text(vendor + "\n")
        (base / "device").write_text(device + "\n")
    (tmp_path / "usr/share/hwdata").mkdir(parents=True)
    (tmp_path / "usr/share/hwdata/pci.ids").write_text(PCI_IDS)
    got = gpus.collect(Host(tmp_path), Options())["gpus"]
    assert [(g["address"], g["name"]) for g in got] == [
        ("0000:00:02.0", "Virtio 1.0 GPU"), ("0000:00:04.0", "GA107GL [A2 / A16]")]


def test_no_gpu_and_no_pci_ids_is_an_empty_list(tmp_path: Path) -> None:
    assert gpus.collect(Host(tmp_path), Options()) == {"gpus": []}
    assert gpus.collect(Host.at(FIXTURES / "cloud-ec2"), Options()) == {"gpus": []}

"""inventory.system_vendor: DMI's manufacturer, product and serial, the platform quirks, and 'virtual'."""

from __future__ import annotations

from pathlib import Path

from common.host import Host
from inventory import system_vendor
from inventory.options import Options
from tests.support.paths import FIXTURES


def _dmi(root: Path, **values: str) -> Host:
    (root / "sys/class/dmi/id").mkdir(parents=True)
    for name, value in values.items():
        (root / "sys/class/dmi/id" / name).write_text(value + "\n")
    return Host(root)


def test_recorded_machines() -> None:
    bare = system_vendor.collect(Host.at(FIXTURES / "baremetal-server"), Options())["system_vendor"]
    assert bare == {"manufacturer": "Dell Inc.", "product_name": "PowerEdge R650", "serial_number": "7XJ2HQ3",
                    "virtual": False}
    vm = system_vendor.collect(Host.at(FIXTURES / "kvm-vm"), Options())["system_vendor"]
    assert (vm["manufacturer"], vm["serial_number"], vm["virtual"]) == ("QEMU", "unknown", True)


def test_missing_dmi_values_are_unknown(tmp_path: Path) -> None:
    got = system_vendor.collect(_dmi(tmp_path, sys_vendor="Acme"), Options())["system_vendor"]
    assert (got["manufacturer"], got["product_name"], got["serial_number"]) == ("Acme", "unknown", "unknown")


def test_ovirt_and_oracle_cloud_are_named_as_the_service_expects(tmp_path: Path) -> None:
    host = _dmi(tmp_path, sys_vendor="Red Hat", product_name="RHEL", product_family="RHV",
                chassis_asset_tag="OracleCloud.com")
    got = system_vendor.collect(host, Options())["system_vendor"]
    assert (got["manufacturer"], got["product_name"]) == ("OracleCloud.com", "oVirt")


def test_ibm_z_is_named_from_cpuinfo_and_sysinfo(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("vendor_id       : IBM/S390\n# processors    : 2\n")
    (tmp_path / "proc/sysinfo").write_text("VM00 Control Program: z/VM    7.2.0\n")
    got = system_vendor.collect(Host(tmp_path), Options())["system_vendor"]
    assert (got["manufacturer"], got["product_name"]) == ("IBM/S390", "z/VM")
    (tmp_path / "proc/sysinfo").write_text("LPAR Name: LP01\n")
    assert system_vendor.collect(Host(tmp_path), Options())["system_vendor"]["product_name"] == "LPAR"
    (tmp_path / "proc/cpuinfo").write_text("vendor_id : GenuineIntel\n")
    assert system_vendor.collect(Host(tmp_path), Options())["system_vendor"]["manufacturer"] == "unknown"

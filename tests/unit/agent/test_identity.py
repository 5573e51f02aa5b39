"""Host id derivation on fixture sysfs trees, checked against ids the Go agent computed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.identity import FALLBACK_ID, derive_host_id, md5_uuid, permanent_macs
from common.host import Host


def tree(root: Path, files: dict[str, str]) -> Host:
    for rel, text in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Host.at(root)


NICS = {
    "/sys/class/net/lo/address": "00:00:00:00:00:00\n",
    "/sys/class/net/eth0/address": "02:fc:00:00:00:01\n",
    "/sys/class/net/ifb1/address": "02:03:fd:19:dd:9d\n",
}


def test_md5_layout_matches_the_go_agent() -> None:
    # values from the Go agent's unit tests and its wire capture (go-agent-behaviour.md 2.5)
    assert md5_uuid("123-456-789") == "856f4f9c-3c08-4d97-8ec7-ea0ad7d4cadf"
    assert md5_uuid("Other") == "6311ae17-c1ee-52b3-6e68-aaf4ad066387"
    assert md5_uuid("02:03:fd:19:dd:9d") == "6fde0f02-fb37-b620-d208-51bf93374c7d"


def test_the_md5_is_the_same_where_python_lacks_its_own_md5_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "_md5", None)  # import _md5 now raises ImportError: hashlib's is used
    assert md5_uuid("123-456-789") == "856f4f9c-3c08-4d97-8ec7-ea0ad7d4cadf"


def test_a_host_id_from_a_mac_loads_no_openssl(tmp_path: Path) -> None:
    """hashlib loads OpenSSL's libcrypto (about 5 ms of CPU before the first register, issue 29)."""
    tree(tmp_path, NICS)
    code = (f"import sys\nfrom agent.identity import derive_host_id\nfrom common.host import Host\n"
            f"print(derive_host_id(Host.at({str(tmp_path)!r}))[1],\n"
            f"      sorted({{'_hashlib', 'hashlib'}} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "smallest MAC address (02:03:fd:19:dd:9d) []"


def test_board_serial_wins(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/sys/class/dmi/id/board_serial": "123-456-789\n",
                           "/sys/class/dmi/id/product_uuid": "5E6D4F5B-1C2A-4D3E-8F9A-0B1C2D3E4F5A\n", **NICS})
    assert derive_host_id(host) == ("856f4f9c-3c08-4d97-8ec7-ea0ad7d4cadf", "motherboard serial")


@pytest.mark.parametrize("serial", ["", "Unknown", "None", "(none)", "-", "Default string", "Not Specified",
                                    "PCA_number.ACC", "To be filled by O.E.M.",
                                    "Unspecified Base Board Serial Number"])
def test_placeholder_serials_fall_through_to_the_system_uuid(tmp_path: Path, serial: str) -> None:
    host = tree(tmp_path, {"/sys/class/dmi/id/board_serial": serial + "\n",
                           "/sys/class/dmi/id/product_uuid": "5E6D4F5B-1C2A-4D3E-8F9A-0B1C2D3E4F5A\n", **NICS})
    assert derive_host_id(host) == ("5e6d4f5b-1c2a-4d3e-8f9a-0b1c2d3e4f5a", "system UUID")


@pytest.mark.parametrize("product_uuid", ["00000000-0000-0000-0000-000000000000",
                                          "03000200-0400-0500-0006-000700080009", "not-a-uuid", "unknown"])
def test_placeholder_uuids_fall_through_to_the_smallest_mac(tmp_path: Path, product_uuid: str) -> None:
    host = tree(tmp_path, {"/sys/class/dmi/id/product_uuid": product_uuid, **NICS})
    host_id, how = derive_host_id(host)
    assert host_id == "6fde0f02-fb37-b620-d208-51bf93374c7d"
    assert "02:03:fd:19:dd:9d" in how


def test_no_dmi_at_all_uses_the_mac_like_this_machine(tmp_path: Path) -> None:
    host = tree(tmp_path, NICS)
    assert derive_host_id(host)[0] == "6fde0f02-fb37-b620-d208-51bf93374c7d"


def test_bond_members_count_with_their_permanent_mac(tmp_path: Path) -> None:
    # both members show the bond's MAC; their burnt-in MACs decide
    host = tree(tmp_path, {
        "/sys/class/net/bond0/address": "52:54:00:aa:aa:aa\n",
        "/sys/class/net/ens1/address": "52:54:00:aa:aa:aa\n",
        "/sys/class/net/ens1/bonding_slave/perm_hwaddr": "52:54:00:00:00:02\n",
        "/sys/class/net/ens2/address": "52:54:00:aa:aa:aa\n",
        "/sys/class/net/ens2/bonding_slave/perm_hwaddr": "52:54:00:00:00:03\n",
    })
    assert permanent_macs(host)[0] == "52:54:00:00:00:02"
    assert derive_host_id(host)[0] == md5_uuid("52:54:00:00:00:02")


def test_nothing_at_all_gives_the_fixed_fallback(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/sys/class/net/lo/address": "00:00:00:00:00:00\n"})
    assert derive_host_id(host) == (FALLBACK_ID, "fallback (no serial, UUID or MAC found)")


def test_live_machine_id_is_stable_and_from_a_real_source() -> None:
    first, how = derive_host_id(Host.at("/"))
    assert derive_host_id(Host.at("/"))[0] == first
    assert how != "fallback (no serial, UUID or MAC found)"

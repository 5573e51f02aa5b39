"""inventory.tpm: the TPM's version as the service spells it."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.host import Host
from inventory import tpm
from inventory.options import Options
from tests.support.paths import FIXTURES


@pytest.mark.parametrize(("major", "version"), [("1", "1.2"), ("2", "2.0"), ("3", "none")])
def test_the_major_version_names_the_tpm(tmp_path: Path, major: str, version: str) -> None:
    (tmp_path / "sys/class/tpm/tpm0").mkdir(parents=True)
    (tmp_path / "sys/class/tpm/tpm0/tpm_version_major").write_text(major + "\n")
    assert tpm.collect(Host(tmp_path), Options()) == {"tpm_version": version}


def test_recorded_machines() -> None:
    assert tpm.collect(Host.at(FIXTURES / "kvm-vm"), Options()) == {"tpm_version": "2.0"}
    assert tpm.collect(Host.at(FIXTURES / "cloud-ec2"), Options()) == {"tpm_version": "none"}

"""The lab's parts that need no machine: what QEMU, dnsmasq, chronyd and the registry are told, the command
line's refusals, and the KVM probe's answer where KVM cannot run a guest. The whole journey with a booted machine
is tests/e2e/test_lab.py."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from reference_service import lab, lab_console, lab_net, lab_qemu, lab_run
from reference_service.lab_qemu import MachineSpec


def spec(index: int = 3) -> MachineSpec:
    return MachineSpec(index=index, name=f"lab-{index}", mac=lab_qemu.mac_of(index), ipv4=f"{lab_net.SUBNET}.13",
                       memory_mib=4096, cpus=2, disk_bytes=120 * 10**9, disk_serial="LABDISK0003")


def test_qemu_is_told_the_hardware_the_inventory_will_be_compared_with(tmp_path: Path) -> None:
    s = spec()
    argv = lab_qemu.qemu_argv(s, iso=tmp_path / "d.iso", disk=tmp_path / "d.raw", console=tmp_path / "c", accel="tcg")
    joined = " ".join(argv)
    assert "virtio-blk-pci,drive=disk0,serial=LABDISK0003,bootindex=1" in joined
    assert "ide-cd,drive=cd0,bus=ide.0,bootindex=2" in joined, "the disk first, then the ISO, as a lab boots"
    assert f"virtio-net-pci,netdev=net0,mac={s.mac}" in joined and "ifname=labtap3" in joined
    assert f"type=1,manufacturer=Assisted Lab,product=QEMU lab machine,serial=LAB-0003,uuid={s.uuid}" in argv
    assert argv[argv.index("-m") + 1] == "4096" and argv[argv.index("-smp") + 1] == "2"
    assert f"logfile={tmp_path / 'c'}" in argv[argv.index("-chardev") + 1], "the console is kept in a file"
    assert "tcg,thread=multi" in argv and "max,la57=off" in argv
    kvm = lab_qemu.qemu_argv(s, iso=tmp_path / "d.iso", disk=tmp_path / "d.raw", console=tmp_path / "c", accel="kvm")
    assert "kvm" in kvm and "host" in kvm


def test_macs_are_fixed_and_distinct() -> None:
    assert len({lab_qemu.mac_of(i) for i in range(50)}) == 50
    assert lab_qemu.mac_of(0) == "52:54:00:1a:b0:00"


def test_the_disk_is_sparse(tmp_path: Path) -> None:
    disk = tmp_path / "d.raw"
    lab_qemu.make_disk(disk, 120 * 10**9)
    assert disk.stat().st_size == 120 * 10**9 and disk.stat().st_blocks == 0


def test_dnsmasq_serves_the_cluster_names_and_one_address_per_mac(tmp_path: Path) -> None:
    argv = lab_net.dnsmasq_argv(tmp_path, [spec(0), spec(1)], lab_net.Names("lab", "example.com"))
    assert "--no-resolv" in argv and f"--interface={lab_net.BRIDGE}" in argv and "--bind-interfaces" in argv
    assert f"--address=/api.lab.example.com/{lab_net.API_VIP}" in argv
    assert f"--address=/api-int.lab.example.com/{lab_net.API_VIP}" in argv
    assert f"--address=/apps.lab.example.com/{lab_net.INGRESS_VIP}" in argv  # and every *.apps name
    assert f"--dhcp-host={lab_qemu.mac_of(1)},{lab_net.SUBNET}.13,lab-1" in argv
    assert f"--dhcp-option=option:ntp-server,{lab_net.GATEWAY}" in argv


def test_chrony_and_the_registry_listen_on_the_bridge_only(tmp_path: Path) -> None:
    assert lab_net.chrony_argv(tmp_path)[:3] == ["chronyd", "-d", "-x"]
    conf = (tmp_path / "chrony.conf").read_text()
    assert f"bindaddress {lab_net.GATEWAY}" in conf and "local stratum" in conf and "cmdport 0" in conf
    argv = lab_net.registry_argv(tmp_path)
    assert argv[:2] == ["docker-registry", "serve"]
    assert f"addr: {lab_net.REGISTRY}" in (tmp_path / "registry.yml").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--hosts", "0"], "--hosts 0"),
    (["--memory", "512"], "--memory"),
    (["--iso", "/nonexistent.iso"], "/nonexistent.iso"),
])
def test_the_command_line_refuses_what_cannot_work(args: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0 and "--iso" in args:
        pytest.skip("the root check comes first")
    assert lab.main(args) == 2
    assert message in capsys.readouterr().err


def test_discovered_means_the_inventory_is_in() -> None:
    assert {"insufficient", "known", "pending-for-input"} == lab_run.DISCOVERED


@pytest.mark.skipif(not shutil.which(lab_qemu.QEMU), reason="needs qemu-system-x86")
def test_the_kvm_probe_answers_within_its_bound(tmp_path: Path) -> None:
    kernel = tmp_path / "not-a-kernel"
    kernel.write_bytes(b"\0" * 4096)
    works, why = lab_qemu.probe_kvm(kernel, tmp_path, seconds=10)
    assert not works and why


def test_the_console_clock_times_each_line_and_notes_the_boot_milestones(tmp_path: Path) -> None:
    console = tmp_path / "lab-0.console"
    console.write_bytes(b"[    1.5] Run /init as init process\r\n")
    clock = lab_console.ConsoleClock(console, time.monotonic()).start()
    try:
        deadline = time.monotonic() + 20
        while "kernel runs /init" not in clock.seen and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(console, "ab") as fh:  # systemd's status line, coloured, written in two pieces
            fh.write(b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39magent")
            fh.flush()
            time.sleep(1.2)
            fh.write(b".service\x1b[0m - agent.\r\n")
        while "agent started" not in clock.seen and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        clock.stop()
    assert set(clock.seen) == {"kernel runs /init", "agent started"}
    assert clock.seen["kernel runs /init"] <= clock.seen["agent started"]
    timed = (tmp_path / "lab-0.console.timed").read_text().splitlines()
    assert [line.split(None, 1)[1] for line in timed] == ["[    1.5] Run /init as init process",
                                                          "[  OK  ] Started agent.service - agent."]


def test_the_reboot_notes_when_the_agent_unit_stops() -> None:
    """How long systemd took to stop the stock agent.service at the reboot (its stop timeout is 90 s): the lines
    as a lab machine's console showed them, without their colours."""
    clock = lab_console.ConsoleClock(Path("unused.console"), 0.0)
    for at, line in ((293.4, "Starting agent.service - agent..."), (329.5, "[  OK  ] Started agent.service - agent."),
                     (525.6, "Stopping agent.service - agent..."),
                     (530.1, "[**    ] Job agent.service/stop running (5s / 1min 30s)"),
                     (536.1, "[  OK  ] Stopped agent.service - agent.")):
        clock.note(line, at)
    assert clock.seen["agent.service stopping"] == 525.6 and clock.seen["agent.service stopped"] == 536.1


@pytest.mark.parametrize("image_type", ["full-iso", "minimal-iso"])
def test_the_infra_env_asks_for_the_image_type(image_type: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``--image-type minimal-iso`` boots the minimal ISO (kernel and initrd; the root fetched from the service,
    the agent image pulled from the lab's registry): the infra-env is created with that type."""
    ns = lab.parser().parse_args(["--image-type", image_type, "--work", str(tmp_path)])
    run = lab_run.Lab(ns)
    sent: list[tuple[str, str, object]] = []

    class Downloaded(Exception):
        pass

    def api(method: str, path: str, **kw: object) -> object:
        sent.append((method, path, kw.get("json")))
        if path.endswith("/image-url"):
            raise Downloaded  # what follows is the download, as for any image type
        return {"id": path.rsplit("/", 1)[-1]}

    monkeypatch.setattr(run, "api", api)
    with pytest.raises(Downloaded):
        run.discovery_iso()
    (infra_env,) = [body for _, path, body in sent if path == "/v2/infra-envs"]
    assert isinstance(infra_env, dict) and infra_env["image_type"] == image_type

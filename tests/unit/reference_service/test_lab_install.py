"""The lab's install part that needs no machine: when each phase is reached, and the ignored validations the
command line sets. The journey itself, with a booted machine, is tests/e2e/test_lab.py."""

from __future__ import annotations

from reference_service import lab, lab_install


def host(status: str, stage: str = "") -> dict[str, object]:
    return {"id": "h", "status": status, "progress": {"current_stage": stage} if stage else {}}


def test_each_phase_is_reached_when_every_host_is_past_it() -> None:
    reached = lab_install._all_reached
    installing, cluster = {"status": "installing"}, {"status": "installed"}
    assert not reached("installing", [], installing)
    assert not reached("installing", [host("installing"), host("preparing-successful")], installing)
    assert reached("installing", [host("installing"), host("installing-in-progress", "Installing")], installing)
    writing = [host("installing-in-progress", "Writing image to disk"), host("installing-in-progress", "Rebooting")]
    assert not reached("Rebooting", writing, installing)
    assert reached("Rebooting", [host("installing-in-progress", "Rebooting"), host("installed", "Done")], installing)
    done = [host("installed", "Done")]
    assert not reached("installed", done, installing), "the cluster too"
    assert reached("installed", done, cluster)
    assert not reached("installed", [*done, host("installing-in-progress", "Joined")], cluster)


def test_the_lab_ignores_the_hardware_validations_small_machines_fail_unless_told() -> None:
    assert lab.parser().parse_args([]).ignore_validations == list(lab_install.HARDWARE_VALIDATIONS)
    assert lab.parser().parse_args([]).until == "installed"
    assert lab.parser().parse_args(["--ignore-validations", "none"]).ignore_validations == []
    ns = lab.parser().parse_args(["--ignore-validations", "has-min-memory, ntp-synced"])
    assert ns.ignore_validations == ["has-min-memory", "ntp-synced"]


def test_the_installed_systems_report_is_waited_for_on_the_console() -> None:
    """The host is installed when the service has the report; the guest prints it a moment later."""
    import time

    from reference_service.lab_install import REPORTED, booted_installed_disk

    class Machine:
        reads = 0

        def console_text(self) -> str:
            self.reads += 1
            return "reported Joined\n" + (REPORTED if self.reads > 2 else "")

    assert booted_installed_disk([Machine()], time.monotonic() + 10, pause=0.01) == [True]
    assert booted_installed_disk([type("Silent", (), {"console_text": lambda self: ""})()],
                                 time.monotonic() + 0.05, pause=0.01) == [False]

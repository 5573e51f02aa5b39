"""reference_service.pages.timeline and the installed look of summaries: what a person reads of events and of a
finished install."""

from __future__ import annotations

from typing import Any

from reference_service.pages import summaries, timeline


def test_relative_times_are_coarse_and_the_exact_time_is_utc() -> None:
    assert timeline.ago(1000, 1030) == "less than a minute ago"
    assert timeline.ago(1000, 1000 + 61) == "1 minute ago"
    assert timeline.ago(1000, 1000 + 7300) == "2 hours ago"
    assert timeline.ago(1000, 1000 + 3 * 86400) == "3 days ago"
    assert timeline.ago(2000, 1000) == "less than a minute ago"  # a clock that went back
    assert timeline.exact(0) == "1970-01-01 00:00:00 UTC"
    assert timeline.readable("2026-12-07T09:05:01.407Z") == "2026-12-07 09:05:01 UTC"
    assert timeline.readable("0001-01-01T00:00:00.000Z") == "" and timeline.readable(None) == ""


def test_each_event_names_its_host_as_it_is_now() -> None:
    names = {"h1": "master-0"}
    events: list[dict[str, Any]] = [
        {"host_id": "h1", "message": "Host 5f0e-id: Successfully registered", "at": 10, "severity": "info"},
        {"host_id": "h1", "message": "Host old-name: validation 'ntp-synced' is now fixed", "at": 20},
        {"host_id": None, "message": "Host-less: cluster event", "at": 30, "severity": "warning"},
        {"host_id": "gone", "message": "Host gone: deleted since", "at": 40}]
    rows = timeline.event_rows(events, names, now=100)
    assert [(r["host"], r["message"]) for r in rows] == [
        ("master-0", "Successfully registered"), ("master-0", "Validation 'ntp-synced' is now fixed"),
        ("", "Host-less: cluster event"), ("", "Host gone: deleted since")]
    assert rows[1]["severity"] == "info" and rows[2]["severity"] == "warning"


def test_pages_of_events_and_the_severity_filter() -> None:
    counts = {"info": 120, "warning": 7}
    first = timeline.pager(1, "", counts)
    assert (first["pages"], first["total"], first["offset"]) == (3, 127, 0)
    assert timeline.pager(99, "", counts)["page"] == 3  # past the end: the last page
    warnings = timeline.pager(1, "warning", counts)
    assert (warnings["pages"], warnings["total"]) == (1, 7)
    assert [(f["label"], f["count"]) for f in first["filters"]] == [
        ("all", 127), ("info", 120), ("warning", 7), ("error", 0), ("critical", 0)]
    assert timeline.severity_of("warning") == "warning" and timeline.severity_of("<x>") == ""
    assert timeline.page_number("x") == 1 and timeline.page_number("-3") == 1 and timeline.page_number("2") == 2


def test_an_installed_host_looks_installed() -> None:
    """A dry run stops at Rebooting (62-72 %): the install is over all the same."""
    host = {"id": "h1", "status": "installed", "status_info": "Done",
            "progress": {"current_stage": "Rebooting", "installation_percentage": 62},
            "progress_stages": ["Starting installation", "Installing", "Writing image to disk", "Rebooting",
                                "Configuring", "Joined", "Done"]}
    row = summaries.host_row(host)
    assert (row["percentage"], row["stage"], row["editable"]) == (100, "Done", False)
    progress = summaries.progress_view(host)
    assert progress is not None and progress["percentage"] == 100
    assert {s["state"] for s in progress["stages"]} == {"done"}
    installing = summaries.host_row({**host, "status": "installing-in-progress"})
    assert (installing["percentage"], installing["stage"]) == (62, "Rebooting")

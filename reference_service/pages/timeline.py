"""Events as a person reads them: how long ago (the exact time on hover), each host under the one name it goes
by now, newest first, a page at a time, by severity.

Events are recorded with the name a host had then: its id before its inventory came, the name it reported, the
one a user gave it later; one host showed under three names in one list. The record stays as it was (the API
returns it so); the console shows the name the host goes by now beside each of its events, and the message
without the name it had then. Pure functions over the store's rows.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rules.events import SEVERITIES

#: Events a page lists: the newest first, then ``?events=N`` for older ones.
EVENTS_PER_PAGE = 50
_SUBJECT = re.compile(r"^Host ([^:\s]+): ")


def ago(at: float, now: float) -> str:
    """Coarse on purpose: a page whose text changed every second would be sent again at every refresh."""
    seconds = max(0, int(now - at))
    if seconds < 60:
        return "less than a minute ago"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return ""  # pragma: no cover (the loop ends at minutes)


def exact(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def readable(iso: Any) -> str:
    """``2026-12-07T09:05:01.407Z`` as ``2026-12-07 09:05:01 UTC``; "" for the zero time or nothing."""
    text = str(iso or "")
    if len(text) < 19 or text.startswith("0001-"):
        return ""
    return text[:10] + " " + text[11:19] + " UTC"


def named(message: str, host_id: str | None, names: dict[str, str]) -> str:
    """``message`` without its ``Host <the name it had then>: `` when the list names the host beside it."""
    if not host_id or not names.get(str(host_id)):
        return message
    rest = _SUBJECT.sub("", message, count=1)
    return rest[:1].upper() + rest[1:]


def event_rows(events: list[dict[str, Any]], names: dict[str, str], now: float) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        at = float(e.get("at") or 0)
        host_id = e.get("host_id") or ""
        rows.append({"severity": str(e.get("severity") or "info"), "ago": ago(at, now), "exact": exact(at),
                     "iso": str(e.get("event_time") or ""), "message": named(str(e.get("message") or ""), host_id,
                                                                             names),
                     "host_id": host_id, "host": names.get(host_id, "") if host_id else "",
                     "infra_env_id": e.get("infra_env_id") or ""})
    return rows


def severity_of(raw: Any) -> str:
    """The severity asked for, or "" (all) for anything else."""
    return str(raw) if raw in SEVERITIES else ""


def page_number(raw: Any) -> int:
    try:
        return max(1, int(raw))
    except (TypeError, ValueError):
        return 1


def pager(page: int, severity: str, counts: dict[str, int]) -> dict[str, Any]:
    """Where a page is among the pages of the events shown (of ``severity``, or all)."""
    total = counts.get(severity, 0) if severity else sum(counts.values())
    pages = max(1, -(-total // EVENTS_PER_PAGE))
    page = min(page, pages)
    return {"page": page, "pages": pages, "total": total, "offset": (page - 1) * EVENTS_PER_PAGE,
            "filters": [{"severity": "", "label": "all", "count": sum(counts.values())}]
            + [{"severity": s, "label": s, "count": counts.get(s, 0)} for s in SEVERITIES]}

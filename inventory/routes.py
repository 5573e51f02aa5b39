"""Routes of the main table, both families, in the Go agent's shape (destination without its prefix length).

Routes whose interface cannot be found are left out, as the Go agent does; the service uses these to find
the default route's interface (has-default-route, the iSCSI boot-disk check).
"""

from __future__ import annotations

from typing import Any

from common.host import Host
from inventory.options import Options

RT_TABLE_MAIN = 254


def routes(snapshot: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    names = {int(li["index"]): str(li["name"]) for li in snapshot["links"]}
    out = []
    for r in snapshot["routes"]:
        if r.get("table") != RT_TABLE_MAIN:
            continue
        hops = r.get("multipath") or []
        oif = r.get("oif") or (hops[0].get("oif") if hops else None)
        if oif is None or int(oif) not in names:
            continue
        family = int(r["family"])
        gateway = (hops[0].get("gateway") if hops else None) or r.get("gateway") or ""
        out.append(
            {
                "interface": names[int(oif)],
                "destination": r.get("dst") or ("0.0.0.0" if family == 2 else "::"),
                "gateway": gateway,
                "family": family,
                "metric": int(r.get("priority") or 0),
            }
        )
    return out


def collect(host: Host, options: Options) -> dict[str, Any]:
    return {"routes": routes(options.netlink(host))}

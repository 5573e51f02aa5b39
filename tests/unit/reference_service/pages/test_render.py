"""reference_service.pages.render: every value a host sends is escaped on a page, and the live part of a page
is rendered alone (what the page's script swaps in)."""

from __future__ import annotations

from reference_service.pages.render import STATIC, environment, render, render_live

EVIL = '<script>alert("x")</script>'
CLUSTER = {"id": "c1", "name": EVIL, "status": "ready", "tone": "good", "openshift_version": "4.16",
           "base_dns_domain": "example.com", "profile": "", "hosts": 1, "known": 1, "status_info": "ok"}


def test_values_are_escaped_on_a_whole_page() -> None:
    page = render("clusters.html", title="Clusters", interval=5, etag="e1", clusters=[CLUSTER], unbound=[])
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert EVIL not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert 'data-etag="e1"' in page and 'href="/clusters/c1"' in page


def test_the_live_part_is_rendered_alone() -> None:
    live = render_live("clusters.html", clusters=[CLUSTER], unbound=[])
    assert live.lstrip().startswith("<h1>Clusters</h1>")
    assert "<html" not in live and "Refreshes by itself" not in live  # base.html's frame is not in it
    assert EVIL not in live and "&lt;script&gt;" in live


def test_strings_rendered_from_code_are_escaped_too() -> None:
    assert environment().from_string("<p>{{ v }}</p>").render(v="<b>&") == "<p>&lt;b&gt;&amp;</p>"


def test_the_static_files_are_shipped_beside_the_templates() -> None:
    assert STATIC.is_dir() and any(STATIC.iterdir())

"""Jinja2 over the package's templates, autoescaped: every value on a page may come from a host."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

STATIC = Path(__file__).parent / "static"


@functools.cache
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True)


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def render_live(name: str, **context: Any) -> str:
    """Only the page's ``live`` block: what the page's script swaps in when something changed."""
    template = environment().get_template(name)
    return "".join(template.blocks["live"](template.new_context(context)))

"""Where things are, for tests at any depth of tests/: the project, its recorded hosts, the shared spec."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures" / "hosts"
PLUGINS = TESTS / "plugins"

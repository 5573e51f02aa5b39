"""Tests are laid out like the code, and the code stays in modules a person can read.

(a) every module of the packages is named by a test: a test module under tests/unit/ or tests/e2e/ imports it
    (``import m``, ``from m import x``, ``from package import m``), or names its dotted path in a string (a
    module reachable only as a process, ``-m steps.x``, or a ``monkeypatch.setattr("m.attr", ...)`` target);
    an argv with ``"-m", "pkg"`` names ``pkg.__main__``.
    Docstrings do not count: describing a module is not testing it. A package's ``__init__`` is named when the
    package or any module in it is (importing one runs it). Helpers in tests/support/ do not count either.
(b) tests/ holds only unit/, e2e/, support/, fixtures/, plugins/ and conftest.py: no test lives beside them.
(c) no module of any package is over 400 lines (the design card).
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

from tests.support.paths import ROOT, TESTS

PACKAGES = ("common", "inventory", "rules", "steps", "agent", "reference_service", "swarm")
MAX_LINES = 400
ALLOWED_IN_TESTS = {"__init__.py", "conftest.py", "unit", "e2e", "support", "fixtures", "plugins"}
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file, for every module of the packages (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def names_in(source: str) -> set[str]:
    """Every dotted name a test module imports or writes in a string (with each of its prefixes).

    One walk of the tree: it visits a module, class or function before its body, so its docstring is known to
    be one before the walk reaches it."""
    docs: set[int] = set()
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, (ast.List, ast.Tuple)):  # [python, "-m", "agent"] runs agent/__main__.py
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            out |= {f"{v}.__main__" for k, v in itertools.pairwise(values) if k == "-m" and isinstance(v, str)}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            for dotted in _DOTTED.findall(node.value):
                parts = dotted.split(".")
                out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    return out


def _test_files(tests: Path) -> list[Path]:
    """The mirrored unit tests first: they name most modules, so the e2e files are mostly skipped unread."""
    found = [*sorted((tests / "unit").rglob("test_*.py")), *sorted((tests / "e2e").rglob("test_*.py"))]
    return [p for p in found if p.resolve() != Path(__file__).resolve()]  # this file names modules as data


def _hint(module: str) -> str:
    """Text that any test naming ``module`` must contain: a cheap test before a file is parsed."""
    leaf = module.rsplit(".", 1)[-1]
    return '"-m"' if leaf == "__main__" else leaf


def unnamed(root: Path = ROOT, tests: Path = TESTS) -> list[str]:
    missing = set(modules(root))
    for path in _test_files(tests):
        text = path.read_text()
        if not any(_hint(m) in text for m in missing):
            continue  # (parsing every test file is seconds on a busy machine)
        named = names_in(text)
        # importing a module runs its packages' __init__: a package is named when anything in it is
        for name in list(named):
            parts = name.split(".")
            named |= {".".join(parts[:i]) for i in range(1, len(parts))}
        missing -= named
        if not missing:
            break
    return sorted(missing)


def too_long(root: Path = ROOT) -> dict[str, int]:
    lengths = {name: len(path.read_text().splitlines()) for name, path in modules(root).items()}
    return {name: n for name, n in lengths.items() if n > MAX_LINES}


def test_every_module_is_named_by_a_test() -> None:
    missing = unnamed()
    assert not missing, f"{len(missing)} modules named by no test: {' '.join(missing)}"


def test_no_test_lives_directly_in_tests() -> None:
    stray = sorted(p.name for p in TESTS.iterdir() if p.name not in ALLOWED_IN_TESTS and p.name != "__pycache__")
    assert stray == []


def test_no_module_is_over_400_lines() -> None:
    assert too_long() == {}


# -- the checks themselves ----------------------------------------------------------------------------------------
def test_imports_and_strings_name_modules_but_docstrings_do_not() -> None:
    source = '''"""Tests of pkg.described."""
import pkg.plain
from pkg.sub import member
from pkg.other import Thing


def test_x() -> None:
    """Also about pkg.described_too."""
    run(["python", "-m", "pkg.process"])
    run((sys.executable, "-m", "pkg"))
    monkeypatch.setattr("pkg.patched.shutil.which", None)
'''
    got = names_in(source)
    assert {"pkg.plain", "pkg.sub.member", "pkg.other", "pkg.process", "pkg.patched", "pkg.__main__"} <= got
    assert "pkg.described" not in got and "pkg.described_too" not in got


def test_an_unnamed_module_is_reported(tmp_path: Path) -> None:
    for rel in ("common/__init__.py", "common/a.py", "common/b.py", "common/sub/__init__.py", "common/sub/c.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    for package in PACKAGES[1:]:
        (tmp_path / package).mkdir()
    (tmp_path / "tests/unit/common").mkdir(parents=True)
    (tmp_path / "tests/e2e").mkdir()
    (tmp_path / "tests/unit/common/test_a.py").write_text("from common import a\n")
    (tmp_path / "tests/e2e/test_c.py").write_text("ARGV = ['-m', 'common.sub.c']\n")
    (tmp_path / "tests/support").mkdir()
    (tmp_path / "tests/support/helper.py").write_text("import common.b\n")  # helpers do not count
    assert unnamed(tmp_path, tmp_path / "tests") == ["common.b"]


def test_a_long_module_would_be_seen(tmp_path: Path) -> None:
    (tmp_path / "swarm").mkdir()
    (tmp_path / "swarm" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "swarm" / "small.py").write_text("x = 1\n" * MAX_LINES)
    assert too_long(tmp_path) == {"swarm.big": MAX_LINES + 1}

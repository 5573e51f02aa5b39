"""The daemon's lookup of step plugins (steps.registry.declared) finds what importlib.metadata finds, without
importing it: importlib.metadata is the oracle, on this interpreter's packages and on generated layouts."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps import registry


def _oracle() -> dict[str, str]:
    return {name: ep.value for name, ep in registry.available().items()}


@contextmanager
def _on_path(paths: list[str]) -> Iterator[None]:
    """Only ``paths`` on sys.path while both lookups run; their caches cleared before and after, so no other
    test sees this layout."""
    registry.available.cache_clear()
    registry.declared.cache_clear()
    try:
        with mock.patch.object(sys, "path", paths):
            yield
    finally:
        registry.available.cache_clear()
        registry.declared.cache_clear()


def test_this_interpreters_steps_are_found_as_importlib_metadata_finds_them() -> None:
    with _on_path(list(sys.path)):
        assert registry.declared() == _oracle()
        assert registry.declared()["inventory"] == "steps.inventory:InventoryStep"


# A distribution: (project name as spelled in its directory, metadata kind, entry_points.txt text or None)
_NAMES = st.sampled_from(["plug", "Plug", "plug_in", "Plug-In", "plug.in", "other", "zeta"])
_STEPS = st.sampled_from(["inventory", "Step-x", "step-y"])
_LINES = st.one_of(
    st.tuples(_STEPS, st.sampled_from(["m1:A", "m2:B", "pkg.mod:C.D"])).map(lambda p: f"{p[0]} = {p[1]}"),
    st.sampled_from(["", "# a comment", "[console_scripts]", "tool = x:main", f"[{registry.GROUP}]",
                     f"  [{registry.GROUP}]  ", "[other.group]"]),
)
_DIST = st.tuples(_NAMES, st.sampled_from(["1.0", "2"]), st.sampled_from([".dist-info", ".egg-info"]),
                  st.one_of(st.none(), st.lists(_LINES, max_size=8).map("\n".join)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_DIST, max_size=4), min_size=1, max_size=3), st.booleans())
def test_generated_layouts_are_read_as_importlib_metadata_reads_them(
        layout: list[list[tuple[str, str, str, str | None]]], missing_dir: bool) -> None:
    """Same project in two directories (the first shadows the other, even when it declares nothing), two
    spellings of one project in a directory, two projects claiming one step name, comments, other groups."""
    with tempfile.TemporaryDirectory() as top:
        paths = []
        for index, dists in enumerate(layout):
            site = Path(top, f"site{index}")
            site.mkdir()
            for name, version, kind, entry_points in dists:
                info = site / f"{name}-{version}{kind}"
                if info.exists():
                    continue
                info.mkdir()
                (info / ("METADATA" if kind == ".dist-info" else "PKG-INFO")).write_text(
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
                if entry_points is not None:
                    (info / "entry_points.txt").write_text(entry_points + "\n")
            paths.append(str(site))
        if missing_dir:
            paths.insert(1, str(Path(top, "missing")))
        with _on_path(paths):
            assert registry.declared() == _oracle()


def test_a_zip_on_the_path_is_left_to_importlib_metadata() -> None:
    """importlib.metadata reads distributions inside a zip on sys.path; this lookup does not, so it asks it."""
    import zipfile

    with tempfile.TemporaryDirectory() as top:
        archive = Path(top, "plugins.zip")
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
            zf.writestr("zipped-1.0.dist-info/entry_points.txt", f"[{registry.GROUP}]\nzipped-step = z:Z\n")
        with _on_path([str(archive)]):
            assert registry.declared() == {"zipped-step": "z:Z"} == _oracle()


def test_the_daemons_answer_to_an_unknown_step_type_reads_no_package_metadata_module(tmp_path: Path) -> None:
    """Importing importlib.metadata and scanning every package's metadata cost the daemon 0.1 s of CPU at its
    first step, 0.4 to 1 s of wall time at load 14 (the Go suite's "Step not exists" allows 1 s from start to
    its reply); the daemon's lookup reads the entry_points.txt files itself."""
    code = (
        "import json, sys\n"
        "from agent.config import AgentConfig\n"
        "from agent.runner import StepRunner\n"
        "reply = StepRunner(AgentConfig()).run('Step-not-exists', 'wrong-step', [])\n"
        "print(json.dumps({'reply': reply.to_wire(), 'metadata': 'importlib.metadata' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=tmp_path)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen == {"reply": {"step_id": "wrong-step", "step_type": "Step-not-exists", "exit_code": -1,
                              "error": "failed to find action for step type Step-not-exists"},
                    "metadata": False}

"""The committing process (``reference_service.store.committer``) imports only what committing needs: its RSS
counts with the service's in bench/scale.py, and the service side's imports (orjson for AsJson, subprocess and
pathlib for spawning it) were 3 of its 17 MiB (docs/scale.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def test_the_committing_process_imports_only_what_committing_needs() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import reference_service.store.committer; "
            "print(' '.join(sorted(m for m in ('orjson', 'subprocess', 'pathlib', 'common.json_codec') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.split() == []

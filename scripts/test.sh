#!/usr/bin/env bash
# Sets up this machine (Debian packages, .venv) and runs every check CI runs: ruff, mypy, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check agent common inventory rules steps reference_service swarm tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider "$@"

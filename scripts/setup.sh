#!/usr/bin/env bash
# Sets up a fresh machine for the agent, its reference service and its tests: Debian packages, then a
# virtualenv in .venv with the project installed editable with every extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # build of systemd-python
  libsystemd-dev pkg-config gcc python3-dev
  # network tests: namespaces, bridges, tc netem, ping for comparisons, a real DNS server, nmap for benchmarks
  iproute2 iputils-ping dnsmasq-base nmap
  # network tests: deterministic packet loss (the kernel has no netem), certificates for the TLS fixtures
  iptables openssl
  # time, disk and image steps
  chrony fio util-linux fdisk e2fsprogs dosfstools xz-utils zstd gzip
  podman runc buildah uidmap
  # the agent image (container/build.sh): its Debian base, PyInstaller's objdump
  debootstrap binutils
  # local image registry for the container-image tests (pulls over HTTP on 127.0.0.1)
  docker-registry
  # the discovery ISO (container/iso/build-iso.sh) and the lab's machines (assisted-reference-service lab)
  squashfs-tools xorriso isolinux syslinux-common qemu-system-x86 qemu-utils
  # optional inventory enrichers
  ethtool pciutils
  # browser tests of the pages (headless, driven by selenium through chromedriver)
  chromium chromium-driver
)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[service,dev,image]'
echo "setup: done (.venv ready)"

#!/usr/bin/env bash
# Builds the discovery ISO the reference service hands out: a Debian bookworm live system (kernel, systemd,
# podman, DHCP on every NIC, chrony) booted by isolinux, with a reserved area the service fills per infra-env.
#
#   bash container/iso/build-iso.sh [--out DIR]
#
# Offline from Debian's packages (debootstrap from Debian's mirror; no other download). The root filesystem is
# cached as a tarball keyed by container/iso/packages.txt, the ISO by everything in container/iso/. Prints the
# ISO's path as its last line; beside it NAME.json holds the reserved area's offset and size (docs/iso.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${ISO_CACHE:-$PWD/.image-cache/iso}
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-iso.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
AREA_SIZE=262144
log() { echo "build-iso.sh: $*" >&2; }
for tool in debootstrap mksquashfs xorriso; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run 'bash scripts/setup.sh'"; exit 1; }
done
[ -r /usr/lib/ISOLINUX/isolinux.bin ] && [ -r /usr/lib/syslinux/modules/bios/ldlinux.c32 ] \
  || { log "isolinux is missing: run 'bash scripts/setup.sh'"; exit 1; }
mkdir -p "$OUT"
drop_tree() {
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$1"
}

pkgs_key=$(grep -v '^#' container/iso/packages.txt | sort | sha256sum | cut -c1-12)
iso_key=$( (for f in container/iso/*; do echo "$f"; cat "$f"; done) | sha256sum | cut -c1-12)
# The live system (squashfs, kernel, initrd) is made from these; isolinux.cfg only goes into the ISO.
live_key=$( (for f in container/iso/packages.txt container/iso/ignition-apply container/iso/build-iso.sh; do
  echo "$f"; cat "$f"; done) | sha256sum | cut -c1-12)
iso=$OUT/discovery-$iso_key.iso
if [ -s "$iso" ] && [ -s "$iso.json" ]; then
  log "reusing $iso"
  echo "$iso"; exit 0
fi
started=$(date +%s)

tarball=$OUT/live-rootfs-$pkgs_key.tar
if [ ! -s "$tarball" ]; then
  root=$(mktemp -d "$OUT/rootfs.XXXXXX")
  trap 'drop_tree "$root"' EXIT
  log "debootstrap of the live system from $MIRROR (once per package list; cached in $tarball)"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 \
    || { tail -20 "$OUT/debootstrap.log" >&2; exit 1; }
  # The packages with apt in the new root (debootstrap's own resolver stumbles on podman's dependencies).
  mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  echo "deb $MIRROR bookworm main" >"$root/etc/apt/sources.list"
  { chroot "$root" apt-get update -q && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q \
      --no-install-recommends $(grep -v '^#' container/iso/packages.txt); } >>"$OUT/debootstrap.log" 2>&1 \
    || { tail -30 "$OUT/debootstrap.log" >&2; exit 1; }
  chroot "$root" apt-get clean
  umount -l "$root/proc" "$root/sys" "$root/dev"
  # Drivers a discovery host never needs (graphics, sound, radios, cameras): a third of the modules' size.
  kver=$(basename "$(ls -d "$root"/lib/modules/*)")
  for d in drivers/gpu drivers/media sound drivers/net/wireless net/wireless net/mac80211 drivers/bluetooth \
           net/bluetooth drivers/infiniband drivers/staging drivers/iio drivers/input/touchscreen drivers/hid; do
    rm -rf "$root/lib/modules/$kver/kernel/$d"
  done
  chroot "$root" depmod "$kver"
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  drop_tree "$root"
  trap - EXIT
fi

live=$OUT/live-$live_key
if [ ! -s "$live/filesystem.squashfs" ]; then
root=$(mktemp -d "$OUT/live.XXXXXX")
trap 'drop_tree "$root"' EXIT
tar -C "$root" -xf "$tarball"

log "configuring the live system"
# DHCP on every NIC (networkd), names from resolved; network-online as soon as one NIC is up.
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseHostname=yes\nUseNTP=yes\n' \
  >"$root/etc/systemd/network/90-dhcp.network"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=300\n' \
  >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf"
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
chroot "$root" systemctl enable systemd-networkd systemd-resolved chrony >/dev/null 2>&1
# chrony: no public pool (the lab has no way out); the agent's ntp-synchronizer step adds the sources it is given.
sed -i -e '/^pool /d' -e '/^server /d' "$root/etc/chrony/chrony.conf"
# The hostname comes from DHCP (unique per machine), as on a discovery host.
rm -f "$root/etc/hostname"
# podman: its store on a tmpfs of its own (overlay cannot sit on the live system's overlay root); containers
# that name no network share the host's (the stock unit's `cp` needs none, the runner says --net=host).
echo 'tmpfs /var/lib/containers tmpfs mode=0700,size=80% 0 0' >>"$root/etc/fstab"
mkdir -p "$root/var/lib/containers" "$root/etc/containers"
printf '[containers]\nnetns = "host"\n' >"$root/etc/containers/containers.conf"
# root logs in on the serial console without a password (a lab machine; SSH keys come from the Ignition).
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %%I $TERM\n' \
  >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
install -m 0755 container/iso/ignition-apply "$root/usr/local/sbin/ignition-apply"
cat >"$root/etc/systemd/system/assisted-ignition.service" <<'EOF'
[Unit]
Description=Apply the infra-env's Ignition from the discovery ISO's reserved area
After=local-fs.target
Before=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ignition-apply

[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable assisted-ignition.service >/dev/null 2>&1
echo "discovery" >"$root/etc/issue.net"

log "making the squashfs (cached in $live)"
mkdir -p "$live.tmp"
cp "$root"/boot/vmlinuz-* "$live.tmp/vmlinuz"
cp "$root"/boot/initrd.img-* "$live.tmp/initrd.img"
mksquashfs "$root" "$live.tmp/filesystem.squashfs" -comp zstd -Xcompression-level 15 -noappend -quiet \
  -e boot -wildcards -e 'proc/*' -e 'sys/*' -e 'dev/*' -e 'run/*' -e 'tmp/*' >/dev/null
rm -rf "$live" && mv "$live.tmp" "$live"
drop_tree "$root"
trap - EXIT
fi

stage=$(mktemp -d "$OUT/stage.XXXXXX")
trap 'drop_tree "$stage"' EXIT
mkdir -p "$stage/live" "$stage/isolinux" "$stage/assisted"
cp "$live"/vmlinuz "$live"/initrd.img "$live"/filesystem.squashfs "$stage/live/"

cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$stage/isolinux/"
cp container/iso/isolinux.cfg "$stage/isolinux/isolinux.cfg"
# The reserved area: a marker line, then NULs, at a sector the service finds once and overwrites per download.
{ printf '#assisted-ignition-area v1 size=%d\n' "$AREA_SIZE"; head -c "$AREA_SIZE" /dev/zero; } \
  | head -c "$AREA_SIZE" >"$stage/assisted/ignition.img"

log "making the ISO"
xorriso -as mkisofs -quiet -o "$iso.tmp" -V DISCOVERY -J -r \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$stage" 2>"$OUT/xorriso.log" \
  || { tail -20 "$OUT/xorriso.log" >&2; exit 1; }
offset=$(xorriso -indev "$iso.tmp" -find /assisted/ignition.img -exec report_lba -- 2>/dev/null \
  | awk '/File data lba:/ {split($0, f, ","); gsub(/[^0-9]/, "", f[2]); print f[2] * 2048; exit}')
[ -n "$offset" ] || { log "the reserved area was not found in the ISO"; exit 1; }
marker=$(dd if="$iso.tmp" bs=1 skip="$offset" count=26 status=none)
[ "$marker" = "#assisted-ignition-area v1" ] || { log "no marker at offset $offset: $marker"; exit 1; }
printf '{"area_offset": %d, "area_size": %d, "build_seconds": %d}\n' "$offset" "$AREA_SIZE" \
  $(( $(date +%s) - started )) >"$iso.json"
mv "$iso.tmp" "$iso"
log "built $iso ($(du -m "$iso" | cut -f1) MiB in $(( $(date +%s) - started )) s)"
echo "$iso"

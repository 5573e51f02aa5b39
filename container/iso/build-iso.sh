#!/usr/bin/env bash
# Builds the discovery ISO the reference service hands out: a Debian bookworm live system (kernel, systemd,
# podman, DHCP on every NIC, chrony) booted by isolinux, with a reserved area the service fills per infra-env.
#
#   bash container/iso/build-iso.sh [--out DIR] [--preload IMAGE=NAME]
#
# --preload puts IMAGE (from podman's store) on the full ISO as a read-only image store under the NAME hosts run it
# by (the service's --agent-image): hosts then start it without pulling it (container/iso/agent-image-store).
#
# Offline from Debian's packages (debootstrap from Debian's mirror; no other download). The root filesystem is
# cached as a tarball keyed by container/iso/packages.txt, the ISO by everything in container/iso/. Prints the
# ISO's path as its last line; beside it NAME.json holds the reserved areas' offsets and sizes, the minimal ISO
# and the boot artifacts (kernel, initrd, rootfs) the service serves for minimal-iso and iPXE (docs/iso.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${ISO_CACHE:-$PWD/.image-cache/iso}
PRELOAD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --preload) PRELOAD=${2:?--preload needs IMAGE=NAME}; shift 2 ;;
    --preload=*) PRELOAD=${1#--preload=}; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
. container/debian-root.sh  # drop_tree, debootstrap_root

pkgs_key=$(grep -v '^#' container/iso/packages.txt | sort | sha256sum | cut -c1-12)
preload_id=""
if [ -n "$PRELOAD" ]; then
  case "$PRELOAD" in *=?*) ;; *) log "--preload IMAGE=NAME, not $PRELOAD"; exit 2 ;; esac
  preload_id=$(podman image inspect --format '{{.Id}}' "${PRELOAD%%=*}") \
    || { log "--preload: ${PRELOAD%%=*} is not in podman's store"; exit 1; }
fi
iso_key=$( (for f in container/iso/*; do echo "$f"; cat "$f"; done; echo "$preload_id ${PRELOAD#*=}") \
  | sha256sum | cut -c1-12)
# The live system (squashfs, kernel, initrd) is made from these; isolinux.cfg only goes into the ISO.
live_key=$( (for f in container/iso/packages.txt container/iso/ignition-apply container/iso/initrd-ignition \
  container/iso/agent-image-store container/iso/hostname-from-dhcp; do
  echo "$f"; cat "$f"; done; sed '/^# ---- the ISOs/q' container/iso/build-iso.sh) | sha256sum | cut -c1-12)
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
  debootstrap_root "$root" "$OUT/debootstrap.log" bookworm "$MIRROR" || exit 1
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
# The hostname comes from DHCP (unique per machine), as on a discovery host: hostname-from-dhcp sets it from
# networkd's lease before network-online (networkd's own request is refused without polkit).
rm -f "$root/etc/hostname"
install -m 0755 container/iso/hostname-from-dhcp "$root/usr/local/sbin/hostname-from-dhcp"
cat >"$root/etc/systemd/system/assisted-hostname.service" <<'UNIT'
[Unit]
Description=Name the host as its DHCP lease says
After=systemd-networkd-wait-online.service
Before=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hostname-from-dhcp

[Install]
WantedBy=network-online.target
UNIT
chroot "$root" systemctl enable assisted-hostname.service >/dev/null 2>&1
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
install -m 0755 container/iso/agent-image-store "$root/usr/local/sbin/agent-image-store"
cat >"$root/etc/systemd/system/assisted-agent-image.service" <<'EOF'
[Unit]
Description=Mount the agent image the discovery ISO carries as podman's additional image store
After=local-fs.target
Before=assisted-ignition.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/agent-image-store

[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable assisted-agent-image.service >/dev/null 2>&1
echo "discovery" >"$root/etc/issue.net"
# Every boot its own machine id, as on other live images: the image's is empty, so systemd makes one as it starts
# (in the live root's tmpfs overlay: each boot of each machine), where one built into the image made every host
# booted from it the same machine (journald's, D-Bus's and networkd's DHCP DUID). Should systemd take it for a
# first boot (this one, 252, does so only for a missing or "uninitialized" id), its wizard would stop the boot to
# ask on the console for a locale and a root password (masked: a discovery host is set up by its image and its
# Ignition), and its presets would enable every unit this image leaves disabled (a preset that enables none).
: >"$root/etc/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"
mkdir -p "$root/etc/systemd/system-preset"
echo 'disable *' >"$root/etc/systemd/system-preset/00-discovery.preset"
chroot "$root" systemctl mask systemd-firstboot.service >/dev/null 2>&1
# What a discovery host never uses, each a process start that costs seconds on an emulated CPU (a lab's TCG
# machine): podman's API service and its restart and auto-update runs (the agent runs podman itself), the
# package and scrub timers, a getty on a screen nobody has (the serial console has its own).
chroot "$root" systemctl mask podman.service podman.socket podman-restart.service podman-auto-update.service \
  podman-auto-update.timer apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer getty@tty1.service systemd-pstore.service >/dev/null 2>&1
# Drivers udev would load for a lab machine's emulated chipset and that nothing uses (watchdog, beeper, mouse).
printf 'blacklist %s\n' iTCO_wdt iTCO_vendor_support pcspkr serio_raw joydev i2c_i801 lpc_ich psmouse \
  >"$root/etc/modprobe.d/assisted-discovery.conf"
# Booted from kernel and initrd (iPXE, the minimal ISO), the Ignition comes in a cpio appended to the initrd, as
# the real image service's pxe-initrd: the initramfs keeps it in /run for ignition-apply.
install -m 0755 container/iso/initrd-ignition "$root/etc/initramfs-tools/scripts/init-bottom/assisted-ignition"
mount -t proc proc "$root/proc"
rm -f "$OUT/initramfs.log"  # a new file, as xorriso.log below
chroot "$root" update-initramfs -u -k all >"$OUT/initramfs.log" 2>&1 || { umount -l "$root/proc"; tail "$OUT/initramfs.log" >&2; exit 1; }
umount -l "$root/proc"

log "making the squashfs (cached in $live)"
mkdir -p "$live.tmp"
cp "$root"/boot/vmlinuz-* "$live.tmp/vmlinuz"
cp "$root"/boot/initrd.img-* "$live.tmp/initrd.img"
# lz4: under emulation (a lab's TCG machines) reading the root costs several times less CPU than zstd or gzip.
mksquashfs "$root" "$live.tmp/filesystem.squashfs" -comp lz4 -Xhc -noappend -quiet \
  -e boot -wildcards -e 'proc/*' -e 'sys/*' -e 'dev/*' -e 'run/*' -e 'tmp/*' >/dev/null
rm -rf "$live" && mv "$live.tmp" "$live"
drop_tree "$root"
trap - EXIT
fi

# ---- the ISOs (the live system above is cached by what comes before this line) ----
# One ISO file system per image type: the full ISO carries the root file system; the minimal ISO only kernel and
# initrd, and its kernel fetches the root from the service (live-boot's fetch=, the real one's rootfs_url).
make_iso() {  # make_iso STAGE OUT: xorriso, isolinux (BIOS) booting the live kernel
  rm -f "$OUT/xorriso.log"  # a new file: the cache may be hard links into a shared one (cp -al)
  xorriso -as mkisofs -quiet -o "$2" -V DISCOVERY -J -r \
    -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table "$1" 2>"$OUT/xorriso.log" \
    || { tail -20 "$OUT/xorriso.log" >&2; exit 1; }
}
offset_of() {  # offset_of ISO PATH [MARKER]: the byte offset of a file's data (plus MARKER's offset in it)
  local lba extra=0
  lba=$(xorriso -indev "$1" -find "$2" -exec report_lba -- 2>/dev/null \
    | awk '/File data lba:/ {split($0, f, ","); gsub(/[^0-9]/, "", f[2]); print f[2]; exit}')
  [ -n "$lba" ] || { log "$2 was not found in $1"; exit 1; }
  if [ $# -gt 2 ]; then
    rm -f "$OUT/member.tmp"
    xorriso -osirrox on -indev "$1" -extract "$2" "$OUT/member.tmp" >/dev/null 2>&1
    extra=$(grep -abo -- "$3" "$OUT/member.tmp" | head -1 | cut -d: -f1)
    rm -f "$OUT/member.tmp"
    [ -n "$extra" ] || { log "no $3 in $2 of $1"; exit 1; }
  fi
  echo $(( lba * 2048 + extra ))
}
check_marker() {  # check_marker ISO OFFSET MARKER
  [ "$(dd if="$1" bs=1 skip="$2" count=${#3} status=none)" = "$3" ] || { log "no $3 at offset $2 of $1"; exit 1; }
}
# The reserved areas: a marker, then NULs (spaces on the kernel's command line), at bytes of the ISO the service
# finds once (NAME.json) and overwrites per download.
area() { { printf '#assisted-ignition-area v1 size=%d\n' "$AREA_SIZE"; head -c "$AREA_SIZE" /dev/zero; } | head -c "$AREA_SIZE"; }
KARGS_MARKER="#assisted-kargs-area"
KARGS_SIZE=512

stage=$(mktemp -d "$OUT/stage.XXXXXX")
trap 'drop_tree "$stage"' EXIT
mkdir -p "$stage/full/live" "$stage/full/isolinux" "$stage/full/assisted" "$stage/minimal/live" \
  "$stage/minimal/isolinux"
cp "$live"/vmlinuz "$live"/initrd.img "$live"/filesystem.squashfs "$stage/full/live/"
cp "$live"/vmlinuz "$live"/initrd.img "$stage/minimal/live/"
for t in full minimal; do
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$stage/$t/isolinux/"
done
cp container/iso/isolinux.cfg "$stage/full/isolinux/isolinux.cfg"
if [ -n "$PRELOAD" ]; then
  pre=$OUT/agent-store-$(echo "$preload_id ${PRELOAD#*=}" | sha256sum | cut -c1-12).squashfs
  if [ ! -s "$pre" ]; then
    log "making the agent image's store for the ISO ($PRELOAD)"
    store=$(mktemp -d "$OUT/store.XXXXXX")
    podman push -q "${PRELOAD%%=*}" "containers-storage:[overlay@$store/root+$store/run]${PRELOAD#*=}"
    # Uncompressed: nothing to decompress on an emulated CPU, and made in seconds (the ISO grows by the image).
    mksquashfs "$store/root" "$pre.tmp" -noI -noD -noF -noX -noappend -quiet >/dev/null
    drop_tree "$store"
    mv "$pre.tmp" "$pre"
  fi
  ln -f "$pre" "$stage/full/assisted/agent-image.squashfs" 2>/dev/null \
    || cp "$pre" "$stage/full/assisted/agent-image.squashfs"
fi
area >"$stage/full/assisted/ignition.img"
# The minimal ISO's area is a second initrd (a cpio the service writes per download, read by initrd-ignition);
# its kernel line ends in an area the service fills with fetch=ROOTFS_URL.
area >"$stage/minimal/live/assisted.img"
awk -v pad="$KARGS_MARKER" -v size="$KARGS_SIZE" '
  /^ *append / { sub(/initrd=\/live\/initrd.img/, "initrd=/live/initrd.img,/live/assisted.img");
                 line = $0 " " pad; while (length(line) < length($0) + 1 + size) line = line " "; print line; next }
  { print }' container/iso/isolinux.cfg >"$stage/minimal/isolinux/isolinux.cfg"

log "making the ISOs"
make_iso "$stage/full" "$iso.tmp"
make_iso "$stage/minimal" "$iso.minimal.tmp"
offset=$(offset_of "$iso.tmp" /assisted/ignition.img)
check_marker "$iso.tmp" "$offset" "#assisted-ignition-area v1"
min_area=$(offset_of "$iso.minimal.tmp" /live/assisted.img)
check_marker "$iso.minimal.tmp" "$min_area" "#assisted-ignition-area v1"
min_kargs=$(offset_of "$iso.minimal.tmp" /isolinux/isolinux.cfg "$KARGS_MARKER")
check_marker "$iso.minimal.tmp" "$min_kargs" "$KARGS_MARKER"
# The boot artifacts (kernel, initrd, rootfs) the service serves as the image service's boot-artifacts.
name=$(basename "$iso" .iso)
ln -f "$live/vmlinuz" "$OUT/$name.vmlinuz" 2>/dev/null || cp "$live/vmlinuz" "$OUT/$name.vmlinuz"
ln -f "$live/initrd.img" "$OUT/$name.initrd.img" 2>/dev/null || cp "$live/initrd.img" "$OUT/$name.initrd.img"
ln -f "$live/filesystem.squashfs" "$OUT/$name.rootfs.img" 2>/dev/null \
  || cp "$live/filesystem.squashfs" "$OUT/$name.rootfs.img"
mv "$iso.minimal.tmp" "$OUT/$name.minimal.iso"
printf '{"area_offset": %d, "area_size": %d, "build_seconds": %d, "minimal_iso": "%s", "minimal_area_offset": %d, "minimal_kargs_offset": %d, "minimal_kargs_size": %d, "kernel": "%s", "initrd": "%s", "rootfs": "%s"}\n' \
  "$offset" "$AREA_SIZE" $(( $(date +%s) - started )) "$name.minimal.iso" "$min_area" "$min_kargs" \
  "$KARGS_SIZE" "$name.vmlinuz" "$name.initrd.img" "$name.rootfs.img" >"$iso.json"
mv "$iso.tmp" "$iso"
log "built $iso ($(du -m "$iso" | cut -f1) MiB; minimal $(du -m "$OUT/$name.minimal.iso" | cut -f1) MiB) in $(( $(date +%s) - started )) s"
echo "$iso"

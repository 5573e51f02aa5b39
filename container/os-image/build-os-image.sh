#!/usr/bin/env bash
# Builds the lab's OS image, the one installs write (the lab's default --os-image): a bootable raw disk with a GPT
# (partition "boot": ext2 with the kernel, initramfs and extlinux, where write-image places the Ignition;
# partition "root": ext4 with Debian bookworm, minimal), compressed with zstd. Its first boot applies that
# Ignition and reports the host's installation done to the service (assisted-firstboot; docs/iso.md).
#
#   bash container/os-image/build-os-image.sh [--out DIR]
#
# Offline from Debian's packages (debootstrap from Debian's mirror; no other download). The root filesystem is
# cached as a tarball keyed by container/os-image/packages.txt, the image by everything in container/os-image/.
# Prints the image's path as its last line; beside it NAME.json holds its sizes, digests and build time.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OS_IMAGE_CACHE:-$PWD/.image-cache/os-image}
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-os-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BOOT_MIB=64
log() { echo "build-os-image.sh: $*" >&2; }
for tool in debootstrap sfdisk mkfs.ext4 mkfs.ext2 zstd; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run 'bash scripts/setup.sh'"; exit 1; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
. container/debian-root.sh  # drop_tree, debootstrap_root

pkgs_key=$(grep -v '^#' container/os-image/packages.txt | sort | sha256sum | cut -c1-12)
image_key=$( (for f in container/os-image/*; do echo "$f"; cat "$f"; done) | sha256sum | cut -c1-12)
image=$OUT/lab-os-$image_key.raw.zst
if [ -s "$image" ] && [ -s "$image.json" ]; then
  log "reusing $image"
  echo "$image"; exit 0
fi
started=$(date +%s)

tarball=$OUT/rootfs-$pkgs_key.tar
if [ ! -s "$tarball" ]; then
  root=$(mktemp -d "$OUT/rootfs.XXXXXX")
  trap 'drop_tree "$root"' EXIT
  log "debootstrap of the OS image's root from $MIRROR (once per package list; cached in $tarball)"
  debootstrap_root "$root" "$OUT/debootstrap.log" bookworm "$MIRROR" || exit 1
  mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  echo "deb $MIRROR bookworm main" >"$root/etc/apt/sources.list"
  # The initramfs: zstd, and only the drivers that find the root disk (virtio, SATA, NVMe, SCSI) and ext4,
  # written before the kernel's package makes the first one.
  mkdir -p "$root/etc/initramfs-tools/conf.d"
  printf 'MODULES=list\nCOMPRESS=zstd\n' >"$root/etc/initramfs-tools/conf.d/lab.conf"
  printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ahci nvme ext4 >"$root/etc/initramfs-tools/modules"
  { chroot "$root" apt-get update -q && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      --no-install-recommends $(grep -v '^#' container/os-image/packages.txt); } >>"$OUT/debootstrap.log" 2>&1 \
    || { tail -30 "$OUT/debootstrap.log" >&2; exit 1; }
  chroot "$root" apt-get clean
  umount -l "$root/proc" "$root/sys" "$root/dev"
  # Drivers a lab machine never needs (graphics, sound, radios, cameras, InfiniBand, staging).
  kver=$(basename "$(ls -d "$root"/lib/modules/*)")
  for d in drivers/gpu drivers/media sound drivers/net/wireless net/wireless net/mac80211 drivers/bluetooth \
           net/bluetooth drivers/infiniband drivers/staging drivers/iio drivers/input/touchscreen drivers/hid \
           drivers/isdn drivers/net/can drivers/usb/gadget drivers/mtd; do
    rm -rf "$root/lib/modules/$kver/kernel/$d"
  done
  chroot "$root" depmod "$kver"
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/* "$root"/etc/resolv.conf
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  drop_tree "$root"
  trap - EXIT
fi

work=$(mktemp -d "$OUT/image.XXXXXX")
mounted=""
cleanup() {
  [ -n "$mounted" ] && { umount "$work/mnt" 2>/dev/null || true; }
  drop_tree "$work"
  rm -f "$image.tmp"
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root" "$work/mnt"
tar -C "$root" -xf "$tarball"

log "configuring the installed system"
boot_uuid=$(cat /proc/sys/kernel/random/uuid)
root_uuid=$(cat /proc/sys/kernel/random/uuid)
printf 'UUID=%s / ext4 defaults,errors=remount-ro 0 1\nUUID=%s /boot ext2 defaults 0 2\n' "$root_uuid" "$boot_uuid" \
  >"$root/etc/fstab"
# DHCP on every NIC (networkd), names from resolved; network-online as soon as one NIC is up.
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseHostname=yes\n' \
  >"$root/etc/systemd/network/90-dhcp.network"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=300\n' \
  >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf"
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
chroot "$root" systemctl enable systemd-networkd systemd-resolved >/dev/null 2>&1
# Periodic housekeeping a lab machine's first minutes do not need (each costs a minute under emulation).
chroot "$root" systemctl mask e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer \
  fstrim.timer systemd-tmpfiles-clean.timer >/dev/null 2>&1
rm -f "$root/etc/hostname"
echo "root:*" | chroot "$root" chpasswd -e
# root logs in on the serial console without a password (a lab machine; SSH keys come from the Ignition).
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %%I $TERM\n' \
  >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
install -m 0755 container/os-image/assisted-firstboot "$root/usr/local/sbin/assisted-firstboot"
cat >"$root/etc/systemd/system/assisted-firstboot.service" <<'EOF'
[Unit]
Description=Apply the Ignition write-image placed and report the installation done to the service
ConditionPathExists=/boot/ignition/config.ign
ConditionPathExists=!/var/lib/assisted/firstboot.done
Wants=network-online.target
After=network-online.target local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/assisted-firstboot
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable assisted-firstboot.service >/dev/null 2>&1
echo "installed" >"$root/etc/issue.net"
kver=$(basename "$(ls -d "$root"/lib/modules/*)")
mkdir -p "$root/boot/extlinux"
cat >"$root/boot/extlinux/extlinux.conf" <<EOF
default debian
prompt 0
timeout 0
label debian
  kernel /vmlinuz-$kver
  append initrd=/initrd.img-$kver root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200n8 net.ifnames=1 mitigations=off init_on_alloc=0 nowatchdog
EOF
# A BLS entry beside it, where write-image's --append-karg edits go (extlinux itself reads extlinux.conf).
mkdir -p "$root/boot/loader/entries"
printf 'title Debian GNU/Linux (lab)\nversion %s\nlinux /vmlinuz-%s\ninitrd /initrd.img-%s\noptions root=UUID=%s ro console=tty0 console=ttyS0,115200n8\n' \
  "$kver" "$kver" "$kver" "$root_uuid" >"$root/boot/loader/entries/debian.conf"
rm -f "$root"/boot/*.old "$root"/boot/System.map-* "$root"/boot/config-*

# What else a lab machine never loads (other filesystems, NICs and storage adapters than a lab's, test modules).
for d in fs/xfs fs/btrfs fs/ocfs2 fs/gfs2 fs/ceph fs/nfs fs/nfsd fs/smb fs/cifs fs/f2fs fs/jfs fs/reiserfs \
         fs/nilfs2 fs/ubifs fs/dlm fs/afs fs/coda fs/orangefs drivers/net/ethernet/mellanox drivers/net/ethernet/chelsio \
         drivers/net/ethernet/qlogic drivers/net/ethernet/broadcom drivers/net/ethernet/sfc drivers/net/ethernet/cavium \
         drivers/scsi/lpfc drivers/scsi/qla2xxx drivers/scsi/mpt3sas drivers/scsi/megaraid drivers/scsi/bfa \
         drivers/scsi/aacraid drivers/scsi/be2iscsi drivers/scsi/qedf drivers/scsi/qedi drivers/scsi/mpi3mr \
         drivers/target drivers/thunderbolt drivers/net/usb drivers/usb/serial drivers/atm drivers/net/hamradio; do
  rm -rf "$root/lib/modules/$kver/kernel/$d"
done
find "$root/lib/modules/$kver/kernel/lib" -name 'test_*.ko' -delete
chroot "$root" depmod "$kver"

# The two filesystems are made from directories (mke2fs -d: no mount, no partition devices), then placed in a
# GPT disk at their partitions' offsets. Sizes: the boot partition BOOT_MIB, the root what it holds plus a fifth
# and 128 MiB (a lab machine writes little to it).
mv "$root/boot" "$work/boot" && mkdir "$root/boot"
used_kib=$(du -sk "$root" | cut -f1)
root_mib=$(( used_kib * 6 / 5 / 1024 + 128 ))
truncate -s "${BOOT_MIB}M" "$work/boot.img"
mkfs.ext2 -q -L boot -U "$boot_uuid" -d "$work/boot" "$work/boot.img"
truncate -s "${root_mib}M" "$work/root.img"
mkfs.ext4 -q -L root -U "$root_uuid" -d "$root" "$work/root.img"
# extlinux installs into a mounted filesystem: the boot filesystem's file, through a loop device.
mount -o loop "$work/boot.img" "$work/mnt"
mounted=yes
"$root/usr/bin/extlinux" --install "$work/mnt/extlinux" >/dev/null
umount "$work/mnt"
mounted=""
raw=$work/disk.raw
truncate -s $(( (1 + BOOT_MIB + root_mib + 1) * 1024 * 1024 )) "$raw"
sfdisk --quiet --label gpt "$raw" <<EOF
start=1MiB, size=${BOOT_MIB}MiB, type=L, name=boot, attrs="LegacyBIOSBootable"
size=${root_mib}MiB, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=root
EOF
dd if="$work/boot.img" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
# extlinux's boot sector finds its files by the partition's first sector ("hidden sectors", offset 28), which a
# filesystem made in a file cannot know: the boot partition's, 2048 (1 MiB), little-endian.
printf '\000\010\000\000' | dd of="$raw" bs=1 seek=$(( 1048576 + 28 )) conv=notrunc status=none
dd if="$work/root.img" of="$raw" bs=1M seek=$(( 1 + BOOT_MIB )) conv=notrunc,sparse status=none
# The protective MBR's boot code: gptmbr.bin boots the partition marked LegacyBIOSBootable (BIOS machines).
dd if="$root/usr/lib/syslinux/mbr/gptmbr.bin" of="$raw" bs=440 count=1 conv=notrunc status=none

log "compressing with zstd"
raw_sha=$(sha256sum "$raw" | cut -d' ' -f1)
zstd -q -${ZSTD_LEVEL:-12} -T0 -f "$raw" -o "$image.tmp"
printf '{"raw_bytes": %d, "raw_sha256": "%s", "image_bytes": %d, "root_mib": %d, "boot_mib": %d, "kernel": "%s", "build_seconds": %d}\n' \
  "$(stat -c %s "$raw")" "$raw_sha" "$(stat -c %s "$image.tmp")" "$root_mib" "$BOOT_MIB" "$kver" \
  $(( $(date +%s) - started )) >"$image.json"
mv "$image.tmp" "$image"
log "built $image ($(( $(stat -c %s "$image") >> 20 )) MiB, $(( $(stat -c %s "$raw") >> 20 )) MiB raw, in $(( $(date +%s) - started )) s)"
echo "$image"

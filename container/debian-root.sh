# Sourced by container/iso/build-iso.sh and container/os-image/build-os-image.sh (from the project's root, with
# log() defined): making a Debian root with debootstrap, and removing one.

# A debootstrap that failed half-way may leave /proc, /sys or /dev mounted in its root: never delete through them.
drop_tree() {
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$1"
}

# debootstrap_root ROOT LOG SUITE MIRROR: a minbase root. Debian's mirror is across the Internet, and one fetch
# that fails (a dropped connection, a mirror mid-sync: "Failed getting release file", seen in a CI run) must not
# fail a build of several minutes, so a failed run is started again from an empty root, three times in all, after
# 15 then 30 s (DEBIAN_RETRY_SECONDS=15: the first pause; tests that fail debootstrap on purpose set it to 0).
debootstrap_root() {
  local root=$1 logfile=$2 suite=$3 mirror=$4 attempt pause=${DEBIAN_RETRY_SECONDS:-15}
  for attempt in 1 2 3; do
    if debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$logfile" 2>&1; then
      return 0
    fi
    tail -5 "$logfile" >&2
    if [ "$attempt" = 3 ]; then
      log "debootstrap of $suite from $mirror failed 3 times (its log: $logfile)"
      return 1
    fi
    log "debootstrap failed (attempt $attempt of 3); starting again from an empty root in $((attempt * pause)) s"
    drop_tree "$root"
    mkdir -p "$root"
    sleep $((attempt * pause))
  done
}

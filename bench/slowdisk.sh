# slowdisk.sh - sourced by bench/matrix.sh (SLOW_DISK=equal|slow): gives
# each node's data directory a disk of its own, and with "slow" makes node
# 3's disk a tenth as fast as the others for the writes the node makes.
#
#   slowdisk_setup WORK N    WORK/nI (I = 1..N) become mount points of
#                            ext4 images WORK/diskI.img on loop devices
#                            (direct I/O, so the loop adds no page cache of
#                            its own); with SLOW_DISK=slow, also the blkio
#                            cgroup SLOWDISK_CGROUP (exported) that throttles
#                            writes to node N's device
#   slowdisk_teardown        unmount, detach, remove the images and cgroup
#
# The throttle: the write rate of node N's device is measured first in
# the same run (dd of 4 KiB and of 1 MiB blocks with O_DIRECT and O_DSYNC,
# as raft_uv writes its log), then the cgroup v1 blkio throttle caps the
# device at a tenth of both, in operations/s and in bytes/s, for the
# processes in the cgroup (matrix.sh starts node N inside it). It throttles
# what a process submits itself: raft's O_DIRECT log writes and its
# fsyncs' flushes, not the kernel's writeback of the topic logs' page
# cache. Needs root, loop devices and the blkio controller; prints the
# reason and fails otherwise. The measured and capped rates go to stderr
# and, as a SLOWDISK line, to RAW when matrix.sh set it.

SLOWDISK_LOOPS=()
SLOWDISK_MOUNTS=()
SLOWDISK_IMAGES=()
SLOWDISK_CGROUP=""

# dd's rate line -> bytes/s
slowdisk__dd_rate() { # args of dd
    dd "$@" 2>&1 | awk '/copied/ { print int($1 / $(NF-3)) }'
}

slowdisk_setup() { # work n
    local work=$1 n=$2 i img dev
    if [ "$(id -u)" != 0 ]; then
        echo "slowdisk: needs root (loop devices, mount, blkio cgroup)" >&2
        return 1
    fi
    for i in $(seq 1 "$n"); do
        img=$work/disk$i.img
        truncate -s "${SLOWDISK_IMAGE_SIZE:-4G}" "$img" || return 1
        SLOWDISK_IMAGES+=("$img")
        dev=$(losetup -f --show --direct-io=on "$img") || { echo "slowdisk: losetup failed" >&2; return 1; }
        SLOWDISK_LOOPS+=("$dev")
        mkfs.ext4 -q -F "$dev" || return 1
        mkdir -p "$work/n$i"
        mount "$dev" "$work/n$i" || return 1
        SLOWDISK_MOUNTS+=("$work/n$i")
    done
    dev=${SLOWDISK_LOOPS[$((n - 1))]}
    local probe=$work/n$n/.slowdisk-probe
    local bps iops
    bps=$(slowdisk__dd_rate if=/dev/zero of="$probe" bs=1M count=100 oflag=direct,dsync)
    iops=$(($(slowdisk__dd_rate if=/dev/zero of="$probe" bs=4k count=1000 oflag=direct,dsync) / 4096))
    rm -f "$probe"
    echo "slowdisk: node $n's device $dev writes ${bps} B/s in 1 MiB blocks, ${iops} 4 KiB writes/s" >&2
    local line="SLOWDISK mode=${SLOW_DISK:-equal} device_bps=$bps device_iops=$iops"
    if [ "${SLOW_DISK:-}" = slow ]; then
        local blkio=/sys/fs/cgroup/blkio
        [ -w "$blkio/cgroup.procs" ] || { echo "slowdisk: no blkio cgroup at $blkio" >&2; return 1; }
        SLOWDISK_CGROUP=$blkio/tally-slowdisk-$$
        mkdir -p "$SLOWDISK_CGROUP" || return 1
        local majmin
        majmin=$(lsblk -dno MAJ:MIN "$dev" | tr -d ' ')
        echo "$majmin $((bps / 10))" >"$SLOWDISK_CGROUP/blkio.throttle.write_bps_device" || return 1
        echo "$majmin $((iops / 10))" >"$SLOWDISK_CGROUP/blkio.throttle.write_iops_device" || return 1
        # Check that it bites: the same 4 KiB writes from inside the cgroup.
        local slow_iops
        slow_iops=$(sh -c 'echo $$ > "$1"/cgroup.procs && shift && exec "$@"' sh "$SLOWDISK_CGROUP" \
            dd if=/dev/zero of="$probe" bs=4k count=100 oflag=direct,dsync 2>&1 |
            awk '/copied/ { print int($1 / $(NF-3) / 4096) }')
        rm -f "$probe"
        echo "slowdisk: throttled to $((bps / 10)) B/s and $((iops / 10)) writes/s; measured through it: ${slow_iops} 4 KiB writes/s" >&2
        line="$line cap_bps=$((bps / 10)) cap_iops=$((iops / 10)) throttled_iops=$slow_iops"
        export SLOWDISK_CGROUP
    fi
    if [ -n "${RAW:-}" ]; then echo "$line" >>"$RAW"; fi
}

slowdisk_teardown() {
    local m d img
    for m in "${SLOWDISK_MOUNTS[@]:-}"; do
        [ -n "$m" ] || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$m" 2>/dev/null && break; sleep 0.5; done
    done
    for d in "${SLOWDISK_LOOPS[@]:-}"; do [ -n "$d" ] && losetup -d "$d" 2>/dev/null; done
    for img in "${SLOWDISK_IMAGES[@]:-}"; do [ -n "$img" ] && rm -f "$img"; done
    if [ -n "$SLOWDISK_CGROUP" ]; then rmdir "$SLOWDISK_CGROUP" 2>/dev/null || true; fi
    SLOWDISK_MOUNTS=()
    SLOWDISK_LOOPS=()
    SLOWDISK_IMAGES=()
    SLOWDISK_CGROUP=""
}

#!/bin/sh
# bench/compaction.sh: keyed compaction of one big log (src/log/compact.c)
# with the disk's own sequential rates measured in the same run as the
# baseline: 1 GiB written (dd, fdatasync), read back past the page cache
# (dd, O_DIRECT), and the two together (1 GiB / (write s + read s): what
# a job that copied every byte it read could do at best, reading from
# disk). Not part of make check.
#
# Usage: bench/compaction.sh [BUILD_DIR [WORK_DIR]]
#   BUILD_DIR  a configured build tree without --enable-debug/--enable-sanitize
#              (default: build)
#   WORK_DIR   where the log goes (default: BUILD_DIR/bench-compact.tmp);
#              needs about 2 x TOTAL free, removed afterwards
# Environment: TOTAL=2G KEYS=1000000 VALUE=100 (bytes per value)
#              MAP=64M (compaction_buffer_bytes) RUNS=3
# Prints the disk's lines, each run's line, and the median of the MB/s
# figures with its ratio to the disk's read+write rate.
set -eu
BUILD=${1:-build}
WORK=${2:-$BUILD/bench-compact.tmp}
TOTAL=${TOTAL:-2G}
KEYS=${KEYS:-1000000}
VALUE=${VALUE:-100}
MAP=${MAP:-64M}
RUNS=${RUNS:-3}
BIN=$BUILD/bench/bench-compact
[ -x "$BIN" ] || make -C "$BUILD" bench/bench-compact >/dev/null
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
# The seconds of a dd summary line.
dd_seconds() { echo "$1" | sed -n 's/.* copied, \([0-9.]*\) s,.*/\1/p'; }
w=$(dd if=/dev/zero of="$WORK/dd" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
r=$(dd if="$WORK/dd" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1)
rm -f "$WORK/dd"
disk=$(awk -v w="$(dd_seconds "$w")" -v r="$(dd_seconds "$r")" \
    'BEGIN { printf "%.1f", 1073741824 / 1e6 / (w + r) }')
echo "disk write: $w"
echo "disk read:  $r"
echo "disk read+write: $disk MB/s"
rates=""
i=1
while [ "$i" -le "$RUNS" ]; do
    rm -rf "$WORK/log"
    line=$("$BIN" "$WORK/log" "$TOTAL" "$KEYS" "$VALUE" "$MAP")
    echo "run $i: $line"
    rates="$rates $(echo "$line" | sed -n 's/.*MB\/s=\([0-9.]*\).*/\1/p')"
    i=$((i + 1))
done
median=$(echo "$rates" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median MB/s: $median ($(awk -v m="$median" -v d="$disk" 'BEGIN { printf "%.2f", m / d }') x the disk's read+write)"

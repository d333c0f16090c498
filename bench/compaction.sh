#!/bin/sh
# bench/compaction.sh: keyed compaction of one big log (src/log/compact.c)
# with the disk's own sequential write rate measured in the same run as
# the baseline. Not part of make check.
#
# Usage: bench/compaction.sh [BUILD_DIR [WORK_DIR]]
#   BUILD_DIR  a configured build tree without --enable-debug/--enable-sanitize
#              (default: build)
#   WORK_DIR   where the log goes (default: BUILD_DIR/bench-compact.tmp);
#              needs about 2 x TOTAL free, removed afterwards
# Environment: TOTAL=2G KEYS=1000000 VALUE=100 (bytes per value)
#              MAP=64M (compaction_buffer_bytes) RUNS=3
# Prints each run's line and the median of the MB/s figures.
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
echo "disk: $(dd if=/dev/zero of="$WORK/dd" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)"
rm -f "$WORK/dd"
rates=""
i=1
while [ "$i" -le "$RUNS" ]; do
    rm -rf "$WORK/log"
    line=$("$BIN" "$WORK/log" "$TOTAL" "$KEYS" "$VALUE" "$MAP")
    echo "run $i: $line"
    rates="$rates $(echo "$line" | sed -n 's/.*MB\/s=\([0-9.]*\).*/\1/p')"
    i=$((i + 1))
done
echo "median MB/s: $(echo "$rates" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

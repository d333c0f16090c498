#!/bin/sh
# bench/log-append.sh: append throughput of the segmented log (src/log/),
# next to the raw sequential write rate of the same disk measured in the
# same folder in the same run, and the time to open a big and a small log.
# Not part of make check.
#
# Usage: bench/log-append.sh [BUILD_DIR [WORK_DIR]]
#   BUILD_DIR  a configured build tree (default: build). For meaningful
#              numbers use one configured without --enable-debug and
#              --enable-sanitize.
#   WORK_DIR   where the data goes (default: BUILD_DIR/bench-log.tmp); it
#              needs TOTAL + BIG + SMALL of free space, and is removed after.
# Environment (sizes take K, M or G, powers of 1024):
#   TOTAL=1G   bytes appended per throughput run (and written by dd)
#   BATCH=64K  batch size of the throughput runs
#   BIG=4G SMALL=100M  log sizes of the open test
#
# Both rates include making the data durable: dd with conv=fdatasync, the
# log with a final log_sync (the line also shows the rate before that sync,
# i.e. into the page cache). Open times are with a warm page cache: the log
# reads the active segment and a few bytes per sealed segment.
set -eu

BUILD=${1:-build}
WORK=${2:-$BUILD/bench-log.tmp}
TOTAL=${TOTAL:-1G}
BATCH=${BATCH:-64K}
BIG=${BIG:-4G}
SMALL=${SMALL:-100M}

make -s -C "$BUILD" bench/bench-log >/dev/null
BENCH=$BUILD/bench/bench-log

to_bytes() { # 1G -> 1073741824
    echo "$1" | awk '{ n = $0 + 0; u = toupper(substr($0, length($0)));
        if (u == "K") n *= 1024; else if (u == "M") n *= 1048576; else if (u == "G") n *= 1073741824;
        printf "%.0f\n", n }'
}
field() { # field NAME LINE -> value of NAME=value in LINE
    echo "$2" | tr ' ' '\n' | sed -n "s|^$1=||p"
}

rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT INT TERM

echo "# tally log append benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -sr)"
echo "# work dir: $(cd "$WORK" && pwd) on $(df -P "$WORK" | awk 'NR==2 {print $1}')" \
     "($(df -P "$WORK" | awk 'NR==2 {printf "%.0f GiB free", $4 / 1048576}'))"

# Raw sequential write rate of the disk, same folder, same run: measured
# before and after the log runs (virtual disks vary a lot from one minute to
# the next) and the log compared with the mean of the two.
total_bytes=$(to_bytes "$TOTAL")
mb=$((total_bytes / 1048576))
raw_rate() {
    out=$(dd if=/dev/zero of="$WORK/raw.tmp" bs=1M count="$mb" conv=fdatasync 2>&1 | tail -n 1)
    rm -f "$WORK/raw.tmp"
    secs=$(echo "$out" | sed -n 's/.* copied, \([0-9.]*\) s,.*/\1/p')
    awk -v b="$total_bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }'
}
raw1=$(raw_rate)
echo "raw: dd bs=1M count=$mb conv=fdatasync: $raw1 MB/s"

lines=""
for rec in 100 1024; do
    line=$("$BENCH" append "$WORK/append" "$TOTAL" "$rec" "$BATCH")
    rm -rf "$WORK/append"
    lines="$lines$line
"
done
raw2=$(raw_rate)
raw=$(awk -v a="$raw1" -v b="$raw2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
echo "raw: dd again after the log runs: $raw2 MB/s (mean $raw MB/s)"
echo "$lines" | while read -r line; do
    [ -n "$line" ] || continue
    synced=$(field synced_MB/s "$line")
    ratio=$(awk -v a="$synced" -v r="$raw" 'BEGIN { printf "%.2f", a / r }')
    printf 'log: %s-byte records, %s-byte batches (%s records each): %s MB/s, %s records/s durable' \
        "$(field record_bytes "$line")" "$(field batch_bytes "$line")" \
        "$(field records_per_batch "$line")" "$synced" "$(field synced_records/s "$line")"
    printf ' (page cache only: %s MB/s); log/raw = %s\n' "$(field MB/s "$line")" "$ratio"
    echo "   $line"
done

# Time to open a big and a small log (recovery cost must not grow with size).
"$BENCH" append "$WORK/big" "$BIG" 1024 "$BATCH" >/dev/null
"$BENCH" append "$WORK/small" "$SMALL" 1024 "$BATCH" >/dev/null
for which in big small; do
    line=$("$BENCH" open "$WORK/$which" 7)
    # Open scans the active segment in full, so say how big it is.
    active=$(ls "$WORK/$which"/*.seg | tail -n 1)
    echo "open $which log: $(field bytes "$line") bytes in $(field segments "$line") segments" \
         "(active segment $(wc -c < "$active") bytes):" \
         "median $(field median_ms "$line") ms (min $(field min_ms "$line"), max $(field max_ms "$line"))"
done

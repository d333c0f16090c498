#!/bin/bash
# net.sh: the benchmark matrix over a simulated network and with a slow
# follower, against the loopback baseline measured in the same run
# (issue 27). Prints a table of medians and ratios (bench/net_table.py).
#
#   bench/net.sh [REPS]        (default 3 rounds of every configuration)
#
# Network configurations, one fresh cluster each per round, interleaved so
# that the machine's load falls on all of them alike (bench/matrix.sh 1 with):
#   loop     direct loopback (the baseline)
#   proxy0   every Raft and client link through test/lib/delay-proxy at 0 ms
#            (what the proxy itself costs)
#   d0.5 d1 d2   DELAY_MS = CLIENT_DELAY_MS = 0.5, 1, 2 ms one way
# Disk configurations (loopback network), alternated the same way:
#   equal    each node's data on an ext4 image of its own (SLOW_DISK=equal)
#   slow     the same, node 3 (kept a follower) throttled to a tenth of its
#            device's measured write rate (SLOW_DISK=slow; root only)
#
# BINS="NAME=DIR NAME=DIR": run every configuration with each build
# (DIR/tallyd, DIR/tally), interleaved, for before/after figures of a
# change; the tables then compare each build with the first one.
#
# Environment: TALLY_BIN_DIR (a release build's src/), PEERS_DIR (for
# tcp_rtt.c), CONFIGS (default "loop proxy0 d0.5 d1 d2"), DISK_CONFIGS
# (default "equal slow"; empty skips them), N1 N2 N3 N6 (record counts,
# passed to matrix.sh; defaults below), JITTER_MS, OUT (keep the raw files
# there; default a temporary directory, removed).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
REPS=${1:-3}
CONFIGS=${CONFIGS:-loop proxy0 d0.5 d1 d2}
DISK_CONFIGS=${DISK_CONFIGS-equal slow}
export N1=${N1:-1000} N2=${N2:-2000000} N3=${N3:-300000} N6=${N6:-8000}
export PEERS=0
OUT=${OUT:-}
if [ -z "$OUT" ]; then
    OUT=$(mktemp -d "$TOP/bench-net.XXXXXX")
    trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

TOP_BIN=${TALLY_BIN_DIR:-$TOP/build/src}
export DELAY_PROXY=${DELAY_PROXY:-$TOP_BIN/../test/lib/delay-proxy}
export BINDMAP=${BINDMAP:-$TOP_BIN/../test/lib/.libs/libbindmap.so}
BINS=${BINS:-}
[ -n "$BINS" ] || BINS="=$TOP_BIN"

run_one() { # config round
    local cfg=$1 r=$2 env=() b name dir
    for b in $BINS; do
        name=${b%%=*}
        dir=${b#*=}
        run_with "$cfg" "$r" "$dir" "$cfg${name:+@$name}"
    done
}

run_with() { # config round bindir label
    local cfg=$1 r=$2 env=()
    case $cfg in
    loop) ;;
    proxy0) env=(DELAY_MS=0 CLIENT_DELAY_MS=0) ;;
    d*) env=(DELAY_MS="${cfg#d}" CLIENT_DELAY_MS="${cfg#d}") ;;
    equal) env=(SLOW_DISK=equal) ;;
    slow) env=(SLOW_DISK=slow) ;;
    *) echo "net.sh: unknown configuration $cfg" >&2; return 1 ;;
    esac
    log "round $r: $4"
    if ! env "${env[@]}" TALLY_BIN_DIR="$3" RAW_OUT="$OUT/raw-$4-$r.txt" "$TOP/bench/matrix.sh" 1 \
        >>"$OUT/matrix.out" 2>>"$OUT/matrix.err"; then
        echo "net.sh: $4 round $r failed:" >&2
        tail -5 "$OUT/matrix.err" >&2
        return 1
    fi
}

log "net.sh: $REPS rounds of: $CONFIGS | $DISK_CONFIGS; raw files in $OUT"
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPS"); do
    for cfg in $CONFIGS; do run_one "$cfg" "$r"; done
done
for r in $(seq 1 "$REPS"); do
    for cfg in $DISK_CONFIGS; do run_one "$cfg" "$r"; done
done
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
names=()
for b in $BINS; do [ -z "${b%%=*}" ] || names+=("${b%%=*}"); done
python3 "$TOP/bench/net_table.py" "$OUT" "${names[@]}"

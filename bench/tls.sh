#!/bin/sh
# bench/tls.sh: produce throughput and latency with TLS and authentication
# on every link (TLS on the client port, the producer logged in with
# SCRAM-SHA-256 on a cluster with auth = required, mutual TLS between the
# nodes) against plaintext without authentication, in the
# same run: each round starts a fresh plaintext 3-node cluster and a fresh
# TLS one (in alternating order, so that a drift of the machine's load
# does not favour one), runs the same three loads on each, and the script
# prints every figure, the medians and the TLS/plaintext ratios.
# Not part of make check.
#
# Usage: bench/tls.sh [BUILD_DIR [ROUNDS]]
#   BUILD_DIR  a configured build tree without --enable-debug/--enable-sanitize
#              (default: build)
#   ROUNDS     default 3
# Loads (tally bench produce, random bytes, acknowledged = committed):
#   b100   batched, 100 B records: --count N100 --inflight 200000 --pipeline 8
#          --batch-bytes 262144 --linger-ms 2   (N100 default 300000)
#   b1k    the same with 1 KiB records           (N1K default 100000)
#   one    one record of 100 B in flight: --count NONE --inflight 1 (p50)
#          (NONE default 2000)
# Ports: client 7561-7563, Raft 7661-7663. Data in WORK (default
# BUILD_DIR/bench-tls.tmp), removed at the end.
set -eu
BUILD=${1:-build}
ROUNDS=${2:-3}
N100=${N100:-300000}
N1K=${N1K:-100000}
NONE=${NONE:-2000}
WORK=${WORK:-$BUILD/bench-tls.tmp}
TOP=$(cd "$(dirname "$0")/.." && pwd)
TALLYD=$BUILD/src/tallyd
TALLY=$BUILD/src/tally
[ -x "$TALLYD" ] && [ -x "$TALLY" ] || { echo "bench/tls.sh: build $BUILD first" >&2; exit 2; }
rm -rf "$WORK"
mkdir -p "$WORK"
"$TOP/deploy/make-certs.sh" "$WORK/certs" 3 >/dev/null
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

BROKERS=127.0.0.1:7561,127.0.0.1:7562,127.0.0.1:7563

# start MODE: a fresh cluster, plaintext (MODE=plain) or TLS (MODE=tls).
start() {
    PIDS=""
    rm -rf "$WORK/data"
    for i in 1 2 3; do
        mkdir -p "$WORK/data/node$i"
        set -- --id "$i" --data "$WORK/data/node$i" --listen "127.0.0.1:756$i" \
            --raft "127.0.0.1:766$i" --bootstrap \
            --peer 1=127.0.0.1:7561/127.0.0.1:7661 --peer 2=127.0.0.1:7562/127.0.0.1:7662 \
            --peer 3=127.0.0.1:7563/127.0.0.1:7663
        if [ "$MODE" = tls ]; then
            set -- "$@" --tls-cert "$WORK/certs/node$i.crt" --tls-key "$WORK/certs/node$i.key" \
                --tls-ca "$WORK/certs/ca.crt" --set auth=required
        fi
        "$TALLYD" "$@" >"$WORK/node$i.$MODE.log" 2>&1 &
        PIDS="$PIDS $!"
    done
    i=0
    until admin_cli status >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "bench/tls.sh: no leader ($MODE)" >&2; exit 1; }
        sleep 0.1
    done
    # status answers before a leader is known: wait for a write to work.
    i=0
    until admin_cli topic create b100 >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "bench/tls.sh: cannot create topics ($MODE)" >&2; exit 1; }
        sleep 0.1
    done
    admin_cli topic create b1k >/dev/null
    admin_cli topic create one >/dev/null
    if [ "$MODE" = tls ]; then
        echo bench-password | admin_cli user add bench >/dev/null
    fi
}

stop() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    PIDS=""
}

# The benchmark's client: on the TLS cluster, logged in as user "bench".
tally_cli() {
    if [ "$MODE" = tls ]; then
        TALLY_PASSWORD=bench-password "$TALLY" -b "$BROKERS" --tls-ca "$WORK/certs/ca.crt" \
            --user bench "$@"
    else
        "$TALLY" -b "$BROKERS" "$@"
    fi
}

# The administrator: on the TLS cluster, the client certificate.
admin_cli() {
    if [ "$MODE" = tls ]; then
        "$TALLY" -b "$BROKERS" --tls-ca "$WORK/certs/ca.crt" --tls-cert "$WORK/certs/client.crt" \
            --tls-key "$WORK/certs/client.key" "$@"
    else
        "$TALLY" -b "$BROKERS" "$@"
    fi
}

# field NAME LINE: the value of NAME=... in a bench result line.
field() {
    echo "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

median() {
    tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# Each mode's figures, one word per round: R_<mode>_<load>.
R_plain_b100="" R_plain_b1k="" R_plain_one="" R_tls_b100="" R_tls_b1k="" R_tls_one=""
round=1
while [ "$round" -le "$ROUNDS" ]; do
    if [ $((round % 2)) -eq 1 ]; then order="plain tls"; else order="tls plain"; fi
    for MODE in $order; do
        start
        l100=$(tally_cli bench produce b100 --count "$N100" --size 100 --inflight 200000 \
            --pipeline 8 --batch-bytes 262144 --linger-ms 2 2>/dev/null | tail -n 1)
        l1k=$(tally_cli bench produce b1k --count "$N1K" --size 1024 --inflight 200000 \
            --pipeline 8 --batch-bytes 262144 --linger-ms 2 2>/dev/null | tail -n 1)
        lone=$(tally_cli bench produce one --count "$NONE" --size 100 --inflight 1 \
            2>/dev/null | tail -n 1)
        stop
        echo "round $round $MODE b100: $l100"
        echo "round $round $MODE b1k:  $l1k"
        echo "round $round $MODE one:  $lone"
        eval "R_${MODE}_b100=\"\$R_${MODE}_b100 $(field MB/s "$l100")\""
        eval "R_${MODE}_b1k=\"\$R_${MODE}_b1k $(field MB/s "$l1k")\""
        eval "R_${MODE}_one=\"\$R_${MODE}_one $(field p50_ms "$lone")\""
    done
    round=$((round + 1))
done

p100=$(echo "$R_plain_b100" | median) t100=$(echo "$R_tls_b100" | median)
p1k=$(echo "$R_plain_b1k" | median) t1k=$(echo "$R_tls_b1k" | median)
pone=$(echo "$R_plain_one" | median) tone=$(echo "$R_tls_one" | median)
echo "median batched 100 B MB/s: plaintext $p100, TLS $t100, ratio $(echo "$t100 $p100" | awk '{printf "%.2f", $1 / $2}')"
echo "median batched 1 KiB MB/s: plaintext $p1k, TLS $t1k, ratio $(echo "$t1k $p1k" | awk '{printf "%.2f", $1 / $2}')"
echo "median one in flight p50 ms: plaintext $pone, TLS $tone, ratio $(echo "$tone $pone" | awk '{printf "%.2f", $1 / $2}')"

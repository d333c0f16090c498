#!/bin/bash
# cluster.sh: figures for a fresh local 3-node cluster on this machine,
# each next to its baseline measured in the same run.
#
#   bench/cluster.sh [ROUNDS]     (default 3 rounds; medians are printed)
#
# 1. the disk's write+fdatasync latency (bench/fsync_baseline.py);
# 2. sequential single-record produce, 100 B, one in flight: p50/p99;
# 3. produce throughput with many records per request (1000 x 100 B);
# 4. failover: SIGKILL the leader, time until a produce is acknowledged.
# Uses build/src binaries (or TALLY_BIN_DIR) and ports 7301-7303/7401-7403.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TALLY_BIN_DIR:-$TOP/build/src}
ROUNDS=${1:-3}
WORK=$(mktemp -d "$TOP/bench-run.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
export TALLY_BROKERS=127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303
PEERS=()
for i in 1 2 3; do PEERS+=(--peer "$i=127.0.0.1:$((7300 + i))/127.0.0.1:$((7400 + i))"); done

start_node() { # i
    "$BIN/tallyd" --id "$1" --data "$WORK/n$1" --listen "127.0.0.1:$((7300 + $1))" \
        --raft "127.0.0.1:$((7400 + $1))" "${PEERS[@]}" --bootstrap --log-level warn \
        2>>"$WORK/n$1.log" &
    PIDS[$1]=$!
}
leader_id() {
    "$BIN/tally" status --json 2>/dev/null | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["leader_id"])' 2>/dev/null || echo 0
}
wait_leader() {
    for _ in $(seq 1 300); do
        l=$(leader_id)
        if [ "$l" != 0 ] && "$BIN/tally" topic list >/dev/null 2>&1; then echo "$l"; return 0; fi
        sleep 0.1
    done
    echo "no leader" >&2; return 1
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { tr " " "\n" | sed -n "s|^$1=||p"; }

if ss -ltn | grep -qE '127.0.0.1:7(30|40)[1-3] '; then
    echo "cluster.sh: ports 7301-7303/7401-7403 are in use; stop what listens there" >&2
    exit 1
fi
declare -a FS SEQ50 SEQ99 SEQR THR FO
for r in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK"/n* && mkdir -p "$WORK"
    fs=$(python3 "$TOP/bench/fsync_baseline.py" "$WORK" 2000)
    for i in 1 2 3; do start_node "$i"; done
    wait_leader >/dev/null
    "$BIN/tally" topic create bench >/dev/null
    seq=$("$BIN/tally" bench produce bench --count 3000 --size 100 --producers 1 --batch 1 2>/dev/null | tail -1)
    thr=$("$BIN/tally" bench produce bench --count 400000 --size 100 --producers 2 --batch 1000 2>/dev/null | tail -1)
    leader=$(wait_leader)
    t0=$(date +%s.%N)
    kill -9 "${PIDS[$leader]}"
    for _ in $(seq 1 600); do
        if echo x | timeout 5 "$BIN/tally" produce bench --timeout 2000 >/dev/null 2>&1; then break; fi
    done
    t1=$(date +%s.%N)
    fo=$(echo "$t1 - $t0" | bc)
    for i in 1 2 3; do kill -9 "${PIDS[$i]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "round $r: $fs | seq: $seq | batched: $thr | failover_s=$fo"
    FS+=("$(echo "$fs" | field p50_ms)"); SEQ50+=("$(echo "$seq" | field p50_ms)")
    SEQ99+=("$(echo "$seq" | field p99_ms)"); SEQR+=("$(echo "$seq" | field msgs/s)")
    THR+=("$(echo "$thr" | field msgs/s)"); FO+=("$fo")
done
m() { printf '%s\n' "$@" | median; }
echo
echo "medians of $ROUNDS rounds:"
echo "  disk write+fdatasync 4 KiB p50_ms   $(m "${FS[@]}")"
echo "  produce 1 in flight, 100 B: msgs/s  $(m "${SEQR[@]}")  p50_ms $(m "${SEQ50[@]}")  p99_ms $(m "${SEQ99[@]}")"
echo "  produce 1000 x 100 B per request, 2 producers: msgs/s $(m "${THR[@]}")"
echo "  SIGKILL leader -> next acknowledged produce: seconds $(m "${FO[@]}")"

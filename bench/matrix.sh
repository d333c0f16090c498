#!/bin/bash
# matrix.sh: the standard benchmark matrix of issue 7 on a fresh local
# 3-node cluster, next to the baselines and the peers measured in the same
# run, as one table of medians.
#
#   bench/matrix.sh [REPS]          (default 3 rounds; medians are printed)
#
# Each round, on a fresh cluster (ports 7521-7523, Raft 7621-7623):
#   baseline  the disk's write+fdatasync latency (bench/fsync_baseline.py,
#             4 KiB appends in the same directory as the nodes' data) and
#             the loopback TCP ping-pong (tcp_rtt.c of the peers, 100 B)
#   c1        1 producer, 1 record in flight, 100 B records
#   c2        batched produce, 100 B records
#   c3        batched produce, 1 KiB records
#   c4        consume from a follower: the 100 B topic of c2, the 1 KiB
#             topic of c3 (tally bench consume --node FOLLOWER)
#   c5        failover: SIGKILL the leader, time until the next produce
#             (a fresh `tally produce --timeout 300` in a loop) is
#             acknowledged
# Then, unless PEERS=0, the peers: PEERS_DIR/run-peers.sh nats etcd
# (REPS rounds; it installs what it needs from Debian). Its raw results
# give the JetStream and etcd figures of the table.
#
# Environment:
#   TALLY_BIN_DIR  tallyd and tally (default build/src; use a release build)
#   PEERS=0        skip the peers; PEERS_DIR (default ../shared/bench/peers)
#   QUIET_WAIT     passed to run-peers.sh (default 20 s here, not 120)
#   AUDIT          passed to run-peers.sh (default 0 here: no strace audit)
#   BATCH_ARGS     bench options of the batched cases (default below)
#   N1 N2 N3       record counts of c1, c2, c3
# Raw results are kept in bench-run.*/ only when KEEP=1.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TALLY_BIN_DIR:-$TOP/build/src}
REPS=${1:-3}
PEERS=${PEERS:-1}
PEERS_DIR=${PEERS_DIR:-$(cd "$TOP/.." && pwd)/shared/bench/peers}
N1=${N1:-5000}
N2=${N2:-2000000}
N3=${N3:-300000}
BATCH_ARGS=${BATCH_ARGS:---inflight 200000 --pipeline 8 --batch-bytes 262144 --linger-ms 2}
CPORT=7520
RPORT=7620
WORK=$(mktemp -d "$TOP/bench-run.XXXXXX")
RAW=$WORK/raw.txt
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "raw results kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

for i in 1 2 3; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((CPORT + i))") 2>/dev/null ||
        (exec 3<>"/dev/tcp/127.0.0.1/$((RPORT + i))") 2>/dev/null; then
        echo "matrix.sh: port $((CPORT + i)) or $((RPORT + i)) is in use" >&2
        exit 1
    fi
done
[ -x "$BIN/tallyd" ] && [ -x "$BIN/tally" ] || { echo "matrix.sh: no $BIN/tallyd" >&2; exit 1; }
gcc -O2 -I"$PEERS_DIR" -o "$WORK/tcp_rtt" "$PEERS_DIR/tcp_rtt.c"

export TALLY_BROKERS=127.0.0.1:$((CPORT + 1)),127.0.0.1:$((CPORT + 2)),127.0.0.1:$((CPORT + 3))
PEER_ARGS=()
for i in 1 2 3; do PEER_ARGS+=(--peer "$i=127.0.0.1:$((CPORT + i))/127.0.0.1:$((RPORT + i))"); done
T() { "$BIN/tally" "$@"; }

start_node() { # i
    "$BIN/tallyd" --id "$1" --data "$WORK/n$1" --listen "127.0.0.1:$((CPORT + $1))" \
        --raft "127.0.0.1:$((RPORT + $1))" "${PEER_ARGS[@]}" --bootstrap --log-level info \
        2>>"$WORK/n$1.log" &
    PIDS[$1]=$!
    disown "$!" # no "Killed" notice from bash when the failover case kills it
}
leader_id() {
    T status --json 2>/dev/null | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["leader_id"])' 2>/dev/null || echo 0
}
wait_leader() {
    local l
    for _ in $(seq 1 300); do
        l=$(leader_id)
        if [ "$l" != 0 ] && T topic list >/dev/null 2>&1; then echo "$l"; return 0; fi
        sleep 0.1
    done
    echo "matrix.sh: no leader" >&2
    return 1
}
# run_case NAME ROUND CMD...: run a bench, keep its last stdout line.
run_case() {
    local name=$1 rep=$2 out
    shift 2
    out=$("$@" 2>>"$WORK/bench.err" | tail -1)
    case "$out" in
    msgs/s=*) ;;
    *) echo "matrix.sh: $name failed: $(tail -2 "$WORK/bench.err")" >&2; return 1 ;;
    esac
    echo "TALLY case=$name rep=$rep $out" | tee -a "$RAW" >&2
}

log "tally: $REPS rounds, binaries $BIN, data in $WORK"
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPS"); do
    rm -rf "$WORK"/n1 "$WORK"/n2 "$WORK"/n3
    fs=$(python3 "$TOP/bench/fsync_baseline.py" "$WORK" 2000)
    rtt=$("$WORK/tcp_rtt" 7519 100 20000 | grep '^RESULT')
    echo "BASE rep=$r $fs rtt_p50_us=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$rtt")" \
        "rtt_p99_us=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$rtt") load=$(cut -d' ' -f1 /proc/loadavg)" |
        tee -a "$RAW" >&2
    for i in 1 2 3; do start_node "$i"; done
    wait_leader >/dev/null
    for t in m1 m100 m1k; do T topic create "$t" >/dev/null; done
    # shellcheck disable=SC2086 # BATCH_ARGS is a list of options
    {
        run_case c1 "$r" T bench produce m1 --count "$N1" --size 100 --inflight 1
        run_case c2 "$r" T bench produce m100 --count "$N2" --size 100 $BATCH_ARGS
        run_case c3 "$r" T bench produce m1k --count "$N3" --size 1024 $BATCH_ARGS
    }
    leader=$(wait_leader)
    follower=$((leader % 3 + 1))
    run_case c4_100 "$r" T bench consume m100 --count "$N2" --node "127.0.0.1:$((CPORT + follower))"
    run_case c4_1k "$r" T bench consume m1k --count "$N3" --node "127.0.0.1:$((CPORT + follower))"
    t0=$(date +%s.%N)
    kill -9 "${PIDS[$leader]}"
    ok=0
    for _ in $(seq 1 200); do
        if echo x | timeout 5 "$BIN/tally" produce m1 --timeout 300 >/dev/null 2>&1; then
            ok=1
            break
        fi
    done
    t1=$(date +%s.%N)
    [ "$ok" = 1 ] || { echo "matrix.sh: no write acknowledged after the leader was killed" >&2; exit 1; }
    # When the new leader said it was ready (its log), to split the
    # failover time into the election and the client's part.
    elected=$(python3 - "$t0" "$WORK" "$leader" <<'PY'
import datetime, glob, re, sys
t0, work, killed = float(sys.argv[1]), sys.argv[2], sys.argv[3]
best = None
for path in glob.glob(work + "/n[123].log"):
    if path.endswith("/n%s.log" % killed):
        continue
    for line in open(path, errors="replace"):
        m = re.match(r"(\S+Z) .*leader for term \d+ is ready", line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            if t > t0 and (best is None or t < best):
                best = t
print("%.3f" % (best - t0) if best else "nan")
PY
)
    echo "TALLY case=c5 rep=$r failover_s=$(echo "$t1 - $t0" | bc) leader_ready_s=$elected killed=$leader" |
        tee -a "$RAW" >&2
    for i in 1 2 3; do kill -9 "${PIDS[$i]}" 2>/dev/null || true; done
    for i in 1 2 3; do # disowned: wait for them to be gone
        for _ in $(seq 1 100); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.05; done
    done
    PIDS=()
done
log "load after tally: $(cut -d' ' -f1-3 /proc/loadavg)"

PEER_RAW=""
if [ "$PEERS" = 1 ]; then
    log "peers: $PEERS_DIR/run-peers.sh nats etcd (REPS=$REPS)"
    REPS=$REPS QUIET_WAIT=${QUIET_WAIT:-20} AUDIT=${AUDIT:-0} \
        "$PEERS_DIR/run-peers.sh" nats etcd 2>"$WORK/peers.err" >"$WORK/peers.out" || {
        echo "matrix.sh: run-peers.sh failed:" >&2
        tail -20 "$WORK/peers.err" >&2
        exit 1
    }
    PEER_RAW=$(sed -n 's/.*raw results \(.*\)$/\1/p' "$WORK/peers.err" | head -1)
    log "peers done: $PEER_RAW"
fi
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 "$TOP/bench/matrix_table.py" "$RAW" "$PEER_RAW" "$REPS"

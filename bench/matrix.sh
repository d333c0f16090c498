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
#   c6        16 producers, each with one record (100 B) in flight
#   mem       the nodes' peak RSS (VmHWM) after c1-c3 and c6
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
#   N1 N2 N3 N6    record counts of c1, c2, c3, c6
#   DELAY_MS       run every Raft link (node i -> node j) through
#                  test/lib/delay-proxy with this one-way delay (0 is the
#                  proxy alone); unset: direct loopback
#   CLIENT_DELAY_MS  the same for the clients' links to the nodes (the
#                  usual client addresses, which the proxies then hold)
#   JITTER_MS      +- jitter of both (default 0); RATE_BYTES: a cap in
#                  bytes/s per direction of each connection (default none)
#   DELAY_PROXY    the proxy binary (default: BIN/../test/lib/delay-proxy)
#   SLOW_DISK      "equal": each node's data on a loop-mounted ext4 image
#                  of its own; "slow": the same, and node 3 (kept a
#                  follower) throttled to a tenth of the images' measured
#                  write rate (bench/slowdisk.sh; needs root)
#   RAW_OUT        write the raw result lines to this file (bench/net.sh)
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
N6=${N6:-16000}
BATCH_ARGS=${BATCH_ARGS:---inflight 200000 --pipeline 8 --batch-bytes 262144 --linger-ms 2}
CPORT=${CPORT:-7520} # client ports CPORT+1..3, Raft RPORT+1..3, tcp_rtt CPORT-1
RPORT=${RPORT:-7620}
WORK=$(mktemp -d "$TOP/bench-run.XXXXXX")
RAW=${RAW_OUT:-$WORK/raw.txt}
PIDS=()
PROXY_PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}" "${PROXY_PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${SLOW_DISK:-}" ] && declare -F slowdisk_teardown >/dev/null; then
        for p in "${PIDS[@]:-}"; do # the mounts are busy until the nodes are gone
            for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        done
        slowdisk_teardown
    fi
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

# The delay proxies. Every node keeps its usual addresses (the Raft
# configuration and the --peer lists are those of a real deployment);
# with DELAY_MS, node j binds its Raft port at PPORT + j instead
# (test/lib/libbindmap.so, LD_PRELOAD) and a delay-proxy listens on the
# Raft port everybody dials, RPORT + j; with CLIENT_DELAY_MS the same for
# its client port (bound at PPORT + 10 + j). So every message to node j,
# from a peer or a client, crosses one delayed link.
PPORT=${PPORT:-7700}
DELAY_PROXY=${DELAY_PROXY:-$BIN/../test/lib/delay-proxy}
BINDMAP=${BINDMAP:-$BIN/../test/lib/.libs/libbindmap.so}
start_proxy() { # delay_ms links...
    local d=$1 out
    shift
    out=$WORK/proxy.$RANDOM.out
    "$DELAY_PROXY" --delay-ms "$d" --jitter-ms "${JITTER_MS:-0}" --rate-bytes "${RATE_BYTES:-0}" \
        "$@" >"$out" 2>>"$WORK/proxy.err" &
    PROXY_PIDS+=($!)
    for _ in $(seq 1 100); do grep -q '^ready' "$out" && return 0; sleep 0.05; done
    echo "matrix.sh: delay-proxy did not start: $(cat "$WORK/proxy.err")" >&2
    return 1
}
PROXY_LINKS=()
CLIENT_LINKS=()
for j in 1 2 3; do
    [ -z "${DELAY_MS:-}" ] || PROXY_LINKS+=("$((RPORT + j))=$((PPORT + j))")
    [ -z "${CLIENT_DELAY_MS:-}" ] || CLIENT_LINKS+=("$((CPORT + j))=$((PPORT + 10 + j))")
done
if [ ${#PROXY_LINKS[@]} != 0 ] || [ ${#CLIENT_LINKS[@]} != 0 ]; then
    [ -x "$DELAY_PROXY" ] && [ -f "$BINDMAP" ] ||
        { echo "matrix.sh: no $DELAY_PROXY or $BINDMAP (make them in the build dir)" >&2; exit 1; }
fi
bindmap_of() { # node: its TALLY_BINDMAP
    local m=""
    [ -z "${DELAY_MS:-}" ] || m="127.0.0.1:$((RPORT + $1))=127.0.0.1:$((PPORT + $1))"
    [ -z "${CLIENT_DELAY_MS:-}" ] || m="${m:+$m,}127.0.0.1:$((CPORT + $1))=127.0.0.1:$((PPORT + 10 + $1))"
    echo "$m"
}

export TALLY_BROKERS=127.0.0.1:$((CPORT + 1)),127.0.0.1:$((CPORT + 2)),127.0.0.1:$((CPORT + 3))
PEER_ARGS=()
for i in 1 2 3; do PEER_ARGS+=(--peer "$i=127.0.0.1:$((CPORT + i))/127.0.0.1:$((RPORT + i))"); done
T() { "$BIN/tally" "$@"; }

if [ -n "${SLOW_DISK:-}" ]; then
    # shellcheck source=bench/slowdisk.sh
    . "$TOP/bench/slowdisk.sh"
    slowdisk_setup "$WORK" 3 || exit 1
fi

start_node() { # i
    local cg=/ preload="" map
    map=$(bindmap_of "$1")
    [ -z "$map" ] || preload=$BINDMAP
    # The throttle of bench/slowdisk.sh applies to the processes of its
    # cgroup: the slow node starts from a shell that joined it.
    if [ "${SLOW_DISK:-}" = slow ] && [ "$1" = 3 ]; then cg=$SLOWDISK_CGROUP; fi
    sh -c '[ "$1" = / ] || echo $$ > "$1"/cgroup.procs || exit 1; shift; exec "$@"' sh "$cg" \
        env LD_PRELOAD="$preload" TALLY_BINDMAP="$map" \
        "$BIN/tallyd" --id "$1" --data "$WORK/n$1" --listen "127.0.0.1:$((CPORT + $1))" \
        --raft "127.0.0.1:$((RPORT + $1))" "${PEER_ARGS[@]}" --bootstrap --log-level info \
        2>>"$WORK/n$1.log" &
    PIDS[$1]=$!
    disown "$!" # no "Killed" notice from bash when the failover case kills it
}
peak_rss() { # node: VmHWM in KiB
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/${PIDS[$1]}/status" 2>/dev/null || echo nan
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
log "network: raft links ${DELAY_MS:-direct} ms, client links ${CLIENT_DELAY_MS:-direct} ms, jitter ${JITTER_MS:-0} ms, disks ${SLOW_DISK:-of the tree}"
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPS"); do
    for i in 1 2 3; do
        if [ -n "${SLOW_DISK:-}" ]; then
            find "$WORK/n$i" -mindepth 1 -delete
        else
            rm -rf "$WORK/n$i"
        fi
    done
    fsdir=$WORK
    [ -z "${SLOW_DISK:-}" ] || fsdir=$WORK/n1 # the disk of the (fast) nodes
    fs=$(python3 "$TOP/bench/fsync_baseline.py" "$fsdir" 2000)
    rtt=$("$WORK/tcp_rtt" $((CPORT - 1)) 100 20000 | grep '^RESULT')
    echo "BASE rep=$r $fs rtt_p50_us=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$rtt")" \
        "rtt_p99_us=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$rtt") load=$(cut -d' ' -f1 /proc/loadavg)" |
        tee -a "$RAW" >&2
    # One proxy process per destination node: a process forwards one core's worth, and
    # the leader's two outgoing Raft links carry twice the produce rate.
    for l in "${PROXY_LINKS[@]:-}"; do [ -z "$l" ] || start_proxy "$DELAY_MS" "$l"; done
    for l in "${CLIENT_LINKS[@]:-}"; do [ -z "$l" ] || start_proxy "$CLIENT_DELAY_MS" "$l"; done
    for i in 1 2 3; do start_node "$i"; done
    leader=$(wait_leader)
    if [ "${SLOW_DISK:-}" = slow ] && [ "$leader" = 3 ]; then
        T member transfer 1 >/dev/null # the slow node stays a follower
        for _ in $(seq 1 50); do leader=$(wait_leader); [ "$leader" != 3 ] && break; sleep 0.1; done
        [ "$leader" != 3 ] || { echo "matrix.sh: the slow node 3 stays the leader" >&2; exit 1; }
    fi
    for t in m1 m100 m1k m16; do T topic create "$t" >/dev/null; done
    # shellcheck disable=SC2086 # BATCH_ARGS is a list of options
    {
        run_case c1 "$r" T bench produce m1 --count "$N1" --size 100 --inflight 1
        run_case c2 "$r" T bench produce m100 --count "$N2" --size 100 $BATCH_ARGS
        run_case c3 "$r" T bench produce m1k --count "$N3" --size 1024 $BATCH_ARGS
    }
    run_case c6 "$r" T bench produce m16 --count "$N6" --size 100 --producers 16 --inflight 1
    leader=$(wait_leader)
    echo "TALLY case=mem rep=$r leader=$leader hwm_kib_1=$(peak_rss 1) hwm_kib_2=$(peak_rss 2)" \
        "hwm_kib_3=$(peak_rss 3) leader_hwm_kib=$(peak_rss "$leader")" | tee -a "$RAW" >&2
    follower=$((leader % 3 + 1))
    [ "${SLOW_DISK:-}" = slow ] && [ "$follower" = 3 ] && follower=$((follower % 3 + 1))
    [ "$follower" = "$leader" ] && follower=$((follower % 3 + 1))
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
    for p in "${PIDS[@]}" "${PROXY_PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do # disowned: wait for them to be gone
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    PIDS=()
    PROXY_PIDS=()
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

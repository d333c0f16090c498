#!/bin/bash
# kafka.sh: librdkafka through tallyd's Kafka listener against tally's own
# client, on one fresh local 3-node cluster per round, in the same run.
#
#   bench/kafka.sh [ROUNDS]     (default 3 rounds; medians and ratios printed)
#
# Per round, each on a fresh topic:
#   produce 100 B and 1 KiB: `tally bench produce` (libtally's asynchronous
#     producer, batched; always committed and idempotent) against
#     test/kafka/kafka-bench produce (librdkafka, enable.idempotence=true,
#     acks=all, default batching + linger.ms=5);
#   consume 100 B: `tally bench consume` against kafka-bench consume
#     (librdkafka assign from offset 0), both from the leader.
# Uses build/ (or TALLY_BUILD_DIR) and free ports picked at start.
# With PERF_OUT=DIR, each run also records the leader with `perf record -g`
# into DIR/<run>-r<round>.data (Debian's linux-perf), to see where its CPU
# goes: perf report -i DIR/kafka-consume-r1.data --no-children.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TALLY_BUILD_DIR:-$TOP/build}
BIN=$BUILD/src
KB=$BUILD/test/kafka/kafka-bench
ROUNDS=${1:-3}
N100=${N100:-300000}
N1K=${N1K:-100000}
NATIVE_ARGS="--inflight 200000 --pipeline 8 --batch-bytes 262144 --linger-ms 2"
[ -x "$KB" ] || { echo "kafka.sh: $KB is not built (make -C $BUILD check-norun)" >&2; exit 1; }
WORK=$(mktemp -d "$TOP/bench-run.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
read -r -a P <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(9)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
export TALLY_BROKERS=127.0.0.1:${P[0]},127.0.0.1:${P[1]},127.0.0.1:${P[2]}
BOOT=127.0.0.1:${P[6]},127.0.0.1:${P[7]},127.0.0.1:${P[8]}
start_node() { # i (1-3)
    local i=$1 args=()
    for j in 1 2 3; do
        args+=(--peer "$j=127.0.0.1:${P[$((j - 1))]}/127.0.0.1:${P[$((j + 2))]}")
        [ "$j" = "$i" ] || args+=(--kafka-peer "$j=127.0.0.1:${P[$((j + 5))]}")
    done
    "$BIN/tallyd" --id "$i" --data "$WORK/n$i" --listen "127.0.0.1:${P[$((i - 1))]}" \
        --raft "127.0.0.1:${P[$((i + 2))]}" --kafka "127.0.0.1:${P[$((i + 5))]}" \
        "${args[@]}" --bootstrap --log-level warn 2>>"$WORK/n$i.log" &
    PIDS[$i]=$!
}
wait_writable() {
    for _ in $(seq 1 300); do
        if "$BIN/tally" topic create "warm$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "kafka.sh: no leader" >&2; return 1
}
leader_client() {
    "$BIN/tally" status --json | python3 -c 'import json,sys
s=json.load(sys.stdin); print([m["client"] for m in s["members"] if m["id"]==s["leader_id"]][0])'
}
leader_pid() {
    local id
    id=$("$BIN/tally" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
    echo "${PIDS[$id]}"
}
cpu_s() { # CPU seconds (user + system) used so far by process $1
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); print (f[12] + f[13]) / hz }' "/proc/$1/stat"
}
# Run "$@" (one bench command) and print its last line plus the leader's
# CPU seconds during it: the server's own cost, which a loaded machine's
# scheduling does not distort as much as the wall clock.
timed() { # name pid command...
    local name=$1 pid=$2 c0 c1 out perf=
    shift 2
    if [ -n "${PERF_OUT:-}" ]; then
        mkdir -p "$PERF_OUT"
        perf record -q -F 999 -g -p "$pid" -o "$PERF_OUT/$name-r$r.data" >/dev/null 2>&1 &
        perf=$!
        sleep 0.3
    fi
    c0=$(cpu_s "$pid")
    # The client's own CPU seconds too (its rusage), which says whether the
    # client or the server paced the run.
    out=$(python3 -c 'import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
lines = p.stdout.strip().splitlines()
print((lines[-1] if lines else "") + " client_cpu_s=%.2f" % (u.ru_utime + u.ru_stime))' "$@")
    c1=$(cpu_s "$pid")
    if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" || true; fi
    echo "$out leader_cpu_s=$(python3 -c "print('%.2f' % ($c1 - $c0))")"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { tr " " "\n" | sed -n "s|^$1=||p" | head -n 1; }
declare -a NP1 KP1 NP2 KP2 NC KC CNP1 CKP1 CNP2 CKP2 CNC CKC UNP1 UKP1 UNP2 UKP2 UNC UKC
for r in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK"/n* && mkdir -p "$WORK"
    for i in 1 2 3; do start_node "$i"; done
    wait_writable "$r"
    for t in n100 k100 n1k k1k; do "$BIN/tally" topic create "$t" >/dev/null; done
    lp=$(leader_pid)
    np1=$(timed native-produce-100 "$lp" "$BIN/tally" bench produce n100 --count "$N100" --size 100 $NATIVE_ARGS)
    kp1=$(timed kafka-produce-100 "$lp" "$KB" produce "$BOOT" k100 "$N100" 100)
    np2=$(timed native-produce-1k "$lp" "$BIN/tally" bench produce n1k --count "$N1K" --size 1024 $NATIVE_ARGS)
    kp2=$(timed kafka-produce-1k "$lp" "$KB" produce "$BOOT" k1k "$N1K" 1024)
    lc=$(leader_client)
    nc=$(timed native-consume "$lp" "$BIN/tally" bench consume n100 --count "$N100" --node "$lc")
    kc=$(timed kafka-consume "$lp" "$KB" consume "$BOOT" k100 "$N100")
    for i in 1 2 3; do kill -9 "${PIDS[$i]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "round $r: native 100B: $np1 | kafka 100B: $kp1 | native 1KiB: $np2 | kafka 1KiB: $kp2"
    echo "         native consume: $nc | kafka consume: $kc"
    NP1+=("$(echo "$np1" | field msgs/s)"); KP1+=("$(echo "$kp1" | field msgs/s)")
    NP2+=("$(echo "$np2" | field msgs/s)"); KP2+=("$(echo "$kp2" | field msgs/s)")
    NC+=("$(echo "$nc" | field msgs/s)"); KC+=("$(echo "$kc" | field msgs/s)")
    CNP1+=("$(echo "$np1" | field leader_cpu_s)"); CKP1+=("$(echo "$kp1" | field leader_cpu_s)")
    CNP2+=("$(echo "$np2" | field leader_cpu_s)"); CKP2+=("$(echo "$kp2" | field leader_cpu_s)")
    CNC+=("$(echo "$nc" | field leader_cpu_s)"); CKC+=("$(echo "$kc" | field leader_cpu_s)")
    UNP1+=("$(echo "$np1" | field client_cpu_s)"); UKP1+=("$(echo "$kp1" | field client_cpu_s)")
    UNP2+=("$(echo "$np2" | field client_cpu_s)"); UKP2+=("$(echo "$kp2" | field client_cpu_s)")
    UNC+=("$(echo "$nc" | field client_cpu_s)"); UKC+=("$(echo "$kc" | field client_cpu_s)")
done
m() { printf '%s\n' "$@" | median; }
ratio() { python3 -c "print('%.2f' % ($2 / $1) if $1 > 0 else '-')" ; }
echo
echo "medians of $ROUNDS rounds (msgs/s), Kafka/native:"
a=$(m "${NP1[@]}"); b=$(m "${KP1[@]}"); echo "  produce 100 B   native $a  kafka $b  ratio $(ratio "$a" "$b")"
a=$(m "${NP2[@]}"); b=$(m "${KP2[@]}"); echo "  produce 1 KiB   native $a  kafka $b  ratio $(ratio "$a" "$b")"
a=$(m "${NC[@]}"); b=$(m "${KC[@]}"); echo "  consume 100 B   native $a  kafka $b  ratio $(ratio "$a" "$b")"
echo "medians of the leader's CPU seconds for the same work, Kafka/native:"
a=$(m "${CNP1[@]}"); b=$(m "${CKP1[@]}"); echo "  produce 100 B   native $a  kafka $b  ratio $(ratio "$a" "$b")"
a=$(m "${CNP2[@]}"); b=$(m "${CKP2[@]}"); echo "  produce 1 KiB   native $a  kafka $b  ratio $(ratio "$a" "$b")"
a=$(m "${CNC[@]}"); b=$(m "${CKC[@]}"); echo "  consume 100 B   native $a  kafka $b  ratio $(ratio "$a" "$b")"
echo "medians of the client's CPU seconds for the same work, Kafka/native:"
a=$(m "${UNP1[@]}"); b=$(m "${UKP1[@]}"); echo "  produce 100 B   native $a  kafka $b  ratio $(ratio "$a" "$b")"
a=$(m "${UNP2[@]}"); b=$(m "${UKP2[@]}"); echo "  produce 1 KiB   native $a  kafka $b  ratio $(ratio "$a" "$b")"
a=$(m "${UNC[@]}"); b=$(m "${UKC[@]}"); echo "  consume 100 B   native $a  kafka $b  ratio $(ratio "$a" "$b")"

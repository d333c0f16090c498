#!/bin/bash
# upgrade-raft015.sh: the upgrade from a libraft 0.15 build of
# docs/operations.md ("Upgrading from a libraft 0.15 build"), run on the
# data set of test/data while a writer keeps producing: the three nodes of
# the old build are stopped cleanly (SIGTERM) and started with the new one
# (MODE=restart, the documented way), or replaced one at a time
# (MODE=rolling, which shows why the docs do not use it: a 0.22 follower
# that missed entries cannot catch up from a 0.15 leader). At the end every
# node must serve the same records, each acknowledged one once.
#
#   [MODE=restart|rolling] test/data/upgrade-raft015.sh OLD_BIN_DIR NEW_BIN_DIR
#
# OLD_BIN_DIR: tallyd and tally of the build that wrote the data (f6f14e8,
# libraft 0.15.0; libraft2 must still be installed for it to run).
# NEW_BIN_DIR: this build. Ports 7541-7543 and 7641-7643, as in the data set.
set -eu
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
declare -A PID
WRITER=
cleanup() {
    [ -n "$WRITER" ] && kill "$WRITER" 2>/dev/null || true
    for p in "${PID[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    echo "logs and data kept in $WORK"
}
trap cleanup EXIT
tar -C "$WORK" -xJf "$HERE/raft015-cluster.tar.xz"
BROKERS=127.0.0.1:7541,127.0.0.1:7542,127.0.0.1:7543
PEERS=()
for i in 1 2 3; do PEERS+=(--peer "$i=127.0.0.1:$((7540 + i))/127.0.0.1:$((7640 + i))"); done
start() { # $1 = node, $2 = bin dir
    "$2/tallyd" --id "$1" --data "$WORK/node$1" --listen "127.0.0.1:$((7540 + $1))" \
        --raft "127.0.0.1:$((7640 + $1))" "${PEERS[@]}" >>"$WORK/node$1.log" 2>&1 &
    PID[$1]=$!
    echo "$(date +%T) node $1 started from $2 (pid ${PID[$1]})"
}
stop() {
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}"
    echo "$(date +%T) node $1 stopped (exit $?)"
}
T() { "$NEW/tally" -b "$BROKERS" "$@"; }
applied_everywhere() { # every node at the leader's commit index
    local s
    s=$(T status --json 2>/dev/null) || return 1
    python3 -c '
import json, sys
s = json.loads(sys.argv[1])
ms = s["members"]
ok = s["leader_id"] != 0 and all(m["reachable"] and m["applied_index"] >= s["commit_index"] for m in ms)
sys.exit(0 if ok else 1)' "$s"
}
wait_healthy() {
    for _ in $(seq 1 300); do applied_everywhere && return 0; sleep 0.2; done
    echo "the cluster did not become healthy within 60 s" >&2
    T status >&2 || true
    exit 1
}
for i in 1 2 3; do start "$i" "$OLD"; done
wait_healthy
echo "$(date +%T) old cluster healthy"
# A writer that keeps producing, one record at a time, numbered.
(for n in $(seq 1 100000); do T produce ev "roll-$n" >/dev/null 2>>"$WORK/writer.err" || true; sleep 0.05; done) &
WRITER=$!
sleep 2
if [ "${MODE:-restart}" = rolling ]; then
    for i in 1 2 3; do
        stop "$i"
        sleep 1 # the writer goes on: node $i misses entries
        start "$i" "$NEW"
        wait_healthy
        echo "$(date +%T) node $i runs the new build; cluster healthy"
        sleep 2
    done
else
    t0=$(date +%s.%N)
    for i in 1 2 3; do stop "$i"; done
    for i in 1 2 3; do start "$i" "$NEW"; done
    wait_healthy
    echo "$(date +%T) all three run the new build; cluster healthy $(echo "$(date +%s.%N) - $t0" | bc) s after the first stop"
fi
sleep 2
kill "$WRITER"; wait "$WRITER" 2>/dev/null || true; WRITER=
wait_healthy
# The same records on every node, and every acknowledged roll-N once.
for i in 1 2 3; do
    T consume ev --node "127.0.0.1:$((7540 + i))" --format '%o\t%v\n' >"$WORK/ev.$i"
    T consume kv --node "127.0.0.1:$((7540 + i))" --format '%o\t%k\t%v\n' >"$WORK/kv.$i"
done
cmp "$WORK/ev.1" "$WORK/ev.2" && cmp "$WORK/ev.1" "$WORK/ev.3"
cmp "$WORK/kv.1" "$WORK/kv.2" && cmp "$WORK/kv.1" "$WORK/kv.3"
dups=$(grep -c roll- "$WORK/ev.1" || true)
uniq=$(grep roll- "$WORK/ev.1" | cut -f2 | sort -u | wc -l)
[ "$dups" = "$uniq" ] || { echo "duplicated records: $dups written, $uniq distinct" >&2; exit 1; }
echo "rolling upgrade done: $(wc -l <"$WORK/ev.1") records of ev and $(wc -l <"$WORK/kv.1") of kv identical on all three nodes ($uniq written during the upgrade, none twice; failed produce calls: $(grep -c . "$WORK/writer.err" || true))"
for i in 1 2 3; do stop "$i"; done
PID=()

#!/bin/bash
# make-upgrade-data.sh: write the small data set that test_upgrade.py
# opens with the current build, to prove an upgrade keeps every record,
# key version and group position.
#
#   test/data/make-upgrade-data.sh BIN_DIR OUT.tar.xz
#
# BIN_DIR holds the tallyd and tally of the build whose on-disk state is
# to be kept (raft015-cluster.tar.xz was written by commit f6f14e8, built
# on Debian bookworm's libraft 0.15.0). The script runs a three-node
# cluster on 127.0.0.1 ports 7541-7543 (Raft 7641-7643), writes:
#   kv    a keyed topic: 300 records over 40 keys, then 20 conditional appends
#   ev    a retain topic: 200 unkeyed records
#   group billing at 150 on ev
# with snapshot_threshold=64 so every node has taken Raft snapshots and
# removed older Raft segments, stops the nodes with SIGTERM, and packs
# their data directories plus expected.txt (what the nodes served just
# before they stopped: every record of both topics, each key's version and
# the group's position) into OUT.
set -eu
BIN=$(cd "$1" && pwd)
OUT=$(realpath -m "$2")
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
BROKERS=127.0.0.1:7541,127.0.0.1:7542,127.0.0.1:7543
PEERS=()
for i in 1 2 3; do PEERS+=(--peer "$i=127.0.0.1:$((7540 + i))/127.0.0.1:$((7640 + i))"); done
for i in 1 2 3; do
    mkdir -p "$WORK/node$i"
    "$BIN/tallyd" --id "$i" --data "$WORK/node$i" --listen "127.0.0.1:$((7540 + i))" \
        --raft "127.0.0.1:$((7640 + i))" "${PEERS[@]}" --bootstrap \
        --set snapshot_threshold=64 --set snapshot_trailing=16 \
        --set raft_segment_bytes=1M --set group_commit_bytes=64K --set max_batch_bytes=64K --set segment_bytes=8K \
        >"$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
done
T() { "$BIN/tally" -b "$BROKERS" "$@"; }
for _ in $(seq 1 100); do T status >/dev/null 2>&1 && break; sleep 0.2; done
T topic create kv --policy retain >/dev/null
T topic create ev >/dev/null
for i in $(seq 0 299); do printf 'k%d\tv%d\n' $((i % 40)) "$i"; done | T produce kv --keyed >/dev/null
for i in $(seq 0 199); do echo "event-$i"; done | T produce ev >/dev/null
# Conditional appends: k0..k19 are each at version 8 (300 records over 40
# keys: keys 0..19 got 8, keys 20..39 got 7).
for k in $(seq 0 19); do T produce kv -k "k$k" --expect-version 8 "cond-$k" >/dev/null; done
T consume ev --group billing -n 150 >/dev/null
# Enough small entries after the last writes that every node snapshots.
for i in $(seq 1 70); do T produce ev "tail-$i" >/dev/null; done
sleep 2
{
    echo "# kv"
    T consume kv --format '%o\t%k\t%v\n'
    echo "# ev"
    T consume ev --format '%o\t%k\t%v\n'
    echo "# group billing on ev"
    T consume ev --group billing -n 1 --format '%o\n'
} >"$WORK/expected.txt"
# The group moved to 151 by the read above.
for p in "${PIDS[@]}"; do kill -TERM "$p"; done
for p in "${PIDS[@]}"; do wait "$p" || true; done
PIDS=()
for i in 1 2 3; do
    ls "$WORK/node$i/raft" | grep -q snapshot || { echo "node $i took no snapshot" >&2; exit 1; }
done
rm -f "$WORK"/node*.log
tar -C "$WORK" -cJf "$OUT" node1 node2 node3 expected.txt
echo "wrote $OUT ($(du -h "$OUT" | cut -f1))"

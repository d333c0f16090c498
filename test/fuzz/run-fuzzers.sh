#!/bin/bash
# run-fuzzers.sh [SECONDS]: build the libFuzzer targets and run each one.
#
# Configures build-fuzz/ (CC=clang --enable-fuzzers --enable-sanitize),
# builds test/fuzz/fuzz-proto, fuzz-batch, fuzz-log-recovery, fuzz-kafka,
# fuzz-scram and fuzz-tls, and runs
# each for SECONDS (default 60) on a fresh copy of its seed corpus
# (test/fuzz/corpus/<target>/, copied to build-fuzz/corpus-run/<target>/).
# Prints one line per target:
#   fuzz-X: N runs, 0 crashes
#   fuzz-X: N runs, 1 crash (build-fuzz/crashes/fuzz-X-crash-...)
# and the same lines to build-fuzz/fuzz-summary.txt (test/run-all.sh counts
# them). A crash, leak, timeout or out-of-memory stops that target; its
# input stays in build-fuzz/crashes/ and the end of its log is printed.
# Exit status: 0 if every target ran without a crash, 1 otherwise, 2 if the
# build itself failed. docs/testing.md ("Fuzzing") says how to reproduce.
#
# Environment: TALLY_JOBS (make -j, default 2).
set -u

TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP" || exit 2
# shellcheck source=deploy/setup.sh
. deploy/setup.sh

SECONDS_PER_TARGET=${1:-60}
# libFuzzer reads -max_total_time=0 as "forever", so 0 is refused too.
case $SECONDS_PER_TARGET in
'' | *[!0-9]* | 0*)
    echo "usage: test/fuzz/run-fuzzers.sh [SECONDS]   (SECONDS >= 1, default 60 per target)" >&2
    exit 2
    ;;
esac
JOBS=${TALLY_JOBS:-2}
BDIR=build-fuzz
TARGETS="fuzz-proto fuzz-batch fuzz-log-recovery fuzz-kafka fuzz-scram fuzz-tls"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

tally_install_deps || exit 2
tally_autoreconf "$TOP" || exit 2
if ! tally_configure "$TOP" "$BDIR" CC=clang --enable-fuzzers --enable-sanitize; then
    echo "run-fuzzers: configure failed (see $BDIR/config.log)" >&2
    exit 2
fi
progs=
for t in $TARGETS; do
    progs="$progs test/fuzz/$t"
done
# shellcheck disable=SC2086 # the program list is split on purpose
if ! make -C "$BDIR" -j"$JOBS" $progs; then
    echo "run-fuzzers: build failed" >&2
    exit 2
fi

mkdir -p "$BDIR/crashes" "$BDIR/corpus-run" || exit 2
summary="$BDIR/fuzz-summary.txt"
# Names of the files in the crash dir, sorted.
list_crashes() {
    find "$BDIR/crashes" -maxdepth 1 -type f -printf '%f\n' | sort
}
: >"$summary"
status=0
for t in $TARGETS; do
    corpus="$BDIR/corpus-run/$t"
    log="$BDIR/$t.log"
    rm -rf "$corpus"
    cp -r "test/fuzz/corpus/$t" "$corpus" || exit 2
    before=$(list_crashes)
    echo "run-fuzzers: $t for ${SECONDS_PER_TARGET}s (log: $log)"
    "$BDIR/test/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
        -timeout=25 -print_final_stats=1 -artifact_prefix="$BDIR/crashes/$t-" \
        "$corpus" >"$log" 2>&1
    rv=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
    new=$(comm -13 <(printf '%s\n' "$before") <(list_crashes) | head -n 1)
    if [ $rv -eq 0 ] && [ -z "$new" ]; then
        line="$t: ${runs:-0} runs, 0 crashes"
    else
        status=1
        if [ -n "$new" ]; then
            line="$t: ${runs:-?} runs, 1 crash ($BDIR/crashes/$new)"
        else
            line="$t: ${runs:-?} runs, 1 crash (exit $rv, no input saved; see $log)"
        fi
        echo "======== $t: last 60 lines of $log ========"
        tail -n 60 "$log"
    fi
    echo "$line"
    echo "$line" >>"$summary"
done
echo
echo "################ fuzzing summary (${SECONDS_PER_TARGET}s per target) ################"
cat "$summary"
exit $status

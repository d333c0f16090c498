#!/bin/bash
# run-all.sh: the README's second command, and what .ci/run runs. It installs
# the missing Debian packages, then builds and runs the whole test suite
# (make check: cmocka unit tests and Python integration tests) twice:
#   build/       a normal build
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer (--enable-sanitize)
# and then, as a third stage, runs the libFuzzer targets for a bounded time
# (test/fuzz/run-fuzzers.sh, in build-fuzz/, clang): each target counts as
# one test, passed if it ran without a crash.
# It prints the logs of failing tests, and ends with the line
#   N passed, N failed
# summed over all stages. A build dir whose build broke before its tests
# ran counts as one failure. The exit status is 0 only if nothing failed
# and at least one test ran.
#
# Environment: TALLY_JOBS (make -j, default 2); TALLY_FUZZ_SECONDS (seconds
# per fuzz target, default 30; 0 skips the fuzzing stage).
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
# shellcheck source=deploy/setup.sh
. deploy/setup.sh

JOBS=${TALLY_JOBS:-2}
# Stack traces for UBSan reports; the build already makes them fatal.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

if [ $# -gt 0 ]; then
    echo "usage: test/run-all.sh   (no options; see the header of this file)" >&2
    exit 2
fi

tally_install_deps || exit 1
tally_install_npm_deps "$TOP" || exit 1
tally_autoreconf "$TOP" || exit 1

total_pass=0
total_fail=0
total_skip=0
total_xfail=0
summary=()

# Value of "# NAME: N" in automake's test-suite.log $1, or 0.
count() {
    local n
    n=$(sed -n "s/^# $2: *\([0-9][0-9]*\)\$/\1/p" "$1" | head -n 1)
    echo "${n:-0}"
}

# Print the .log of every test whose .trs says it failed, in build dir $1.
print_failed_logs() {
    local trs log
    while IFS= read -r trs; do
        log=${trs%.trs}.log
        echo
        echo "======== FAILED: ${log#"$TOP"/} (last 300 lines) ========"
        tail -n 300 "$log"
    done < <(grep -l -E '^:test-result: (FAIL|ERROR|XPASS)' -r --include='*.trs' "$1" 2>/dev/null | sort)
}

# Configure, build and check one build dir: $1 = dir, rest = configure flags.
run_build() {
    local bdir=$1 rv pass fail err xpass skip xfail
    shift
    echo
    echo "################ $bdir (configure${*:+ $*}) ################"
    # A test-suite.log left from an earlier run would be counted again if
    # this build breaks before the tests run.
    rm -f "$bdir/test-suite.log"
    if ! tally_configure "$TOP" "$bdir" "$@"; then
        summary+=("$bdir: configure failed (see $bdir/config.log), counted as 1 failure")
        total_fail=$((total_fail + 1))
        return
    fi
    make -C "$bdir" -j"$JOBS" check
    rv=$?
    if [ ! -f "$bdir/test-suite.log" ]; then
        summary+=("$bdir: build failed before any test ran (make exit $rv), counted as 1 failure")
        total_fail=$((total_fail + 1))
        return
    fi
    pass=$(count "$bdir/test-suite.log" PASS)
    fail=$(count "$bdir/test-suite.log" FAIL)
    err=$(count "$bdir/test-suite.log" ERROR)
    xpass=$(count "$bdir/test-suite.log" XPASS)
    skip=$(count "$bdir/test-suite.log" SKIP)
    xfail=$(count "$bdir/test-suite.log" XFAIL)
    # automake treats an unexpected pass as a failure, and so do we.
    fail=$((fail + err + xpass))
    if [ "$fail" -gt 0 ]; then
        print_failed_logs "$TOP/$bdir"
    elif [ $rv -ne 0 ]; then
        # Tests passed but make did not: something after them broke.
        summary+=("$bdir: make check exited $rv after the tests, counted as 1 failure")
        fail=1
    fi
    summary+=("$bdir: $pass passed, $fail failed, $skip skipped, $xfail expected failures")
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    total_skip=$((total_skip + skip))
    total_xfail=$((total_xfail + xfail))
}

# Third stage: every fuzz target for TALLY_FUZZ_SECONDS; one test each.
run_fuzzers() {
    local secs=${TALLY_FUZZ_SECONDS:-30} rv pass fail
    local sum=build-fuzz/fuzz-summary.txt
    case $secs in
    0)
        summary+=("build-fuzz: skipped (TALLY_FUZZ_SECONDS=0)")
        return
        ;;
    '' | *[!0-9]*)
        summary+=("build-fuzz: TALLY_FUZZ_SECONDS='$secs' is not a number, counted as 1 failure")
        total_fail=$((total_fail + 1))
        return
        ;;
    esac
    echo
    echo "################ build-fuzz (libFuzzer, ${secs}s per target) ################"
    rm -f "$sum"
    test/fuzz/run-fuzzers.sh "$secs"
    rv=$?
    if [ ! -s "$sum" ]; then
        summary+=("build-fuzz: fuzzers not built or not run (run-fuzzers.sh exit $rv), counted as 1 failure")
        total_fail=$((total_fail + 1))
        return
    fi
    pass=$(grep -c ', 0 crashes$' "$sum")
    fail=$(grep -vc ', 0 crashes$' "$sum")
    if [ "$fail" -eq 0 ] && [ $rv -ne 0 ]; then
        summary+=("build-fuzz: run-fuzzers.sh exited $rv, counted as 1 failure")
        fail=1
    fi
    while IFS= read -r line; do
        summary+=("build-fuzz: $line")
    done <"$sum"
    summary+=("build-fuzz: $pass passed, $fail failed")
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
}

run_build build
run_build build-asan --enable-sanitize
run_fuzzers

echo
echo "################ summary ################"
printf '%s\n' "${summary[@]}"
if [ $((total_skip + total_xfail)) -gt 0 ]; then
    echo "($total_skip skipped, $total_xfail expected failures; not counted below)"
fi
echo "$total_pass passed, $total_fail failed"
if [ "$total_fail" -gt 0 ] || [ $((total_pass + total_xfail)) -eq 0 ]; then
    exit 1
fi
exit 0

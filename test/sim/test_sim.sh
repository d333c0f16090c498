#!/bin/sh
# make check: 2,000 seeds of the simulation (docs/testing.md, "Simulation").
# TALLY_SIM_SEEDS=A-B and TALLY_SIM_STEPS=N run other ones (a long run).
#
# Known: a seed may end with libraft 0.22.1 leaving a follower behind for
# good after the final heal: the leader sends it heartbeats only
# (docs/testing.md, "Found so far", Open). The simulator recognises that
# stall by what the leader sent (faults.c, stall_signature) and says
# "libraft stall"; such seeds are counted and allowed, any other failing
# seed fails the test. When the cause is fixed or worked around, drop the
# allowance.
src="${TALLY_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
# The ASan + UBSan build (about three times slower) runs the first 500.
default=1-2000
if grep -q '^am__append_[0-9]* = -fsanitize=address' "${TALLY_BUILD_DIR:-$src/build}/Makefile" \
        2>/dev/null; then
    default=1-500
fi
seeds="${TALLY_SIM_SEEDS:-$default}"
start=$(date +%s)
out=$("$src/test/sim/run" --seeds "$seeds" --steps "${TALLY_SIM_STEPS:-3000}")
rv=$?
echo "$out"
echo "simulation: seeds $seeds in $(( $(date +%s) - start )) s"
[ $rv -eq 77 ] && exit 77
[ $rv -gt 1 ] && exit $rv
bad=0
fails=$(mktemp)
printf '%s\n' "$out" | grep -E '^seed [0-9]+ (FAILED|CRASHED)' > "$fails"
stalls=0
while read -r _ seed what rest; do
    if printf '%s' "$rest" | grep -q 'did not settle.*: libraft stall:'; then
        stalls=$((stalls + 1))
    else
        echo "FAIL: seed $seed $what $rest"
        bad=$((bad + 1))
    fi
done < "$fails"
rm -f "$fails"
echo "libraft stalls allowed: $stalls; other failing seeds: $bad"
exit $bad

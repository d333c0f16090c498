#!/bin/sh
# make check: 2,000 seeds of the simulation (docs/testing.md, "Simulation").
# TALLY_SIM_SEEDS=A-B and TALLY_SIM_STEPS=N run other ones (a long run).
#
# Known: with this simulator, seeds 490, 771 and 1176 end with a follower that
# never catches up after the final heal (libraft 0.22.1's progress for it
# ends with next_index == match_index and it gets heartbeats only;
# docs/testing.md "Found so far"). They must fail that way and no other
# seed may fail; when the cause is fixed or worked around, empty
# KNOWN_STALLS.
src="${TALLY_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
# The ASan + UBSan build (about three times slower) runs the first 500.
default=1-2000
if grep -q '^am__append_[0-9]* = -fsanitize=address' "${TALLY_BUILD_DIR:-$src/build}/Makefile" \
        2>/dev/null; then
    default=1-500
fi
seeds="${TALLY_SIM_SEEDS:-$default}"
KNOWN_STALLS="490 771 1176"
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
while read -r _ seed what rest; do
    known=no
    for k in $KNOWN_STALLS; do
        if [ "$seed" = "$k" ] && printf '%s' "$rest" | grep -q 'did not settle'; then
            known=yes
        fi
    done
    if [ $known = no ]; then
        echo "FAIL: seed $seed $what $rest"
        bad=$((bad + 1))
    fi
done < "$fails"
rm -f "$fails"
if [ -z "${TALLY_SIM_SEEDS:-}" ]; then
    for k in $KNOWN_STALLS; do
        [ "$k" -gt "${default#1-}" ] && continue
        if ! printf '%s\n' "$out" | grep -q "^seed $k FAILED: .*did not settle"; then
            echo "FAIL: known stall at seed $k did not happen: update KNOWN_STALLS and docs/testing.md"
            bad=$((bad + 1))
        fi
    done
fi
exit $bad

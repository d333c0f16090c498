#!/bin/sh
# make check: 2,000 seeds of the simulation (docs/testing.md, "Simulation").
# TALLY_SIM_SEEDS=A-B runs another range (a long run: docs/testing.md).
src="${TALLY_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
seeds="${TALLY_SIM_SEEDS:-1-2000}"
start=$(date +%s)
"$src/test/sim/run" --seeds "$seeds" --steps "${TALLY_SIM_STEPS:-3000}"
rv=$?
echo "simulation: seeds $seeds in $(( $(date +%s) - start )) s"
exit $rv

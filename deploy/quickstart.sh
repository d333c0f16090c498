#!/bin/bash
# quickstart.sh: the README's first command. It installs the missing Debian
# packages, builds tally in ./build, starts a three-node cluster on
# 127.0.0.1 under ./run (deploy/local-cluster.sh), creates topic "demo",
# writes and reads a few events, prints the cluster status, and says how to
# stop the cluster. Running it again is safe: finished steps are skipped
# or repeated harmlessly.
#
# Environment: TALLY_JOBS (make -j, default 2), plus the ones of
# deploy/local-cluster.sh (TALLY_RUN_DIR, TALLYD_ARGS, ...).
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
# shellcheck source=deploy/setup.sh
. deploy/setup.sh

# On failure, say where to look and how to clean up.
RUN_DIR=${TALLY_RUN_DIR:-run}
on_exit() {
    local rv=$?
    if [ $rv -ne 0 ]; then
        echo "quickstart: failed (exit $rv). If nodes were started, stop them with" \
            "deploy/local-cluster.sh stop; their logs are $RUN_DIR/node*.log" >&2
    fi
}
trap on_exit EXIT

step() {
    printf '\n==> %s\n' "$*"
}

step "Checking build dependencies (Debian 12 packages)"
tally_install_deps

step "Building in build/"
tally_autoreconf "$TOP"
tally_configure "$TOP" build
make -C build -j"${TALLY_JOBS:-2}"

# This cluster uses the binaries just built, whatever TALLY_BIN_DIR says.
export TALLY_BIN_DIR=$TOP/build/src
TALLY=$TALLY_BIN_DIR/tally
export TALLY_BROKERS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

step "Starting a 3-node cluster on 127.0.0.1 (clients: ports 7001-7003)"
deploy/local-cluster.sh start

step "Creating topic demo"
if ! out=$("$TALLY" topic create demo 2>&1); then
    # A second run finds the topic from the first one: that is fine.
    case "$out" in
    *xists*) echo "topic demo already exists" ;;
    *)
        echo "$out" >&2
        exit 1
        ;;
    esac
else
    [ -z "$out" ] || echo "$out"
fi

step "Producing 3 keyed events (one KEY<TAB>VALUE per line; tally prints each offset)"
offsets=$(printf 'order-1\tcreated\norder-2\tcreated\norder-1\tpaid\n' |
    "$TALLY" produce demo --keyed)
echo "$offsets"
first=$(echo "$offsets" | head -n 1)

step "Consuming them back (offset, key, value)"
"$TALLY" consume demo --from "$first" -n 3

step "Cluster status"
"$TALLY" status

cat <<EOF

The cluster keeps running in the background (data and logs in $RUN_DIR/).
Try:
  export TALLY_BROKERS=$TALLY_BROKERS
  $TALLY produce demo hello
  $TALLY consume demo --from beginning
  deploy/local-cluster.sh status
  deploy/local-cluster.sh stop 2      # stop one node; writes keep working
Stop the cluster with:
  deploy/local-cluster.sh stop
EOF

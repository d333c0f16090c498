#!/bin/bash
# local-cluster.sh: run a three-node tally cluster on 127.0.0.1 for trying
# tally out and for manual tests.
#
#   deploy/local-cluster.sh start [N]     start all nodes (or node N), wait for a leader
#   deploy/local-cluster.sh stop [N]      SIGTERM all nodes (or node N) and wait
#   deploy/local-cluster.sh status        which nodes run, then 'tally status'
#   deploy/local-cluster.sh restart [N]   stop, then start
#   deploy/local-cluster.sh logs N [-f]   show (or follow) node N's log
#
# Node I: client port 7000+I, raft port 7100+I, data $RUN/nodeI, log
# $RUN/nodeI.log, pid file $RUN/nodeI.pid.
#
# Environment:
#   TALLY_RUN_DIR        where the nodes live (default: run/ in the checkout)
#   TALLY_BIN_DIR        where tallyd and tally are (default: build/src if
#                        it has tallyd, else src/)
#   TALLYD_ARGS          extra flags for every tallyd, e.g.
#                        "--log-level debug --set election_timeout_ms=500"
#   TALLY_TLS            1: TLS on every link (docs/security.md); certificates are
#                        made once in $RUN/certs (deploy/make-certs.sh), and the
#                        client commands here use $RUN/certs/ca.crt: for your own
#                        commands, export TALLY_TLS_CA=$RUN/certs/ca.crt
#   TALLY_START_TIMEOUT  seconds to wait for a leader (default 30)
#   TALLY_STOP_TIMEOUT   seconds to wait for a node to exit (default 20)
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUN=${TALLY_RUN_DIR:-$TOP/run}
N_NODES=3
START_TIMEOUT=${TALLY_START_TIMEOUT:-30}
STOP_TIMEOUT=${TALLY_STOP_TIMEOUT:-20}

if [ -n "${TALLY_BIN_DIR:-}" ]; then
    BIN=$TALLY_BIN_DIR
elif [ -x "$TOP/build/src/tallyd" ]; then
    BIN=$TOP/build/src
else
    BIN=$TOP/src
fi
TALLYD=$BIN/tallyd
TALLY=$BIN/tally

BROKERS=
PEERS=()
for i in $(seq 1 $N_NODES); do
    BROKERS=${BROKERS:+$BROKERS,}127.0.0.1:$((7000 + i))
    PEERS+=(--peer "$i=127.0.0.1:$((7000 + i))/127.0.0.1:$((7100 + i))")
done
export TALLY_BROKERS=$BROKERS
if [ "${TALLY_TLS:-0}" = 1 ]; then
    export TALLY_TLS_CA=$RUN/certs/ca.crt
fi

die() {
    echo "local-cluster: $*" >&2
    exit 1
}

# The header comment is the help text.
usage() {
    sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

need_binaries() {
    [ -x "$TALLYD" ] || die "no tallyd in $BIN (build first, or set TALLY_BIN_DIR)"
    [ -x "$TALLY" ] || die "no tally in $BIN (build first, or set TALLY_BIN_DIR)"
}

# Pid of node $1 if it is running (and really is a tallyd), else nothing.
# The check on /proc stops a stale pid file from naming a recycled pid.
node_pid() {
    local pidfile=$RUN/node$1.pid pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q tallyd || return 1
    echo "$pid"
}

start_node() {
    local i=$1 pid
    if pid=$(node_pid "$i"); then
        echo "node $i: already running (pid $pid)"
        return 0
    fi
    mkdir -p "$RUN/node$i" || die "cannot create $RUN/node$i"
    local tls=()
    if [ "${TALLY_TLS:-0}" = 1 ]; then
        "$TOP/deploy/make-certs.sh" "$RUN/certs" $N_NODES >/dev/null ||
            die "cannot make certificates in $RUN/certs"
        tls=(--tls-cert "$RUN/certs/node$i.crt" --tls-key "$RUN/certs/node$i.key"
            --tls-ca "$RUN/certs/ca.crt")
    fi
    # --bootstrap on every start: it only acts on an empty data dir, so the
    # same command line both forms the cluster and restarts a node.
    # shellcheck disable=SC2086 # TALLYD_ARGS is a list of flags
    nohup "$TALLYD" --id "$i" --data "$RUN/node$i" \
        --listen "127.0.0.1:$((7000 + i))" --raft "127.0.0.1:$((7100 + i))" \
        "${PEERS[@]}" --bootstrap "${tls[@]}" ${TALLYD_ARGS:-} \
        </dev/null >>"$RUN/node$i.log" 2>&1 &
    pid=$!
    echo "$pid" >"$RUN/node$i.pid"
    # Bad flags or an unusable data dir make tallyd exit at once: say so
    # here rather than after the leader wait times out.
    sleep 0.3
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$RUN/node$i.pid"
        echo "node $i: tallyd exited at once; last lines of $RUN/node$i.log:" >&2
        tail -n 20 "$RUN/node$i.log" >&2
        return 1
    fi
    echo "node $i: started (pid $pid, client 127.0.0.1:$((7000 + i)), log $RUN/node$i.log)"
}

# Leader id from 'tally status --json', or nothing.
leader_id() {
    "$TALLY" -b "$BROKERS" status --json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin).get("leader_id", 0))' 2>/dev/null
}

wait_for_leader() {
    local deadline=$((SECONDS + START_TIMEOUT)) id
    while [ $SECONDS -lt $deadline ]; do
        id=$(leader_id)
        if [ -n "$id" ] && [ "$id" != 0 ]; then
            echo "cluster: node $id is the leader"
            return 0
        fi
        sleep 0.5
    done
    echo "local-cluster: no leader after ${START_TIMEOUT}s; see $RUN/node*.log" >&2
    return 1
}

stop_node() {
    local i=$1 pid deadline
    if ! pid=$(node_pid "$i"); then
        echo "node $i: not running"
        rm -f "$RUN/node$i.pid"
        return 0
    fi
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.2
    done
    rm -f "$RUN/node$i.pid"
    if kill -0 "$pid" 2>/dev/null; then
        # A node that ignores SIGTERM is a bug worth seeing: kill it, but
        # fail the command.
        kill -KILL "$pid" 2>/dev/null
        echo "node $i: still running ${STOP_TIMEOUT}s after SIGTERM; sent SIGKILL" >&2
        return 1
    fi
    echo "node $i: stopped"
}

# The node numbers named by $1 (checked by check_node), or all of them.
nodes() {
    if [ -z "${1:-}" ]; then
        seq 1 $N_NODES
    else
        echo "$1"
    fi
}

check_node() {
    if [ -n "${1:-}" ] && ! { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le $N_NODES ]; }; then
        die "no node '$1' (nodes are 1..$N_NODES)"
    fi
}

cmd_start() {
    local rv=0 i
    need_binaries
    mkdir -p "$RUN" || die "cannot create $RUN"
    for i in $(nodes "${1:-}"); do
        start_node "$i" || rv=1
    done
    [ $rv -eq 0 ] || return $rv
    wait_for_leader
}

cmd_stop() {
    local rv=0 i
    for i in $(nodes "${1:-}"); do
        stop_node "$i" || rv=1
    done
    return $rv
}

cmd_status() {
    local i pid
    for i in $(nodes); do
        if pid=$(node_pid "$i"); then
            echo "node $i: running (pid $pid)"
        else
            echo "node $i: stopped"
        fi
    done
    need_binaries
    "$TALLY" -b "$BROKERS" status
}

cmd_logs() {
    local i=${1:-}
    [ -n "$i" ] || die "usage: logs N [-f]"
    [ -f "$RUN/node$i.log" ] || die "no log $RUN/node$i.log"
    if [ "${2:-}" = -f ]; then
        exec tail -n 50 -F "$RUN/node$i.log"
    fi
    cat "$RUN/node$i.log"
}

check_node "${2:-}"
case "${1:-}" in
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status ;;
restart)
    cmd_stop "${2:-}"
    cmd_start "${2:-}"
    ;;
logs) cmd_logs "${2:-}" "${3:-}" ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac

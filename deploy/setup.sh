#!/bin/bash
# setup.sh: shared steps of deploy/quickstart.sh and test/run-all.sh, which
# source it: install the missing Debian 12 packages, and configure + build
# tally in a build directory. Run on its own, it installs the packages:
#   deploy/setup.sh
#
# Installed packages are found with dpkg-query, so a machine that has them
# all never calls apt-get (no network, no root needed).

# clang + libclang-rt-14-dev: the libFuzzer targets (test/fuzz/run-fuzzers.sh);
# the fuzzer runtime (libclang_rt.fuzzer) is in libclang-rt-14-dev, which
# Debian 12's clang only recommends.
# libssl-dev: OpenSSL 3 for TLS and SCRAM; openssl: the command that
# deploy/make-certs.sh and the TLS tests make certificates with.
# faketime (with libfaketime): runs a tallyd with a wrong clock in
# test/integration/test_clock_skew.py and the fault suite's clock nemesis.
# Kafka front door (docs/kafka-users.md): zlib1g-dev, libsnappy-dev and
# libzstd-dev for the batch codecs Kafka clients use (lz4 is above); kcat,
# librdkafka-dev and python3-confluent-kafka are the real Kafka clients the
# tests run (test/integration/test_kafka_*.py); nodejs runs kafkajs, which
# comes from npm (tally_install_npm_deps, below).
TALLY_DEB_PACKAGES="build-essential autoconf automake libtool autoconf-archive pkg-config
libraft-dev libuv1-dev liblz4-dev libxxhash-dev libhttp-parser-dev libcmocka-dev python3 clang libclang-rt-14-dev
faketime zlib1g-dev libsnappy-dev libzstd-dev kcat librdkafka-dev python3-confluent-kafka nodejs
libssl-dev openssl"

# libraft-dev must be at least this version (cowsql/raft, the maintained
# continuation of canonical/raft). Debian 12 itself ships 0.15.0; the
# newer one comes from the bookworm-backports suite of the same archive.
TALLY_RAFT_MIN=0.22.1
TALLY_BACKPORTS_LIST=/etc/apt/sources.list.d/tally-bookworm-backports.sources

# chromium and chromium-driver: test/integration/test_console.py drives the
# web console in a headless browser (docs/console.md).
TALLY_DEB_PACKAGES="$TALLY_DEB_PACKAGES chromium chromium-driver"

# Print the packages of TALLY_DEB_PACKAGES that are not installed.
tally_missing_packages() {
    for tally_pkg in $TALLY_DEB_PACKAGES; do
        tally_status=$(dpkg-query -W -f='${Status}' "$tally_pkg" 2>/dev/null || true)
        if [ "$tally_status" != "install ok installed" ]; then
            printf '%s\n' "$tally_pkg"
        elif [ "$tally_pkg" = libraft-dev ] && ! tally_raft_new_enough; then
            printf '%s\n' "$tally_pkg"
        fi
    done
}

# True if the installed libraft-dev is at least TALLY_RAFT_MIN.
tally_raft_new_enough() {
    tally_raft_have=$(dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null || true)
    [ -n "$tally_raft_have" ] && dpkg --compare-versions "$tally_raft_have" ge "$TALLY_RAFT_MIN"
}

# The archive URI this machine uses for Debian's bookworm suite, read from
# its own apt sources (one-line and deb822 formats), so that no host name is
# written into the repository. Prints nothing if none is found.
tally_bookworm_uri() {
    {
        cat /etc/apt/sources.list 2>/dev/null |
            awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                               if ($(i + 1) == "bookworm") print $i }'
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            # One stanza per paragraph; print its URIs if its Suites has bookworm.
            awk 'BEGIN { RS = ""; FS = "\n" }
                 { uris = ""; suites = ""; types = ""
                   for (i = 1; i <= NF; i++) {
                       if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                       if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
                       if ($i ~ /^Types:/) types = $i }
                   if (types ~ /deb( |$)/ && suites ~ /[ \t]bookworm[ \t]/) print uris }' "$f"
        done
        for f in /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            awk '$1 == "deb" && $3 == "bookworm" { print $2 }' "$f"
        done
    } | awk '{ print $1 }' | head -n 1
}

# Make bookworm-backports known to apt (a sources file of our own next to the
# machine's), unless apt already has it. Needs root ($1: "sudo" or empty).
tally_enable_backports() {
    if apt-cache policy 2>/dev/null | grep -q 'bookworm-backports'; then
        return 0
    fi
    tally_uri=$(tally_bookworm_uri)
    if [ -z "$tally_uri" ]; then
        echo "setup: no apt source for Debian bookworm found in /etc/apt; add the" >&2
        echo "  bookworm-backports suite of your Debian mirror and run again" >&2
        return 1
    fi
    echo "setup: adding bookworm-backports from $tally_uri ($TALLY_BACKPORTS_LIST)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$tally_uri" | $1 tee "$TALLY_BACKPORTS_LIST" >/dev/null
}

# Install what is missing; return non-zero (with a message) if that fails.
tally_install_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "setup: dpkg-query not found: this is not Debian; install by hand:" >&2
        echo "  $TALLY_DEB_PACKAGES" | tr '\n' ' ' >&2
        echo >&2
        return 1
    fi
    tally_missing=$(tally_missing_packages | tr '\n' ' ')
    if [ -z "$tally_missing" ]; then
        echo "setup: all build dependencies are installed"
        return 0
    fi
    echo "setup: installing $tally_missing"
    if [ "$(id -u)" -eq 0 ]; then
        tally_sudo=
    elif command -v sudo >/dev/null 2>&1; then
        tally_sudo=sudo
    else
        echo "setup: not root and no sudo; as root run:" >&2
        echo "  apt-get update && apt-get install -y $tally_missing" >&2
        return 1
    fi
    # Only libraft-dev (and what it needs) comes from backports: the
    # pkg/suite form leaves every other package at bookworm's version.
    case " $tally_missing " in
    *" libraft-dev "*)
        tally_enable_backports "$tally_sudo" || return 1
        tally_missing=$(printf '%s' "$tally_missing" | sed 's|libraft-dev|libraft-dev/bookworm-backports|')
        ;;
    esac
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    $tally_sudo apt-get update &&
        $tally_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $tally_missing || return 1
    if ! tally_raft_new_enough; then
        echo "setup: libraft-dev $TALLY_RAFT_MIN or newer did not install" \
            "(have: $(dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null || echo none))" >&2
        return 1
    fi
}

# The npm packages of test/kafka/package.json (kafkajs, pinned by its
# package-lock.json) into test/kafka/node_modules of source tree $1, unless
# there. npm itself is Debian's npm package when the machine has none (a
# nodejs from elsewhere brings its own npm, which Debian's would conflict
# with). Needs the npm registry.
tally_install_npm_deps() {
    if [ -d "$1/test/kafka/node_modules/kafkajs" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
            echo "setup: npm is missing; as root run: apt-get install -y npm" >&2
            return 1
        fi
        tally_npm_sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
        $tally_npm_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y npm || return 1
    fi
    echo "setup: npm ci in $1/test/kafka (kafkajs)"
    (cd "$1/test/kafka" && npm ci --no-audit --no-fund) || return 1
}

# Generate ./configure in source tree $1 if it is missing or older than its
# inputs. A fresh clone has no configure: it is not committed.
tally_autoreconf() {
    if [ ! -x "$1/configure" ] || [ "$1/configure.ac" -nt "$1/configure" ] ||
        [ "$1/Makefile.am" -nt "$1/Makefile.in" ]; then
        echo "setup: autoreconf -fi in $1"
        (cd "$1" && autoreconf -fi) || return 1
    fi
    if [ -f "$1/config.status" ]; then
        # An in-tree configure makes every out-of-tree build refuse to run.
        echo "setup: $1 was configured in-tree; run 'make distclean' there first" >&2
        return 1
    fi
}

# Configure build dir $2 (relative to source tree $1) with the remaining
# arguments, unless it is already configured with exactly those.
tally_configure() {
    tally_src=$1
    tally_bdir=$2
    shift 2
    tally_want="$*"
    mkdir -p "$tally_src/$tally_bdir" || return 1
    if [ -f "$tally_src/$tally_bdir/Makefile" ] && [ -x "$tally_src/$tally_bdir/config.status" ]; then
        # autoconf 2.71 prints plain words; older ones quote them.
        tally_have=$(cd "$tally_src/$tally_bdir" && ./config.status --config | tr -d "'")
        if [ "$tally_have" = "$tally_want" ]; then
            return 0
        fi
        echo "setup: $tally_bdir was configured with [$tally_have], reconfiguring"
    fi
    echo "setup: configuring $tally_bdir: ../configure $*"
    (cd "$tally_src/$tally_bdir" && ../configure "$@")
}

# Run directly (not sourced): install and exit with the result.
case "$0" in
*setup.sh)
    tally_install_deps && tally_install_npm_deps "$(cd "$(dirname "$0")/.." && pwd)"
    exit $?
    ;;
esac

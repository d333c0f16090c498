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
TALLY_DEB_PACKAGES="build-essential autoconf automake libtool autoconf-archive pkg-config
libraft-dev libuv1-dev liblz4-dev libxxhash-dev libhttp-parser-dev libcmocka-dev python3 clang libclang-rt-14-dev"

# Print the packages of TALLY_DEB_PACKAGES that are not installed.
tally_missing_packages() {
    for tally_pkg in $TALLY_DEB_PACKAGES; do
        tally_status=$(dpkg-query -W -f='${Status}' "$tally_pkg" 2>/dev/null || true)
        if [ "$tally_status" != "install ok installed" ]; then
            printf '%s\n' "$tally_pkg"
        fi
    done
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
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    $tally_sudo apt-get update &&
        $tally_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $tally_missing
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
    tally_install_deps
    exit $?
    ;;
esac

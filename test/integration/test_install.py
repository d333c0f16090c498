# test_install.py - `make install DESTDIR=...` of this build dir installs
# tallyd, tally, libtally, tally.h, tally.pc and the man pages; a program
# built with `pkg-config --cflags --libs tally` against the installed copy
# compiles, links and runs; the man pages name every flag the --help texts
# name.
#
# Run by `make check` (TALLY_BUILD_DIR and TALLY_SRC_DIR set), or by hand:
#   TALLY_BUILD_DIR=build TALLY_SRC_DIR=. /usr/bin/python3 test/integration/test_install.py
# Needs no tallyd cluster. Set TALLY_KEEP_TMP=1 to keep the install tree of a
# failed run.

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD_DIR, TALLY, TALLYD, TestFailure, check, no_server, run_tests  # noqa: E402

SRC_DIR = os.environ.get("TALLY_SRC_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <tally.h>

int main(void)
{
    tally_client *c = NULL;
    int rc;

    if (strcmp(tally_strerror(TALLY_TIMEOUT), "timed out") != 0) {
        fprintf(stderr, "tally_strerror(TALLY_TIMEOUT) = '%s'\n", tally_strerror(TALLY_TIMEOUT));
        return 1;
    }
    if (tally_strerror(12345) == NULL) {
        fprintf(stderr, "tally_strerror(12345) is NULL\n");
        return 1;
    }
    rc = tally_client_create("not an address", &c);
    if (rc != TALLY_INVAL) {
        fprintf(stderr, "tally_client_create(bad list) = %d, want TALLY_INVAL\n", rc);
        return 1;
    }
    /* Port 1 on loopback: nothing listens, so a request fails fast. */
    rc = tally_client_create("127.0.0.1:1", &c);
    if (rc != 0 || c == NULL) {
        fprintf(stderr, "tally_client_create = %d (%s)\n", rc, tally_strerror(rc));
        return 1;
    }
    tally_client_set_timeout(c, 300);
    {
        struct tally_topic_info *topics = NULL;
        size_t n = 0;
        rc = tally_topic_list(c, &topics, &n);
        if (rc == 0) {
            fprintf(stderr, "tally_topic_list against a closed port succeeded\n");
            return 1;
        }
        printf("topic_list: %s: %s\n", tally_strerror(rc), tally_errmsg(c));
    }
    tally_client_destroy(c);
    printf("installed libtally works\n");
    return 0;
}
"""


def run(cmd, env=None, timeout=600, cwd=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                       timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def pc_vars(path):
    """The variables of a .pc file, with ${var} expanded."""
    vals = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
            if m:
                vals[m.group(1)] = re.sub(r"\$\{(\w+)\}", lambda g: vals.get(g.group(1), ""),
                                          m.group(2))
    return vals


def sanitizer_flags(lib):
    """-fsanitize flags a program linked with @lib needs: libtally of a
    --enable-sanitize build needs the ASan/UBSan runtimes loaded first."""
    out = subprocess.run(["ldd", lib], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=30).stdout.decode("utf-8", "replace")
    kinds = []
    if "libasan" in out:
        kinds.append("address")
    if "libubsan" in out:
        kinds.append("undefined")
    return [f"-fsanitize={','.join(kinds)}"] if kinds else []


class Installed:
    """`make install DESTDIR=<tmp>` of BUILD_DIR; removed on exit unless the
    block failed and TALLY_KEEP_TMP is set."""

    def __enter__(self):
        self.destdir = tempfile.mkdtemp(prefix="tally-install-")
        env = dict(os.environ)
        # Under `make check` the parent make's jobserver flags would leak in.
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(k, None)
        rc, out = run(["make", "-C", BUILD_DIR, "install", f"DESTDIR={self.destdir}"], env=env)
        self.log = out
        if rc != 0:
            self.__exit__(TestFailure, None, None)
            raise TestFailure(f"make install DESTDIR={self.destdir} exited {rc}:\n{out[-3000:]}")
        # The build's own tally.pc names the configured directories.
        v = pc_vars(os.path.join(BUILD_DIR, "tally.pc"))
        self.prefix = v["prefix"]
        self.libdir = self.root(v["libdir"])
        self.includedir = self.root(v["includedir"])
        self.bindir = self.root(os.path.join(v["exec_prefix"], "bin"))
        return self

    def root(self, path):
        return os.path.join(self.destdir, path.lstrip("/"))

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and os.environ.get("TALLY_KEEP_TMP"):
            print(f"# kept {self.destdir}", flush=True)
        else:
            shutil.rmtree(self.destdir, ignore_errors=True)
        return False

    def find(self, name):
        """Paths of files called @name anywhere in the install tree."""
        return [os.path.join(d, name) for d, _, files in os.walk(self.destdir) if name in files]


def test_install_tree():
    """make install puts tallyd, tally, libtally, tally.h, tally.pc and the
    man pages in their places, and the installed programs run."""
    with Installed() as inst:
        for prog in ("tallyd", "tally"):
            p = os.path.join(inst.bindir, prog)
            check(os.path.isfile(p) and os.access(p, os.X_OK), f"{p} not installed")
        libs = sorted(f for f in os.listdir(inst.libdir) if f.startswith("libtally.so"))
        check("libtally.so" in libs, f"no libtally.so in {inst.libdir}: {libs}")
        check(any(re.fullmatch(r"libtally\.so\.\d+", f) for f in libs),
              f"no libtally.so.N (soname) in {inst.libdir}: {libs}")
        hdr = os.path.join(inst.includedir, "tally.h")
        check(os.path.isfile(hdr), f"{hdr} not installed")
        with open(hdr) as f, open(os.path.join(SRC_DIR, "include", "tally.h")) as g:
            check(f.read() == g.read(), "installed tally.h differs from include/tally.h")
        pc = os.path.join(inst.libdir, "pkgconfig", "tally.pc")
        check(os.path.isfile(pc), f"{pc} not installed")
        for page, section in (("tally.1", "man1"), ("tallyd.8", "man8")):
            found = inst.find(page)
            check(found, f"man page {page} not installed under {inst.destdir}")
            check(any(os.path.basename(os.path.dirname(p)) == section for p in found),
                  f"{page} installed outside a {section} directory: {found}")
            check(any(p.startswith(inst.root(inst.prefix)) for p in found),
                  f"{page} installed outside the prefix {inst.prefix}: {found}")

        env = dict(os.environ, LD_LIBRARY_PATH=inst.libdir)
        for prog, want in (("tallyd", "tallyd (tally) "), ("tally", "tally ")):
            rc, out = run([os.path.join(inst.bindir, prog), "--version"], env=env, timeout=30)
            check(rc == 0 and out.startswith(want), f"installed {prog} --version: {rc} {out!r}")


test_install_tree = no_server(test_install_tree)


def test_build_against_installed_library():
    """A C program built with `pkg-config --cflags --libs tally` against the
    installed header and library compiles without warnings and runs."""
    pkg_config = shutil.which("pkg-config")
    check(pkg_config, "pkg-config is not installed (deploy/setup.sh installs it)")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    check(cc, "no C compiler (cc) found")
    with Installed() as inst:
        env = dict(os.environ,
                   PKG_CONFIG_PATH=os.path.join(inst.libdir, "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=inst.destdir)
        env.pop("PKG_CONFIG_LIBDIR", None)
        rc, out = run([pkg_config, "--cflags", "--libs", "tally"], env=env, timeout=30)
        check(rc == 0, f"pkg-config --cflags --libs tally: {rc} {out!r}")
        flags = out.split()
        check(f"-I{inst.includedir}" in flags, f"pkg-config cflags lack -I{inst.includedir}: {out!r}")
        check(f"-L{inst.libdir}" in flags and "-ltally" in flags,
              f"pkg-config libs lack -L{inst.libdir} -ltally: {out!r}")

        work = os.path.join(inst.destdir, "prog")
        os.makedirs(work)
        src = os.path.join(work, "prog.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(work, "prog")
        lib = os.path.realpath(os.path.join(inst.libdir, "libtally.so"))
        san = sanitizer_flags(lib)
        cmd = ([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", exe, src] + san + flags +
               [f"-Wl,-rpath,{inst.libdir}"])
        rc, out = run(cmd, env=env, timeout=120)
        check(rc == 0, f"{' '.join(cmd)} exited {rc}:\n{out}")
        rc, out = run(["ldd", exe], timeout=30)
        check(inst.libdir in out, f"prog does not load libtally from {inst.libdir}:\n{out}")
        run_env = dict(os.environ)
        run_env.pop("LD_LIBRARY_PATH", None)  # the rpath alone must find it
        rc, out = run([exe], env=run_env, timeout=60)
        check(rc == 0 and "installed libtally works" in out,
              f"prog ({'with ' + san[0] if san else 'no sanitizers'}) exited {rc}:\n{out}")
        print(f"# {out.strip().splitlines()[0]}", flush=True)


test_build_against_installed_library = no_server(test_build_against_installed_library)


def long_flags(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text))


def man_text(page):
    """The roff source of man/@page with roff's \\- turned into -."""
    with open(os.path.join(SRC_DIR, "man", page)) as f:
        return f.read().replace("\\-", "-")


def test_man_pages_cover_help():
    """Every long flag and every command that tally's and tallyd's --help
    texts name appears in the man pages."""
    helps = []
    for args in (["--help"], ["topic", "--help"], ["produce", "--help"], ["consume", "--help"],
                 ["status", "--help"], ["member", "--help"], ["bench", "produce", "--help"],
                 ["log", "--help"]):
        rc, out = run([TALLY] + args, timeout=30)
        check(rc == 0, f"tally {' '.join(args)}: exit {rc}")
        helps.append(out)
    page = man_text("tally.1")
    missing = sorted(long_flags("\n".join(helps)) - long_flags(page))
    check(not missing, f"man/tally.1 lacks flags from tally's --help: {missing}")
    for cmd in ("topic create", "topic list", "topic delete", "produce", "consume", "status",
                "member add", "member promote", "member remove", "member transfer", "bench produce",
                "log verify", "log dump"):
        check(cmd in page, f"man/tally.1 does not name 'tally {cmd}'")

    if os.access(TALLYD, os.X_OK):
        rc, out = run([TALLYD, "--help"], timeout=30)
        check(rc == 0, f"tallyd --help: exit {rc}")
        page = man_text("tallyd.8")
        missing = sorted(long_flags(out) - long_flags(page))
        check(not missing, f"man/tallyd.8 lacks flags from tallyd's --help: {missing}")
        keys = set(re.findall(r"\b([a-z_]+)=\d", out))
        missing = sorted(k for k in keys if k not in page)
        check(not missing, f"man/tallyd.8 lacks tunables from tallyd's --help: {missing}")


test_man_pages_cover_help = no_server(test_man_pages_cover_help)


if __name__ == "__main__":
    run_tests([test_install_tree, test_build_against_installed_library, test_man_pages_cover_help])

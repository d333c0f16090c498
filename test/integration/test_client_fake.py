#!/usr/bin/env python3
"""test_client_fake.py - libtally against the fake cluster of fake_server.py.

Runs fake_server.py --selftest on the libtally.so of this build. In an
ASan build the sanitizer runtime must be loaded first into python, so it is
preloaded (leak checking off: python itself is not leak-clean).
"""
import os
import subprocess
import sys

build = os.environ.get("TALLY_BUILD_DIR", ".")
src = os.environ.get("TALLY_SRC_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
lib = os.path.join(build, ".libs", "libtally.so")
if not os.path.exists(lib):
    print("no %s: build libtally first" % lib)
    sys.exit(1)

env = dict(os.environ)
ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
preload = [line.split("=>")[1].split()[0] for line in ldd.splitlines()
           if "=>" in line and ("libasan" in line or "libubsan" in line)]
if preload:
    env["LD_PRELOAD"] = ":".join(preload)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
script = os.path.join(src, "test", "integration", "fake_server.py")
sys.exit(subprocess.run(["/usr/bin/python3", script, "--selftest", lib], env=env,
                        timeout=300).returncode)

#!/usr/bin/python3
# test_fault_short.py - what make check runs of the fault suite: the
# checker's own test (it must catch doctored violations), then
# `run.py --short` (about 2-3 minutes of faults against a real cluster).
# Exit 0 pass, 1 fail, 77 skip (binaries not built).

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    r = subprocess.run([sys.executable, os.path.join(HERE, "test_checker.py")])
    if r.returncode != 0:
        print("FAIL test_checker.py: the checker does not catch violations")
        return 1
    args = [sys.executable, os.path.join(HERE, "run.py"), "--short"]
    if os.environ.get("TALLY_FAULT_SEED"):
        args += ["--seed", os.environ["TALLY_FAULT_SEED"]]
    try:
        r = subprocess.run(args, timeout=600)
    except subprocess.TimeoutExpired:
        print("FAIL run.py --short did not finish within 600 s")
        return 1
    if r.returncode == 77:
        return 77
    print("PASS fault suite" if r.returncode == 0 else f"FAIL fault suite (exit {r.returncode})")
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Helpers for end-to-end tests that drive the real `stack` binary.

Run with /usr/bin/python3 (Debian's: it has python3-cryptography). The
binary is $STACK_BIN (set by ctest); scratch space is under $STACK_TEST_TMP.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

STACK = os.environ.get("STACK_BIN", "stack")
EXIT = {"ok": 0, "internal": 1, "usage": 2, "notfound": 3, "exists": 4, "nospace": 5,
        "auth": 6, "corruption": 7, "io": 8, "busy": 9, "unsupported": 10,
        "range": 11, "readonly": 12}


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)



def sanitizer():
    """The build's STACK_SANITIZER ("none", "address", "thread", ...): an
    uninstrumented host program (nbdkit) cannot load our plugin built with one."""
    try:
        with open(os.path.join(os.environ.get("STACK_BUILD_DIR", ""), "CMakeCache.txt")) as f:
            m = re.search(r"^STACK_SANITIZER:STRING=(\S+)", f.read(), re.M)
            return m.group(1) if m else "none"
    except OSError:
        return "none"

def stack(*args, input=None, check=None, env=None, timeout=None):
    """Runs `stack args...`; check=<rc> asserts the exit status; timeout in
    seconds ends a run that hangs (TimeoutExpired fails the test)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    proc = subprocess.run([STACK, *map(str, args)], input=input, capture_output=True,
                          env=e, text=not isinstance(input, bytes), timeout=timeout)
    r = Run(proc)
    if check is not None and r.rc != check:
        raise AssertionError(f"stack {' '.join(map(str, args))}: exit {r.rc}, wanted {check}\n"
                             f"stdout: {r.out}\nstderr: {r.err}")
    return r


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True, **kw)


class StackTestCase(unittest.TestCase):
    def setUp(self):
        base = os.environ.get("STACK_TEST_TMP") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="e2e-", dir=base)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def assertOneLineError(self, r, code_name):
        lines = [l for l in r.err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, f"expected one error line, got: {r.err!r}")
        self.assertTrue(lines[0].startswith(f"stack: {code_name}: "), lines[0])


# ctest's SKIP_RETURN_CODE for script tests (tests/CMakeLists.txt).
SKIP_EXIT = 77


def main():
    """Runs the module's tests. Exits 1 if any failed, else SKIP_EXIT if any
    skipped (listing them), else 0: a file whose tests only partly ran must
    show as skipped in ctest, not as passed."""
    prog = unittest.main(verbosity=2, exit=False)
    result = prog.result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped:
        for test, reason in result.skipped:
            print(f"SKIP: {test.id()}: {reason}")
        print(f"SKIP: {len(result.skipped)} of {result.testsRun} tests skipped")
        sys.exit(SKIP_EXIT)
    sys.exit(0)

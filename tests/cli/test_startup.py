"""What every `stack` command pays before it starts: the shared libraries the
binary loads. Ceph's client libraries (librbd, librados and the dozen they
bring) are loaded only when an rbd: pool is used (layers/rbd/src/
librbd_loader.cc), so they must not be among them."""
import os
import subprocess
import unittest

from stacktest import main


class Startup(unittest.TestCase):
    def test_ceph_libraries_are_not_linked(self):
        out = subprocess.run(["ldd", os.environ["STACK_BIN"]], capture_output=True, text=True,
                             check=True).stdout
        linked = [l.split()[0] for l in out.splitlines() if l.strip()]
        self.assertTrue(any("libc.so" in l for l in linked), out)  # ldd did read it
        for lib in ("librbd", "librados", "libceph-common"):
            self.assertFalse(any(l.startswith(lib) for l in linked), f"{lib} linked:\n{out}")


if __name__ == "__main__":
    main()

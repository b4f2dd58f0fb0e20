"""The bulk data path (issue 16 section 2): `fs put`, `get`, `extract`,
`populate` into an existing volume and `import` move file data through the
pipeline build uses (write-behind, encryption beside the reading, large
runs). Checked from outside: byte-for-byte comparisons with the host files,
holes counted with st_blocks, e2fsck -fn on the decrypted export, `pool
check`; a put killed midway leaves the volume as it was."""
import filecmp
import hashlib
import os
import signal
import subprocess
import time

from images import FAST_KDF, make_tree, write_pass
from stacktest import STACK, StackTestCase, main, sh, stack

MiB = 1 << 20


def random_bytes(size, seed):
    # Incompressible, distinct per seed, cheap: sha256 in counter mode.
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest() * 128
        out[-32:] = hashlib.sha256(f"{seed}/{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def sparse_file(path, size, pieces, seed):
    """A sparse host file: random data at the (offset, length) pieces, holes
    elsewhere."""
    with open(path, "wb") as f:
        for k, (off, length) in enumerate(pieces):
            f.seek(off)
            f.write(random_bytes(length, seed + k))
        f.truncate(size)
    return path


def allocated(path):
    return os.stat(path).st_blocks * 512


def same(a, b):
    return filecmp.cmp(a, b, shallow=False)


class BulkData(StackTestCase):
    def setUp(self):
        super().setUp()
        self.key = write_pass(self.path("key"))
        self.pool = self.path("p.stk")
        empty = self.path("empty")
        os.makedirs(empty)
        stack("build", "-p", self.pool, "v", "--from", empty, "--size", "512M", "-k", self.key,
              "--snapshot", "", *FAST_KDF, check=0)

    def fs(self, *args, check=0):
        return stack("fs", args[0], "-p", self.pool, "v", "-k", self.key, *args[1:], check=check)

    def assert_fsck_clean(self):
        out = self.path("check.img")
        if os.path.exists(out):
            os.unlink(out)
        stack("export", "-p", self.pool, "v", out, "--format", "plain", "-k", self.key, check=0)
        r = sh(f"e2fsck -fn {out}", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        os.unlink(out)
        stack("pool", "check", "-p", self.pool, check=0)

    def test_sparse_file_through_put_get_extract(self):
        # 300 MiB apparent, 3 data pieces (one not block aligned at its end).
        src = sparse_file(self.path("sparse"), 300 * MiB,
                          [(0, 9 * MiB + 123), (100 * MiB, 5 * MiB), (299 * MiB, MiB)], 1)
        self.fs("put", src, "/sparse")
        st = stack("--json", "fs", "stat", "-p", self.pool, "v", "-k", self.key, "/sparse",
                   check=0).json()
        self.assertEqual(st["size"], 300 * MiB)
        self.assertLess(st["allocated_bytes"], 20 * MiB, "holes were written as data")
        got = self.path("got")
        self.fs("get", "/sparse", got)
        self.assertTrue(same(src, got), "fs get differs from the file put")
        self.assertLess(allocated(got), 24 * MiB, "fs get filled the holes")
        out = self.path("x")
        self.fs("extract", "--to", out)
        self.assertTrue(same(src, os.path.join(out, "sparse")), "extract differs")
        self.assertLess(allocated(os.path.join(out, "sparse")), 24 * MiB)
        tar = self.path("x.tar")
        self.fs("extract", "--tar", tar)
        untar = self.path("untar")
        os.makedirs(untar)
        sh(f"tar -xf {tar} -C {untar}")
        self.assertTrue(same(src, os.path.join(untar, "sparse")), "extract --tar differs")
        self.assert_fsck_clean()

    def test_file_spanning_many_runs_in_fragmented_space(self):
        # Free space in 256 KiB pieces: each 4 MiB run of the big file is
        # split across allocations, and read back by many extents.
        tree = self.path("smalls")
        os.makedirs(tree)
        for i in range(64):
            with open(os.path.join(tree, f"s{i:02}"), "wb") as f:
                f.write(random_bytes(256 * 1024, 100 + i))
        self.fs("populate", "--from", tree, "--dest", "/smalls")
        self.fs("rm", *[f"/smalls/s{i:02}" for i in range(0, 64, 2)])
        big = self.path("big")
        with open(big, "wb") as f:
            f.write(random_bytes(40 * MiB + 5, 3))
        self.fs("put", big, "/big")
        got = self.path("got")
        self.fs("get", "/big", got)
        self.assertTrue(same(big, got), "a file written in fragmented space reads back wrong")
        for i in range(1, 64, 2):
            self.fs("get", f"/smalls/s{i:02}", self.path("s"))
            self.assertTrue(same(os.path.join(tree, f"s{i:02}"), self.path("s")))
        self.assert_fsck_clean()

    def test_populate_into_existing_and_import(self):
        tree = self.path("tree")
        make_tree(tree)
        with open(os.path.join(tree, "large.bin"), "wb") as f:
            f.write(random_bytes(24 * MiB + 7, 4))
        self.fs("populate", "--from", tree, "--dest", "/t")
        out = self.path("out")
        self.fs("extract", "/t", "--to", out)
        r = sh(f"diff -r --no-dereference {tree} {out}", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assert_fsck_clean()
        # import of the plain image into a new volume: the same bytes.
        img = self.path("plain.img")
        stack("export", "-p", self.pool, "v", img, "--format", "plain", "-k", self.key, check=0)
        stack("import", "-p", self.pool, img, "w", check=0)
        back = self.path("back.img")
        stack("export", "-p", self.pool, "w", back, "--format", "stored", check=0)
        self.assertTrue(same(img, back), "import changed the image")

    def test_killed_put_leaves_the_volume_unchanged(self):
        keep = self.path("keep")
        with open(keep, "wb") as f:
            f.write(random_bytes(3 * MiB, 5))
        self.fs("put", keep, "/keep")
        before = self.fs("ls", "/").out
        big = self.path("big")
        with open(big, "wb") as f:
            for i in range(8):
                f.write(random_bytes(32 * MiB, 10 + i))
        start = allocated(self.pool)
        p = subprocess.Popen([STACK, "fs", "put", "-p", self.pool, "v", "-k", self.key, big,
                              "/big"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Killed once the pool file holds some of the new data (state, not time).
        while p.poll() is None and allocated(self.pool) < start + 32 * MiB:
            time.sleep(0.005)
        if p.poll() is not None:
            self.skipTest("the put ended before it could be killed midway")
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.assertEqual(self.fs("ls", "/").out, before)
        got = self.path("got")
        self.fs("get", "/keep", got)
        self.assertTrue(same(keep, got))
        self.assert_fsck_clean()
        # And the volume takes the file afterwards.
        self.fs("put", big, "/big")
        self.fs("get", "/big", got)
        self.assertTrue(same(big, got))


if __name__ == "__main__":
    main()

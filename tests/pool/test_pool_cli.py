"""Pool files through the real `stack` binary: superblock damage is reported
and refused as spec/pool-format.md section 8 says, failed creates leave
nothing, truncated files say so, and freed space leaves the host file on
tmpfs (SKIPPED, exit 77, when no tmpfs is mounted at /dev/shm).

Run by ctest (pool.cli, pool.tmpfs_reclaim); by hand:
  STACK_BIN=build/cli/stack PYTHONPATH=tests/lib /usr/bin/python3 tests/pool/test_pool_cli.py
"""
import os
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from stacktest import EXIT, StackTestCase, stack  # noqa: E402

BS = 4096


def generation(path, block):
    with open(path, "rb") as f:
        f.seek(block * BS + 24)
        return struct.unpack("<Q", f.read(8))[0]


def flip(path, block, offset=100):
    with open(path, "r+b") as f:
        f.seek(block * BS + offset)
        b = f.read(1)
        f.seek(block * BS + offset)
        f.write(bytes([b[0] ^ 1]))


def raw_image(path, mib, seed):
    import random
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.write(bytes(rnd.getrandbits(8) for _ in range(4096)) * (mib * 256))


class PoolCli(StackTestCase):
    def make_pool(self):
        pool = self.path("p.stk")
        stack("pool", "create", pool, "--size", "8M", "--max-size", "8M", check=0)
        stack("volume", "create", "-p", pool, "v", "--size", "1M", check=0)
        stack("volume", "create", "-p", pool, "late", "--size", "1M", check=0)
        g = max(generation(pool, 0), generation(pool, 1))
        return pool, g

    def test_damaged_newest_primary_warns_and_check_fails(self):
        pool, g = self.make_pool()
        s = g % 2
        flip(pool, s)
        r = stack("volume", "list", "-p", pool, check=0)
        self.assertIn("late", r.out)
        self.assertIn(f"stack: warning: superblock slot {s} primary (block {s})", r.err)
        self.assertIn(f"opened generation {g} from slot {s} mirror (block {s + 2})", r.err)
        r = stack("pool", "check", pool, check=EXIT["corruption"])
        self.assertIn(f"error: superblock slot {s} primary", r.out)
        # A writer repairs it: then all is quiet and clean.
        stack("pool", "recover", pool, check=0)
        r = stack("pool", "check", pool, check=0)
        self.assertEqual(r.err, "")
        self.assertIn("clean", r.out)

    def test_lost_generation_is_refused_and_the_flag_says_what_is_lost(self):
        pool, g = self.make_pool()
        s = g % 2
        flip(pool, s)
        flip(pool, s + 2)
        r = stack("volume", "list", "-p", pool, check=EXIT["corruption"])
        self.assertOneLineError(r, "Corruption")
        self.assertIn(f"may have held generation {g}", r.err)
        self.assertIn("--accept-lost-generation", r.err)
        r = stack("pool", "check", pool, "--accept-lost-generation", check=EXIT["corruption"])
        self.assertIn(f"lost: generation {g}", r.err)
        r = stack("pool", "recover", pool, "--accept-lost-generation", check=0)
        self.assertIn(f"lost: generation {g}", r.err)
        r = stack("pool", "check", pool, check=0)
        self.assertEqual(r.err, "")
        r = stack("volume", "list", "-p", pool, check=0)
        self.assertNotIn("late", r.out)

    def test_all_copies_damaged_says_what_each_held(self):
        pool, _ = self.make_pool()
        for b in range(4):
            flip(pool, b)
        r = stack("pool", "info", pool, check=EXIT["corruption"])
        self.assertOneLineError(r, "Corruption")
        for b in range(4):
            self.assertIn(f"(block {b}): superblock at physical block {b}: checksum mismatch", r.err)
        self.assertNotIn("not found", r.err)

    def test_failed_create_leaves_nothing_and_retry_works(self):
        pool = self.path("new.stk")
        stack("pool", "create", pool, "--block-size", "3000", check=EXIT["usage"])
        r = stack("pool", "create", pool, "--size", "64M", "--max-size", "1M", check=EXIT["usage"])
        self.assertIn("--max-size 1048576 is below --size 67108864", r.err)
        self.assertEqual(os.listdir(self.tmp), [])
        stack("pool", "create", pool, "--size", "1M", "--block-size", "3000", check=EXIT["usage"])
        self.assertEqual(os.listdir(self.tmp), [])
        stack("pool", "create", pool, "--size", "1M", check=0)
        self.assertEqual(os.listdir(self.tmp), ["new.stk"])
        stack("pool", "create", pool, "--size", "1M", check=EXIT["exists"])

    def test_truncated_pool_says_so(self):
        pool, _ = self.make_pool()
        size = os.path.getsize(pool)
        with open(pool, "rb") as f:
            orig = f.read()
        for cut, want in ((0, "is 0 bytes: not a pool"),
                          (size // 2, f"is truncated: {size // 2} bytes"),
                          (BS, f"spans {size} bytes"),
                          (5000, "not a whole number of 4096-byte blocks")):
            with open(pool, "wb") as f:
                f.write(orig[:cut])
            r = stack("pool", "info", pool, check=EXIT["corruption"])
            self.assertOneLineError(r, "Corruption")
            self.assertIn(want, r.err)


def tmpfs_dir():
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[1] == "/dev/shm" and parts[2] == "tmpfs":
                return "/dev/shm"
    return None


class TmpfsReclaim(unittest.TestCase):
    def test_deleted_volume_space_leaves_the_tmpfs_file(self):
        d = tempfile.mkdtemp(prefix="stack-tmpfs-", dir=tmpfs_dir())
        try:
            pool = os.path.join(d, "p.stk")
            img = os.path.join(d, "raw.img")
            raw_image(img, 8, 1)
            stack("pool", "create", pool, "--size", "16M", "--max-size", "16M", check=0)
            stack("import", "-p", pool, img, "v", check=0)
            os.remove(img)
            before = stack("--json", "pool", "info", pool, check=0).json()
            on_disk = os.stat(pool).st_blocks * 512
            self.assertEqual(before["host_allocated_bytes"], on_disk)
            self.assertGreaterEqual(on_disk, 8 << 20)
            stack("volume", "rm", "-p", pool, "v", check=0)
            after = stack("--json", "pool", "info", pool, check=0).json()
            freed_on_host = on_disk - os.stat(pool).st_blocks * 512
            # Every data block was punched out of the tmpfs file.
            self.assertGreaterEqual(freed_on_host, 8 << 20)
            self.assertEqual(after["host_allocated_bytes"], os.stat(pool).st_blocks * 512)
            # What info calls not given back is what the file holds beyond
            # the used blocks: a few metadata blocks kept for reuse.
            self.assertEqual(after["host_unused_bytes"],
                             max(0, after["host_allocated_bytes"] - after["used_bytes"]))
            self.assertLess(after["host_unused_bytes"], 1 << 20)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    if only == "tmpfs":
        if not tmpfs_dir():
            print("SKIPPED: no tmpfs mounted at /dev/shm")
            sys.exit(77)
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(TmpfsReclaim)
    else:
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(PoolCli)
    ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
    sys.exit(0 if ok else 1)

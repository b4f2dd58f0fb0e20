"""Space freed inside a volume returns to the pool (issue 16.1): `fs rm`, an
overwrite or truncation by `fs put`, a failed `fs put` and `fs trim` unmap
the blocks ext4 frees, through LUKS2 when its header allows discards; the
pool file on the host shrinks; snapshots keep the blocks they share.

Measured from outside: the pool's mapped bytes (`stack --json volume list`),
the pool file's allocated bytes (st_blocks), e2fsck -fn on the decrypted
export, cryptsetup luksDump for the header flag, mke2fs/debugfs to make an
image whose free blocks still hold data."""
import hashlib
import json
import os
import shutil
import struct
import tempfile
import unittest

from images import FAST_KDF, make_tree, write_pass
from stacktest import EXIT, StackTestCase, main, sh, stack

MiB = 1 << 20


def need(tool):
    return shutil.which(tool) is not None


def host_allocated(path):
    return os.stat(path).st_blocks * 512


def random_file(path, size, seed):
    # Incompressible, distinct per seed, cheap: sha256 in counter mode.
    with open(path, "wb") as f:
        block = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(2048))
        for i in range(size // len(block)):
            f.write(hashlib.sha256(f"{seed}/{i}".encode()).digest() + block[32:])
    return path


def tmpfs_dir():
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[1] == "/dev/shm" and parts[2] == "tmpfs":
                    return "/dev/shm"
    except OSError:
        pass
    return None


def set_allow_discards(img):
    """Adds allow-discards to both LUKS2 header copies of img (JSON edited in
    place, checksums recomputed as cryptsetup does): what `cryptsetup
    refresh --persistent --allow-discards` writes, without device-mapper."""
    with open(img, "r+b") as f:
        hdr = f.read(4096)
        assert hdr[:6] == b"LUKS\xba\xbe", "not LUKS2"
        hdr_size = struct.unpack(">Q", hdr[8:16])[0]
        for off in (0, hdr_size):
            f.seek(off)
            area = bytearray(f.read(hdr_size))
            text = area[4096:].rstrip(b"\0").decode()
            doc = json.loads(text)
            doc["config"].setdefault("flags", []).append("allow-discards")
            new = json.dumps(doc, separators=(",", ":")).encode()
            assert len(new) < hdr_size - 4096
            area[4096:] = new + b"\0" * (hdr_size - 4096 - len(new))
            area[0x1C0:0x1C0 + 64] = b"\0" * 64
            area[0x1C0:0x1C0 + 32] = hashlib.sha256(bytes(area)).digest()
            f.seek(off)
            f.write(area)


class Trim(StackTestCase):
    def setUp(self):
        super().setUp()
        self.key = write_pass(self.path("key"))
        self.tree = self.path("tree")
        make_tree(self.tree)

    def build(self, pool, vol, encrypted, size="192M", extra=()):
        stack("build", "-p", pool, vol, "--from", self.tree, "--size", size, "-k", self.key,
              *FAST_KDF, *(() if encrypted else ("--no-encrypt",)), *extra, check=0)

    def key_args(self, encrypted):
        return ["-k", self.key] if encrypted else []

    def mapped(self, pool, entry):
        r = stack("--json", "volume", "list", "--all", "-p", pool, check=0).json()
        return {e["name"]: e["mapped_bytes"] for e in r}[entry]

    def pool_used(self, pool):
        return stack("--json", "pool", "info", "-p", pool, check=0).json()["used_bytes"]

    def assert_fsck_clean(self, pool, entry, encrypted):
        out = self.path("check.img")
        if os.path.exists(out):
            os.unlink(out)
        stack("export", "-p", pool, entry, out, "--format", "plain",
              *self.key_args(encrypted), check=0)
        r = sh(f"e2fsck -fn {out}", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        os.unlink(out)

    def test_rm_overwrite_and_truncate_give_space_back(self):
        big = random_file(self.path("big"), 64 * MiB, 1)
        small = self.path("small")
        with open(small, "w") as f:
            f.write("small\n")
        dirs = [("disk", self.tmp)]
        shm = tmpfs_dir()
        if shm:
            dirs.append(("tmpfs", tempfile.mkdtemp(prefix="stack-trim-", dir=shm)))
        try:
            for where, d in dirs:
                for encrypted in (True, False):
                    with self.subTest(where=where, encrypted=encrypted):
                        pool = os.path.join(d, f"p-{encrypted}.stk")
                        self.build(pool, "v", encrypted)
                        k = self.key_args(encrypted)
                        m0, h0 = self.mapped(pool, "v"), host_allocated(pool)
                        stack("fs", "put", "-p", pool, "v", *k, big, "/big", check=0)
                        m1, h1 = self.mapped(pool, "v"), host_allocated(pool)
                        self.assertGreaterEqual(m1 - m0, 64 * MiB)
                        self.assertGreaterEqual(h1 - h0, 64 * MiB)
                        stack("fs", "rm", "-p", pool, "v", *k, "/big", check=0)
                        self.assertLess(self.mapped(pool, "v"), m0 + MiB)
                        self.assertLess(host_allocated(pool), h0 + 2 * MiB)
                        self.assert_fsck_clean(pool, "v", encrypted)
                        # Overwritten by a small file (the old data goes), then
                        # truncated by another put of the same path.
                        stack("fs", "put", "-p", pool, "v", *k, big, "/big", check=0)
                        stack("fs", "put", "-p", pool, "v", *k, small, "/big", check=0)
                        self.assertLess(self.mapped(pool, "v"), m0 + MiB)
                        self.assertLess(host_allocated(pool), h0 + 2 * MiB)
                        r = stack("fs", "cat", "-p", pool, "v", *k, "/big", check=0)
                        self.assertEqual(r.out, "small\n")
                        self.assert_fsck_clean(pool, "v", encrypted)
        finally:
            for where, d in dirs[1:]:
                shutil.rmtree(d, ignore_errors=True)

    def test_failed_put_frees_its_data(self):
        huge = random_file(self.path("huge"), 96 * MiB, 2)
        for encrypted in (True, False):
            with self.subTest(encrypted=encrypted):
                pool = self.path(f"f-{encrypted}.stk")
                self.build(pool, "v", encrypted, size="64M")
                k = self.key_args(encrypted)
                m0, h0 = self.mapped(pool, "v"), host_allocated(pool)
                r = stack("fs", "put", "-p", pool, "v", *k, huge, "/huge")
                self.assertEqual(r.rc, EXIT["nospace"], r.err)
                self.assertLess(self.mapped(pool, "v"), m0 + MiB)
                self.assertLess(host_allocated(pool), h0 + 2 * MiB)
                self.assert_fsck_clean(pool, "v", encrypted)

    def test_snapshots_keep_their_blocks(self):
        big = random_file(self.path("big"), 64 * MiB, 3)
        pool = self.path("s.stk")
        self.build(pool, "v", True)
        stack("fs", "put", "-p", pool, "v", "-k", self.key, big, "/big", check=0)
        stack("snapshot", "create", "-p", pool, "v", "keep", check=0)
        used, h = self.pool_used(pool), host_allocated(pool)
        stack("fs", "rm", "-p", pool, "v", "-k", self.key, "/big", check=0)
        # The volume no longer maps the data; the snapshot still holds it.
        self.assertLess(self.mapped(pool, "v"), self.mapped(pool, "v@keep") - 60 * MiB)
        self.assertGreater(self.pool_used(pool), used - 2 * MiB)
        self.assertGreater(host_allocated(pool), h - 2 * MiB)
        r = stack("fs", "get", "-p", pool, "v@keep", "-k", self.key, "/big", self.path("back"),
                  check=0)
        with open(big, "rb") as a, open(self.path("back"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "the snapshot's copy differs")
        self.assert_fsck_clean(pool, "v", True)
        # Its last holder gone, the data leaves the pool file.
        stack("snapshot", "rm", "-p", pool, "v@keep", check=0)
        self.assertLess(host_allocated(pool), h - 60 * MiB)

    @unittest.skipUnless(need("mke2fs") and need("debugfs"), "needs mke2fs and debugfs")
    def test_trim_frees_free_blocks_that_hold_data(self):
        # A plain image whose free blocks still hold a removed file's data
        # (debugfs frees without discarding), imported into a pool.
        img = self.path("plain.img")
        random_file(self.path("data"), 48 * MiB, 4)
        sh(f"mke2fs -q -t ext4 -F {img} 128M")
        sh(f"debugfs -w -R 'write {self.path('data')} data' {img}")
        sh(f"debugfs -w -R 'rm data' {img}")
        pool = self.path("t.stk")
        stack("pool", "create", pool, check=0)
        stack("import", "-p", pool, img, "v", check=0)
        m0, h0 = self.mapped(pool, "v"), host_allocated(pool)
        self.assertGreaterEqual(m0, 48 * MiB)
        # fs df says what a trim would give back.
        df = stack("--json", "fs", "df", "-p", pool, "v", check=0).json()
        self.assertGreaterEqual(df["trimmable_bytes"], 47 * MiB)
        r = stack("--json", "fs", "trim", "-p", pool, "v", check=0).json()
        self.assertGreaterEqual(r["freed_bytes"], 47 * MiB)
        self.assertGreater(r["trimmed_bytes"], 100 * MiB)  # every free range, as fstrim
        self.assertEqual(r["mapped_bytes"], self.mapped(pool, "v"))
        self.assertLessEqual(self.mapped(pool, "v"), m0 - r["freed_bytes"])
        self.assertLess(host_allocated(pool), h0 - 46 * MiB)
        self.assert_fsck_clean(pool, "v", False)
        df = stack("--json", "fs", "df", "-p", pool, "v", check=0).json()
        self.assertEqual(df["trimmable_bytes"], 0)
        # Nothing left to free: a second trim frees nothing; text output.
        r = stack("fs", "trim", "-p", pool, "v", check=0)
        self.assertIn("the pool freed 0 B", r.out)

    @unittest.skipUnless(need("cryptsetup"), "needs cryptsetup")
    def test_allow_discards_by_default_and_no_discards_honoured(self):
        big = random_file(self.path("big"), 64 * MiB, 5)
        pool = self.path("d.stk")
        # Default: the flag is in the header cryptsetup reads (stored export).
        self.build(pool, "on", True)
        stack("export", "-p", pool, "on", self.path("on.img"), check=0)
        self.assertIn("allow-discards", sh(f"cryptsetup luksDump {self.path('on.img')}").stdout)
        # --no-discards: cryptsetup's default; rm frees nothing in the pool
        # and trim is refused, naming the reason.
        self.build(pool, "off", True, extra=["--no-discards"])
        stack("export", "-p", pool, "off", self.path("off.img"), check=0)
        dump = sh(f"cryptsetup luksDump {self.path('off.img')}").stdout
        self.assertNotIn("allow-discards", dump)
        stack("fs", "put", "-p", pool, "off", "-k", self.key, big, "/big", check=0)
        m1 = self.mapped(pool, "off")
        stack("fs", "rm", "-p", pool, "off", "-k", self.key, "/big", check=0)
        self.assertGreater(self.mapped(pool, "off"), m1 - MiB)
        df = stack("--json", "fs", "df", "-p", pool, "off", "-k", self.key, check=0).json()
        self.assertIsNone(df["trimmable_bytes"])
        r = stack("fs", "trim", "-p", pool, "off", "-k", self.key)
        self.assertEqual(r.rc, EXIT["unsupported"], r.err)
        self.assertOneLineError(r, "Unsupported")
        self.assertIn("allow-discards", r.err)
        # The same container with the flag set (as cryptsetup refresh
        # --persistent would): trim gives the removed file's blocks back.
        img = self.path("off2.img")
        stack("export", "-p", pool, "off", img, check=0)
        set_allow_discards(img)
        self.assertIn("allow-discards", sh(f"cryptsetup luksDump {img}").stdout)
        stack("import", "-p", pool, img, "flagged", check=0)
        m0, h0 = self.mapped(pool, "flagged"), host_allocated(pool)
        r = stack("--json", "fs", "trim", "-p", pool, "flagged", "-k", self.key, check=0).json()
        self.assertGreaterEqual(r["freed_bytes"], 62 * MiB)
        self.assertLessEqual(self.mapped(pool, "flagged"), m0 - 62 * MiB)
        self.assertLess(host_allocated(pool), h0 - 60 * MiB)
        self.assert_fsck_clean(pool, "flagged", True)


if __name__ == "__main__":
    main()

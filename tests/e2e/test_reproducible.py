"""Reproducible encrypted images (issue 16.4): every sector written through
the LUKS2 layer is written whole with defined content, so an encrypted build
with --uuid and --timestamp (or SOURCE_DATE_EPOCH) decrypts to exactly the
plain build of the same input, and block 0 carries no stray boot signature.
A clone given its own passphrase gets its own LUKS2 UUID.

Oracles: cmp of the two plain exports; cryptsetup luksUUID / luksDump of the
raw exports."""
import os
import shutil
import subprocess
import unittest

from images import FAST_KDF, make_tree, write_pass
from stacktest import StackTestCase, main, sh, stack

UUID = "0badc0de-1234-4321-8888-a5a5a5a5a5a5"
TS = "1700000000"
MiB = 1 << 20


class ReproducibleTest(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("pass"))
        self.tree = make_tree(self.path("tree"))

    def export_plain(self, entry, key=True):
        out = self.path(entry.replace("@", "_") + ".img")
        args = ["export", "-p", self.pool, entry, out, "--format", "plain"]
        stack(*args + (["-k", self.key] if key else []), check=0)
        return out

    def test_encrypted_build_decrypts_to_the_plain_build(self):
        # 176 MiB volume - 16 MiB header = 160 MiB of ext4: two groups, so a
        # backup superblock (1 KiB at the start of group 1) is covered too.
        stack("build", "-p", self.pool, "enc", "--from", self.tree, "--size", "176M",
              "-k", self.key, *FAST_KDF, "--uuid", UUID, "--timestamp", TS, check=0)
        # SOURCE_DATE_EPOCH instead of --timestamp: the same image.
        stack("build", "-p", self.pool, "enc2", "--from", self.tree, "--size", "176M",
              "-k", self.key, *FAST_KDF, "--uuid", UUID, env={"SOURCE_DATE_EPOCH": TS}, check=0)
        enc = self.export_plain("enc")
        fs_size = os.path.getsize(enc)
        self.assertEqual(fs_size, 160 * MiB)
        stack("build", "-p", self.pool, "pl", "--from", self.tree, "--size", str(fs_size),
              "--no-encrypt", "--uuid", UUID, "--timestamp", TS, check=0)
        plain = self.export_plain("pl", key=False)
        r = subprocess.run(["cmp", enc, plain], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "decrypted encrypted build differs from the plain "
                         "build: " + r.stdout + r.stderr)
        r = subprocess.run(["cmp", enc, self.export_plain("enc2")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(enc, "rb") as f:
            block0 = f.read(4096)
        self.assertEqual(block0[510:512], b"\0\0")
        self.assertEqual(block0[:1024], bytes(1024), "boot area of block 0 is not zeros")
        self.assertEqual(block0[2048:], bytes(2048), "block 0 after the superblock is not zeros")
        # The two containers differ (own volume keys), their content does not.
        raw1, raw2 = self.path("enc.luks"), self.path("enc2.luks")
        stack("export", "-p", self.pool, "enc", raw1, "--format", "raw", check=0)
        stack("export", "-p", self.pool, "enc2", raw2, "--format", "raw", check=0)
        self.assertNotEqual(subprocess.run(["cmp", "-s", raw1, raw2]).returncode, 0)

    def test_large_pool_blocks_give_the_same_4k_file_system(self):
        # With 64 KiB pool blocks a plain build formatted 64 KiB ext4 blocks
        # (an image most kernels cannot mount) and so differed from the
        # encrypted build (4 KiB LUKS2 sectors below it). Both are 4 KiB
        # ext4 now, read-modify-written into the pool's blocks, and the
        # decrypted encrypted build is again the plain build, byte for byte.
        stack("pool", "create", self.pool, "--size", "64M", "--block-size", "65536", check=0)
        stack("build", "-p", self.pool, "enc", "--from", self.tree, "--size", "80M",
              "-k", self.key, *FAST_KDF, "--uuid", UUID, "--timestamp", TS, check=0)
        enc = self.export_plain("enc")
        stack("build", "-p", self.pool, "pl", "--from", self.tree, "--size",
              str(os.path.getsize(enc)), "--no-encrypt", "--uuid", UUID, "--timestamp", TS,
              check=0)
        plain = self.export_plain("pl", key=False)
        for img in (enc, plain):
            out = sh(f"dumpe2fs -h {img} 2>/dev/null").stdout
            self.assertRegex(out, r"Block size:\s+4096\n", img)
        r = subprocess.run(["cmp", enc, plain], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "on 64 KiB pool blocks the decrypted encrypted build "
                         "differs from the plain build: " + r.stdout + r.stderr)
        r = subprocess.run(["e2fsck", "-fn", plain], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_clone_with_new_key_gets_its_own_luks_uuid(self):
        if not shutil.which("cryptsetup"):
            self.skipTest("cryptsetup not installed (the LUKS2 oracle)")
        stack("build", "-p", self.pool, "gold", "--from", self.tree, "--size", "64M",
              "-k", self.key, *FAST_KDF, check=0)
        new_key = write_pass(self.path("new"), b"another passphrase")

        def luks_uuid(entry):
            raw = self.path(entry.replace("@", "_") + ".luks")
            if os.path.exists(raw):
                os.unlink(raw)
            stack("export", "-p", self.pool, entry, raw, "--format", "raw", check=0)
            return sh(f"cryptsetup luksUUID {raw}").stdout.strip()

        source = luks_uuid("gold@golden")
        stack("clone", "-p", self.pool, "gold@golden", "c1", "-k", self.key,
              "--new-key-file", new_key, *FAST_KDF, check=0)
        clone = luks_uuid("c1")
        self.assertNotEqual(clone, source)
        self.assertEqual(luks_uuid("gold@golden"), source)  # the source keeps its own
        self.assertEqual(luks_uuid("gold"), source)
        # A clone without a new passphrase is the same container.
        stack("clone", "-p", self.pool, "gold@golden", "c2", check=0)
        self.assertEqual(luks_uuid("c2"), source)


if __name__ == "__main__":
    main()

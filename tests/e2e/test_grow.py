"""Clones that grow (issue 16.3): `clone --size`, `volume resize` and
`stack fs resize` grow the ext4 inside a volume, plain or through its LUKS2
container (whose dynamic data segment follows the volume), in place.

Oracles: `stack fs df`, e2fsck -fn and dumpe2fs of the decrypted export,
debugfs reading a file written into the new space, cryptsetup luksDump of
the raw export (the segment stays dynamic), and the origin snapshot's
decrypted content, unchanged."""
import hashlib
import os
import re
import shutil
import unittest

from images import FAST_KDF, e2fsck_clean, make_tree, plain_fingerprint, write_pass
from stacktest import EXIT, StackTestCase, main, sh, stack

MiB = 1 << 20


def random_file(path, size, seed):
    with open(path, "wb") as f:
        for i in range(size // 32):
            f.write(hashlib.sha256(f"{seed}/{i}".encode()).digest())
    return path


def file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class GrowTest(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("pass"))
        make_tree(self.path("tree"))

    def build(self, name, size="64M", encrypt=True):
        args = ["build", "-p", self.pool, name, "--from", self.path("tree"), "--size", size]
        args += ["-k", self.key, *FAST_KDF] if encrypt else ["--no-encrypt"]
        stack(*args, check=0)

    def df(self, entry, key=True):
        args = ["--json", "fs", "df", "-p", self.pool, entry] + (["-k", self.key] if key else [])
        return stack(*args, check=0).json()

    def fs_bytes(self, entry, key=True):
        d = self.df(entry, key)
        return d["blocks_total"] * d["block_size"]

    def export_plain(self, entry, key=True):
        out = self.path(entry.replace("@", "_") + ".img")
        if os.path.exists(out):
            os.unlink(out)
        args = ["export", "-p", self.pool, entry, out, "--format", "plain"]
        stack(*args + (["-k", self.key] if key else []), check=0)
        return out

    def assert_clean(self, img):
        rc, out = e2fsck_clean(img)
        self.assertEqual(rc, 0, out)

    def put_past_old_free(self, entry, old_free, key=True):
        """Writes a file larger than the free space before growing, and
        checks it back through debugfs on the plain export."""
        src = random_file(self.path("big.bin"), old_free + 8 * MiB, 1)
        args = ["fs", "put", "-p", self.pool, entry, src, "/big.bin"]
        stack(*args + (["-k", self.key] if key else []), check=0)
        img = self.export_plain(entry, key)
        self.assert_clean(img)
        got = self.path("got.bin")
        sh(f"debugfs -R 'dump /big.bin {got}' {img}")
        self.assertEqual(file_sha(got), file_sha(src))
        return img

    def test_encrypted_clone_grows_3x(self):
        self.build("gold")
        origin = plain_fingerprint(self.tmp, self.pool, "gold@golden", self.key)
        before = self.df("gold@golden")
        old_free = before["blocks_free"] * before["block_size"]
        r = stack("--json", "clone", "-p", self.pool, "gold@golden", "c1", "--size", "192M",
                  "-k", self.key, check=0).json()
        self.assertTrue(r["filesystem"]["grown"], r)
        # The LUKS2 segment follows the volume: ext4 fills all but the header.
        if not shutil.which("cryptsetup"):
            self.skipTest("cryptsetup not installed (the LUKS2 oracle)")
        raw = self.path("c1.luks")
        stack("export", "-p", self.pool, "c1", raw, "--format", "raw", check=0)
        dump = sh(f"cryptsetup luksDump {raw}").stdout
        offset = int(re.search(r"offset:\s+(\d+) \[bytes\]", dump).group(1))
        self.assertRegex(dump, r"length:\s+\(whole device\)")
        self.assertEqual(self.fs_bytes("c1"), 192 * MiB - offset)
        self.assertEqual(r["filesystem"]["bytes_after"], 192 * MiB - offset)
        img = self.put_past_old_free("c1", old_free)
        blocks = int(re.search(r"Block count:\s+(\d+)", sh(f"dumpe2fs -h {img}").stdout).group(1))
        self.assertEqual(blocks * 4096, 192 * MiB - offset)
        # The origin snapshot is untouched.
        self.assertEqual(plain_fingerprint(self.tmp, self.pool, "gold@golden", self.key), origin)
        self.assertEqual(self.df("gold@golden")["blocks_total"], before["blocks_total"])

    def test_plain_clone_and_volume_resize(self):
        self.build("gold", encrypt=False)
        before = self.df("gold@golden", key=False)
        stack("clone", "-p", self.pool, "gold@golden", "c1", "--size", "192M", check=0)
        self.assertEqual(self.fs_bytes("c1", key=False), 192 * MiB)
        stack("volume", "resize", "-p", self.pool, "c1", "--size", "256M", check=0)
        self.assertEqual(self.fs_bytes("c1", key=False), 256 * MiB)
        self.put_past_old_free("c1", before["blocks_free"] * before["block_size"], key=False)
        # --no-fs-resize leaves it.
        stack("volume", "resize", "-p", self.pool, "c1", "--size", "320M", "--no-fs-resize",
              check=0)
        self.assertEqual(self.fs_bytes("c1", key=False), 256 * MiB)
        r = stack("--json", "fs", "resize", "-p", self.pool, "c1", check=0).json()
        self.assertTrue(r["grown"], r)
        self.assertEqual(self.fs_bytes("c1", key=False), 320 * MiB)
        self.assert_clean(self.export_plain("c1", key=False))

    def test_encrypted_without_passphrase_grows_the_volume_only(self):
        self.build("gold")
        old = self.fs_bytes("gold@golden")
        r = stack("clone", "-p", self.pool, "gold@golden", "c1", "--size", "192M", check=0)
        self.assertIn("was not grown", r.err)
        self.assertEqual(self.fs_bytes("c1"), old)
        # --no-fs-resize: silent, not grown.
        r = stack("clone", "-p", self.pool, "gold@golden", "c2", "--size", "192M", "-k", self.key,
                  "--no-fs-resize", check=0)
        self.assertEqual(r.err, "")
        self.assertEqual(self.fs_bytes("c2"), old)
        # fs resize grows it later, and the volume with --size.
        stack("fs", "resize", "-p", self.pool, "c1", "-k", self.key, "--size", "256M", check=0)
        info = stack("--json", "volume", "list", "-p", self.pool, "c1", check=0).json()
        entries = info if isinstance(info, list) else info.get("entries", info)
        size = [e for e in entries if e["name"] == "c1"][0]["size_bytes"]
        self.assertEqual(size, 256 * MiB)
        self.assertGreater(self.fs_bytes("c1"), 256 * MiB - 32 * MiB)
        self.assert_clean(self.export_plain("c1"))

    def test_shrinking_is_refused_and_changes_nothing(self):
        self.build("gold")
        stack("clone", "-p", self.pool, "gold@golden", "c1", "--size", "128M", "-k", self.key,
              check=0)
        fp = plain_fingerprint(self.tmp, self.pool, "c1", self.key)
        r = stack("fs", "resize", "-p", self.pool, "c1", "-k", self.key, "--size", "64M")
        self.assertEqual(r.rc, EXIT["unsupported"], r.err)
        self.assertOneLineError(r, "Unsupported")
        self.assertEqual(plain_fingerprint(self.tmp, self.pool, "c1", self.key), fp)
        # A volume without ext4: Corruption, and its size stays.
        stack("volume", "create", "-p", self.pool, "empty", "--size", "32M", check=0)
        r = stack("fs", "resize", "-p", self.pool, "empty", "--size", "64M")
        self.assertEqual(r.rc, EXIT["corruption"], r.err)
        info = stack("--json", "volume", "list", "-p", self.pool, "empty", check=0).json()
        entries = info if isinstance(info, list) else info.get("entries", info)
        self.assertEqual([e for e in entries if e["name"] == "empty"][0]["size_bytes"], 32 * MiB)
        # A snapshot cannot grow.
        r = stack("fs", "resize", "-p", self.pool, "gold@golden", "-k", self.key)
        self.assertEqual(r.rc, EXIT["readonly"], r.err)
        # Wrong passphrase: refused before the volume changes.
        bad = write_pass(self.path("bad"), b"wrong")
        r = stack("fs", "resize", "-p", self.pool, "c1", "-k", bad, "--size", "256M")
        self.assertEqual(r.rc, EXIT["auth"], r.err)
        info = stack("--json", "volume", "list", "-p", self.pool, "c1", check=0).json()
        entries = info if isinstance(info, list) else info.get("entries", info)
        self.assertEqual([e for e in entries if e["name"] == "c1"][0]["size_bytes"], 128 * MiB)

    def test_past_the_layout_limit_is_refused_and_the_volume_kept(self):
        # 8 MiB of 4 KiB blocks: one descriptor block and none reserved
        # (mke2fs reserves for 1024x, which one block already covers): 64
        # groups, 8 GiB.
        stack("pool", "create", self.pool, "--size", "64M", check=0)
        stack("volume", "create", "-p", self.pool, "small", "--size", "8M", check=0)
        stack("fs", "mkfs", "-p", self.pool, "small", check=0)
        img = self.export_plain("small", key=False)
        with open(img, "rb") as f:
            before = f.read()
        r = stack("fs", "resize", "-p", self.pool, "small", "--size", "9G")
        self.assertEqual(r.rc, EXIT["unsupported"], r.err)
        self.assertOneLineError(r, "Unsupported")
        self.assertIn("at most 8589934592 bytes", r.err)
        info = stack("--json", "volume", "list", "-p", self.pool, "small", check=0).json()
        entries = info if isinstance(info, list) else info.get("entries", info)
        self.assertEqual([e for e in entries if e["name"] == "small"][0]["size_bytes"], 8 * MiB)
        with open(self.export_plain("small", key=False), "rb") as f:
            self.assertEqual(f.read(), before)
        # volume resize: the same refusal, the same volume.
        r = stack("volume", "resize", "-p", self.pool, "small", "--size", "9G")
        self.assertEqual(r.rc, EXIT["unsupported"], r.err)
        stack("fs", "resize", "-p", self.pool, "small", "--size", "1G", check=0)
        self.assertEqual(self.fs_bytes("small", key=False), 1024 * MiB)
        self.assert_clean(self.export_plain("small", key=False))

    def test_image_file(self):
        self.build("gold")
        img = self.path("gold.luks")
        stack("export", "-p", self.pool, "gold@golden", img, "--format", "raw", check=0)
        stack("fs", "resize", "--image", img, "-k", self.key, "--size", "128M", check=0)
        self.assertEqual(os.path.getsize(img), 128 * MiB)
        plain = self.path("gold.plain")
        stack("export", "--image", img, plain, "--format", "plain", "-k", self.key, check=0)
        self.assert_clean(plain)
        d = stack("--json", "fs", "df", "--image", img, "-k", self.key, check=0).json()
        self.assertGreater(d["blocks_total"] * d["block_size"], 100 * MiB)


if __name__ == "__main__":
    main()

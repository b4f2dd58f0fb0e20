"""Export by kernel offload: reflink and copy_file_range, reported, never
downgraded silently, and still checksum-verified."""
import os
import shutil
import subprocess
import tempfile

from images import FAST_KDF, allocated_bytes, make_tree, sha256, write_pass
from stacktest import EXIT, StackTestCase, main, sh, stack

BS = 4096


def export_json(pool, entry, out, *extra, check=0):
    r = stack("--json", "export", "-p", pool, entry, out, *extra, check=check)
    return r.json() if check == 0 else r


class ExportMethods(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("pass.txt"))
        stack("build", "-p", self.pool, "base", "--from", make_tree(self.path("tree")),
              "--size", "96M", "--snapshot", "v1", "-k", self.key, *FAST_KDF, check=0)
        self.ref = self.path("ref.img")
        rep = export_json(self.pool, "base@v1", self.ref, "--method", "read-write")
        self.assertEqual(rep["method"], "sparse-extent-copy")
        self.assertEqual(rep["method_note"], "")

    def test_every_method_gives_the_same_sparse_image(self):
        auto = export_json(self.pool, "base@v1", self.path("auto.img"))
        # Auto: reflink where offered, else our read-write copy, saying why.
        self.assertIn(auto["method"], ("reflink", "sparse-extent-copy"))
        if auto["method"] != "reflink":
            self.assertIn("reflink", auto["method_note"])
        self.assertFalse(auto["synced"])
        cr = export_json(self.pool, "base@v1", self.path("cr.img"), "--method", "copy-range",
                         "--sync")
        self.assertEqual(cr["method"], "copy_file_range")
        self.assertTrue(cr["synced"])
        for name in ("auto.img", "cr.img"):
            self.assertEqual(sha256(self.path(name)), sha256(self.ref), name)
            self.assertEqual(os.path.getsize(self.path(name)), 96 << 20)
            # Holes stay holes: no more on disk than the read-write export.
            self.assertLessEqual(allocated_bytes(self.path(name)),
                                 allocated_bytes(self.ref) + BS, name)
        # A reflink writes nothing: its bytes are shared, not written (issue 16).
        self.assertEqual(cr["written_bytes"], auto["written_bytes"] + auto["shared_bytes"])
        if auto["method"] == "reflink":
            self.assertEqual(auto["written_bytes"], 0)
        sh(f"cryptsetup luksDump {self.path('cr.img')} >/dev/null")

    def test_explicit_method_not_offered_is_an_error(self):
        probe = export_json(self.pool, "base@v1", self.path("probe.img"))
        if probe["method"] == "reflink":
            self.skipTest("this file system offers reflink; the XFS test covers it")
        out = self.path("r.img")
        r = stack("export", "-p", self.pool, "base@v1", out, "--method", "reflink",
                  check=EXIT["unsupported"])
        self.assertOneLineError(r, "Unsupported")
        self.assertIn("FICLONERANGE", r.err)
        self.assertFalse(os.path.exists(out), "a refused export left a file behind")

    def test_offload_needs_stored_bytes(self):
        out = self.path("x.img")
        r = stack("export", "-p", self.pool, "base@v1", out, "--format", "plain", "-k",
                  self.key, "--method", "copy-range", check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        r = stack("export", "--image", self.ref, out, "--method", "copy-range",
                  check=EXIT["unsupported"])
        self.assertOneLineError(r, "Unsupported")
        self.assertFalse(os.path.exists(out))
        r = stack("export", "-p", self.pool, "base@v1", out, "--method", "teleport",
                  check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")

    def test_offload_still_checks_checksums(self):
        # Find one ciphertext block of the image inside the pool file.
        block = None
        with open(self.ref, "rb") as f:
            f.seek(16 << 20)  # past the LUKS2 header: ciphertext
            while block is None:
                b = f.read(BS)
                self.assertEqual(len(b), BS, "no data block found in the export")
                if b != bytes(BS):
                    block = b
        with open(self.pool, "rb") as f:
            data = f.read()
        at = data.find(block)
        self.assertTrue(at >= 0, "export block not found in the pool file")
        self.assertEqual(at % BS, 0)
        with open(self.pool, "r+b") as f:
            f.seek(at + 100)
            b = f.read(1)
            f.seek(at + 100)
            f.write(bytes([b[0] ^ 1]))
        for method in ("auto", "copy-range", "read-write"):
            out = self.path(f"bad-{method}.img")
            r = stack("export", "-p", self.pool, "base@v1", out, "--method", method,
                      check=EXIT["corruption"])
            self.assertOneLineError(r, "Corruption")
            self.assertIn("checksum", r.err)
            self.assertFalse(os.path.exists(out), method)


class ReflinkOnXfs(StackTestCase):
    """A real reflink: an XFS file system on a loop mount (needs root)."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mount -o loop needs root")
        if not shutil.which("mkfs.xfs"):
            self.skipTest("mkfs.xfs (xfsprogs) not installed")
        img = self.path("xfs.img")
        with open(img, "wb") as f:
            f.truncate(512 << 20)
        sh(f"mkfs.xfs -q -m reflink=1 {img}")
        self.mnt = self.path("mnt")
        os.mkdir(self.mnt)
        r = sh(f"mount -o loop {img} {self.mnt}", check=False)
        if r.returncode != 0:
            self.skipTest(f"mount -o loop not permitted here: {r.stderr.strip()}")

    def tearDown(self):
        sh(f"umount {self.mnt}", check=False)
        super().tearDown()

    def test_reflink_export_shares_extents(self):
        pool = os.path.join(self.mnt, "p.stk")
        key = write_pass(self.path("pass.txt"))
        stack("build", "-p", pool, "base", "--from", make_tree(self.path("tree")),
              "--size", "96M", "--snapshot", "v1", "-k", key, *FAST_KDF, check=0)
        ref = os.path.join(self.mnt, "ref.img")
        export_json(pool, "base@v1", ref, "--method", "read-write")
        free_before = os.statvfs(self.mnt).f_bfree * os.statvfs(self.mnt).f_frsize
        out = os.path.join(self.mnt, "r.img")
        rep = export_json(pool, "base@v1", out, "--method", "reflink")
        self.assertEqual(rep["method"], "reflink")
        self.assertEqual(rep["method_note"], "")
        self.assertEqual(sha256(out), sha256(ref))
        auto = export_json(pool, "base@v1", os.path.join(self.mnt, "a.img"))
        self.assertEqual(auto["method"], "reflink")
        # Shared extents: FIEMAP flags them, and the export used almost no space.
        fiemap = sh(f"xfs_io -r -c 'fiemap -v' {out}").stdout
        self.assertIn("0x2000", fiemap, fiemap)  # FIEMAP_EXTENT_SHARED
        free_after = os.statvfs(self.mnt).f_bfree * os.statvfs(self.mnt).f_frsize
        # The report says so: nothing written, every data byte shared (issue 16).
        self.assertEqual(rep["written_bytes"], 0)
        self.assertGreater(rep["shared_bytes"], 0)
        self.assertEqual(rep["shared_bytes"], auto["shared_bytes"])
        self.assertLess(free_before - free_after, rep["shared_bytes"] // 4)
        sh(f"cryptsetup luksDump {out} >/dev/null")


if __name__ == "__main__":
    main()

"""import --into (issue 15): a changed export brought back into its volume,
writing only the blocks that differ. Oracles: debugfs (where a file's blocks
are in the image, and what it reads), e2fsck -fn (a fresh export is clean),
byte comparison of fresh exports with the imported file, `pool info`
(the pool grew by the changed bytes only), `pool check`."""
import os
import random
import subprocess
import time

from images import FAST_KDF, e2fsck_clean, export, write_pass
from stacktest import EXIT, StackTestCase, main, stack

FS_BLOCK = 4096


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def file_blocks(img, path):
    """Physical fs blocks of `path` in the ext4 image, in file order (debugfs)."""
    r = subprocess.run(["debugfs", "-R", f"blocks {path}", img], capture_output=True,
                       text=True, check=True)
    return [int(b) for b in r.stdout.split()]


class ImportInto(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("pass.txt"))
        tree = self.path("tree")
        os.makedirs(tree)
        self.big = os.urandom(4 << 20)
        with open(os.path.join(tree, "big"), "wb") as f:
            f.write(self.big)
        with open(os.path.join(tree, "small.txt"), "w") as f:
            f.write("small\n")
        stack("build", "-p", self.pool, "vm", "--from", tree, "--size", "64M", "--snapshot",
              "v1", "-k", self.key, *FAST_KDF, check=0)

    def info(self):
        return stack("--json", "pool", "info", "-p", self.pool, check=0).json()

    def into(self, img, *extra):
        return stack("--json", "import", "-p", self.pool, img, "--into", "vm", *extra)

    def plain(self, entry, name):
        out = self.path(name)
        if os.path.exists(out):
            os.unlink(out)
        export(self.pool, entry, out, "plain", self.key)
        return out

    def assertClean(self):
        r = stack("pool", "check", "-p", self.pool)
        self.assertEqual(r.rc, 0, r.out + r.err)

    def test_plain_round_trip_writes_only_the_changes(self):
        stack("clone", "-p", self.pool, "vm@v1", "c", check=0)
        old = self.plain("vm@v1", "old.img")
        img = self.plain("vm", "vm.img")
        blocks = file_blocks(img, "/big")
        self.assertEqual(len(blocks), len(self.big) // FS_BLOCK)
        expect = bytearray(self.big)
        # Three changed ranges inside /big's data and a hole punched over a fourth.
        with open(img, "r+b") as f:
            for first, n in ((10, 1), (200, 4), (500, 10)):
                for i in range(first, first + n):
                    data = os.urandom(FS_BLOCK)
                    f.seek(blocks[i] * FS_BLOCK)
                    f.write(data)
                    expect[i * FS_BLOCK:(i + 1) * FS_BLOCK] = data
        hole = list(range(700, 716))
        self.assertEqual(blocks[716] - blocks[700], 16, "test wants /big contiguous there")
        subprocess.run(["fallocate", "-p", "-o", str(blocks[700] * FS_BLOCK), "-l",
                        str(16 * FS_BLOCK), img], check=True)
        for i in hole:
            expect[i * FS_BLOCK:(i + 1) * FS_BLOCK] = bytes(FS_BLOCK)
        changed = (1 + 4 + 10 + 16) * FS_BLOCK
        used = self.info()["used_bytes"]
        r = self.into(img, "--format", "plain", "-k", self.key, "--snapshot", "v2")
        self.assertEqual(r.rc, 0, r.err)
        rep = r.json()
        self.assertEqual(rep["changed_bytes"], changed, rep)
        self.assertEqual(rep["written_bytes"], changed)
        self.assertEqual(rep["snapshot"], "vm@v2")
        self.assertEqual(rep["pool_used_before"], used)
        grew = self.info()["used_bytes"] - used
        # The changed blocks plus a few metadata nodes, not the image.
        self.assertGreaterEqual(grew, changed)
        self.assertLessEqual(grew, changed + 256 * 1024, f"pool grew by {grew}")
        # The volume now reads exactly the file; its snapshot and clone did not move.
        self.assertTrue(same_bytes(self.plain("vm", "new.img"), img))
        self.assertTrue(same_bytes(self.plain("vm@v2", "v2.img"), img))
        self.assertTrue(same_bytes(self.plain("vm@v1", "v1.img"), old))
        self.assertTrue(same_bytes(self.plain("c", "c.img"), old))
        rc, log = e2fsck_clean(self.path("new.img"))
        self.assertEqual(rc, 0, log)
        # Through the file system: the hole reads as zeros, not as the noise a
        # discarded block under LUKS decrypts to.
        r = stack("fs", "cat", "-p", self.pool, "vm", "/big", "-k", self.key, input=b"")
        self.assertEqual(r.rc, 0, r.err)
        self.assertTrue(r.out == bytes(expect), "stack fs cat /big differs from the import")
        # The same file again: nothing differs, nothing is written.
        used = self.info()["used_bytes"]
        rep = self.into(img, "--format", "plain", "-k", self.key).json()
        self.assertEqual(rep["changed_bytes"], 0)
        self.assertEqual(self.info()["used_bytes"], used)
        self.assertClean()

    def test_plain_one_bit_changes_are_each_found(self):
        # A plain import compares mapped blocks by the pool's checksum of the
        # file's ciphertext, not by reading them: every block with one bit
        # flipped (anywhere in the block, in every batch of the comparison),
        # and a block overwritten with zeros (not a hole), must be written;
        # nothing else.
        img = self.plain("vm", "vm.img")
        blocks = file_blocks(img, "/big")
        picks = [3, 200, 255, 256, 511, 767, 1000]  # across 1 MiB batches
        with open(img, "r+b") as f:
            for n, i in enumerate(picks):
                at = blocks[i] * FS_BLOCK + (n * 613) % FS_BLOCK
                f.seek(at)
                byte = f.read(1)[0]
                f.seek(at)
                f.write(bytes([byte ^ (1 << (n % 8))]))
            f.seek(blocks[600] * FS_BLOCK)
            f.write(bytes(FS_BLOCK))
        r = self.into(img, "--format", "plain", "-k", self.key)
        self.assertEqual(r.rc, 0, r.err)
        rep = r.json()
        self.assertEqual(rep["changed_bytes"], (len(picks) + 1) * FS_BLOCK, rep)
        self.assertEqual(rep["written_bytes"], (len(picks) + 1) * FS_BLOCK)
        self.assertTrue(same_bytes(self.plain("vm", "new.img"), img))
        # Unchanged again: nothing written.
        self.assertEqual(self.into(img, "--format", "plain", "-k", self.key).json()
                         ["changed_bytes"], 0)
        self.assertClean()

    def test_stored_holes_become_discards(self):
        img = self.path("raw.img")
        with open(img, "wb") as f:
            f.write(os.urandom(1 << 20))
        stack("import", "-p", self.pool, img, "raw", check=0)
        stack("snapshot", "create", "-p", self.pool, "raw@a", check=0)
        before = stack("--json", "volume", "list", "-p", self.pool, check=0).json()
        mapped = {e["name"]: e["mapped_bytes"] for e in before}["raw"]
        with open(img, "r+b") as f:
            f.seek(64 << 10)
            f.write(os.urandom(8192))
        subprocess.run(["fallocate", "-p", "-o", str(512 << 10), "-l", str(128 << 10), img],
                       check=True)
        r = stack("--json", "import", "-p", self.pool, img, "--into", "raw")
        self.assertEqual(r.rc, 0, r.err)
        rep = r.json()
        self.assertEqual(rep["format"], "stored")
        self.assertEqual(rep["written_bytes"], 8192)
        self.assertEqual(rep["discarded_bytes"], 128 << 10)
        after = stack("--json", "volume", "list", "-p", self.pool, check=0).json()
        self.assertEqual({e["name"]: e["mapped_bytes"] for e in after}["raw"], mapped - (128 << 10))
        out = self.path("raw-new.img")
        export(self.pool, "raw", out, "stored")
        self.assertTrue(same_bytes(out, img))
        # An encrypted volume's stored export comes back unchanged (auto: stored).
        st = self.path("vm-stored.img")
        export(self.pool, "vm", st, "stored")
        rep = self.into(st).json()
        self.assertEqual((rep["format"], rep["changed_bytes"]), ("stored", 0))
        self.assertClean()

    def test_holes_in_every_batch_read_as_zeros(self):
        # The comparison works in batches with reused buffers: a hole in a
        # later batch, where an earlier one held data at the same place, is
        # still zeros (a discard), and data after it still compares.
        img = self.path("multi.img")
        with open(img, "wb") as f:
            f.write(os.urandom(6 << 20))
        stack("import", "-p", self.pool, img, "multi", check=0)
        for off, n in (((1 << 20) + (64 << 10), 128 << 10), (3 << 20, 1 << 20),
                       ((5 << 20) + (960 << 10), 64 << 10)):
            subprocess.run(["fallocate", "-p", "-o", str(off), "-l", str(n), img], check=True)
        with open(img, "r+b") as f:
            f.seek((4 << 20) + 4096)
            f.write(os.urandom(4096))
        r = stack("--json", "import", "-p", self.pool, img, "--into", "multi")
        self.assertEqual(r.rc, 0, r.err)
        rep = r.json()
        self.assertEqual(rep["discarded_bytes"], (128 << 10) + (1 << 20) + (64 << 10))
        self.assertEqual(rep["written_bytes"], 4096)
        out = self.path("multi-new.img")
        export(self.pool, "multi", out, "stored")
        self.assertTrue(same_bytes(out, img))
        self.assertClean()

    def test_refusals_change_nothing(self):
        img = self.plain("vm", "vm.img")
        with open(img, "r+b") as f:
            f.seek(1 << 20)
            f.write(os.urandom(4096))
        entries = self.info()["entries"]
        fp = self.plain("vm", "fp.img")
        wrong = write_pass(self.path("wrong.txt"), b"not the passphrase")
        cases = [
            (("--format", "plain", "-k", wrong), "auth"),
            (("--format", "stored"), "usage"),  # a plain image is not a stored one
        ]
        for extra, code in cases:
            r = self.into(img, *extra)
            self.assertEqual(r.rc, EXIT[code], r.err)
        short = self.path("short.img")
        with open(img, "rb") as src, open(short, "wb") as dst:
            dst.write(src.read(os.path.getsize(img) - (1 << 20)))
        r = self.into(short, "--format", "plain", "-k", self.key)
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertIn("bytes", r.err)
        r = stack("import", "-p", self.pool, img, "--into", "vm@v1", "-k", self.key)
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        r = self.into(img, "-k", self.key, "--snapshot", "v1")
        self.assertEqual(r.rc, EXIT["exists"], r.err)
        self.assertEqual(self.info()["entries"], entries)
        self.assertTrue(same_bytes(self.plain("vm", "fp2.img"), fp))
        self.assertClean()

    def test_stored_image_must_hold_this_volumes_container_and_keeps_its_keys(self):
        """Found in sitting 17: a stored image of another volume replaced vm's
        container (vm's passphrase stopped working), a header this build cannot
        open was taken (vm unopenable), and a passphrase removed after the
        export came back with the file's keyslots. Only the data segment of
        this volume's own container is taken now; the volume keeps its header."""
        other = self.path("other.stk")
        okey = write_pass(self.path("other.txt"), b"other passphrase")
        stack("build", "-p", other, "vm2", "--from", self.path("tree"), "--size", "64M",
              "-k", okey, *FAST_KDF, check=0)
        foreign = self.path("foreign.img")
        export(other, "vm2", foreign, "stored")
        fp = self.plain("vm", "fp.img")
        r = self.into(foreign)
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertOneLineError(r, "InvalidArgument")
        self.assertIn("another container than volume 'vm'", r.err)
        # A damaged header (both LUKS2 JSON areas) is refused, as import refuses it.
        st = self.path("vm-stored.img")
        export(self.pool, "vm", st, "stored")
        bad = self.path("bad.img")
        with open(st, "rb") as f, open(bad, "wb") as g:
            g.write(f.read())
        with open(bad, "r+b") as f:
            for off in (4196, 16384 + 4196):
                f.seek(off)
                f.write(b"XXXX")
        r = self.into(bad)
        self.assertEqual(r.rc, EXIT["corruption"], r.err)
        self.assertIn("cannot open", r.err)
        self.assertTrue(same_bytes(self.plain("vm", "fp1.img"), fp))
        # Keys changed since the export stay changed; the data comes in.
        leaked = write_pass(self.path("leaked.txt"), b"leaked passphrase")
        fresh = write_pass(self.path("fresh.txt"), b"fresh passphrase")
        stack("luks", "add-key", "-p", self.pool, "vm", "-k", self.key, "--new-key-file", leaked,
              *FAST_KDF, check=0)
        old_hdr = self.path("old-header.img")  # exported while the leaked key was valid
        export(self.pool, "vm", old_hdr, "stored")
        stack("luks", "remove-key", "-p", self.pool, "vm", "-k", leaked, check=0)
        stack("luks", "change-key", "-p", self.pool, "vm", "-k", self.key, "--new-key-file",
              fresh, *FAST_KDF, check=0)
        stack("snapshot", "create", "-p", self.pool, "vm@keys", check=0)
        # New data (D'), made through a plain import, exported stored, then undone.
        plain = self.path("plain.img")
        export(self.pool, "vm", plain, "plain", fresh)
        with open(plain, "r+b") as f:
            f.seek(8 << 20)
            f.write(os.urandom(4096))
        stack("import", "-p", self.pool, plain, "--into", "vm", "-k", fresh, check=0)
        new_data = self.path("new-data.img")
        export(self.pool, "vm", new_data, "stored")
        stack("snapshot", "rollback", "-p", self.pool, "vm@keys", check=0)
        # The file: the old header (leaked key in it), the new data.
        off = stack("--json", "luks", "dump", "--image", old_hdr, check=0).json()["data_offset"]
        with open(new_data, "rb") as f, open(old_hdr, "r+b") as g:
            f.seek(off)
            g.seek(off)
            g.write(f.read())
        r = self.into(old_hdr)
        self.assertEqual(r.rc, 0, r.err)
        self.assertIn("keeps its own header", r.err)

        def keyslots(entry):
            return stack("--json", "luks", "dump", "-p", self.pool, entry, check=0).json()[
                "keyslots"]
        self.assertEqual(keyslots("vm"), keyslots("vm@keys"))
        r = stack("fs", "ls", "-p", self.pool, "vm", "/", "-k", leaked)
        self.assertEqual(r.rc, EXIT["auth"], r.err)
        out = self.path("after.img")
        export(self.pool, "vm", out, "plain", fresh)
        self.assertTrue(same_bytes(out, plain))
        self.assertClean()

    def test_plain_export_starting_with_a_luks_header_comes_back(self):
        """A guest that encrypts its own disk: the volume's plaintext starts
        with a LUKS header. Its plain export is brought back as plain (auto
        and explicit), never taken for a stored image."""
        inner = self.path("inner.img")
        with open(inner, "wb") as f:
            f.truncate(16 << 20)
        subprocess.run(["cryptsetup", "luksFormat", "-q", "--type", "luks2",
                        "--luks2-metadata-size", "16k", "--luks2-keyslots-size", "1m",
                        "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                        "--key-file", self.key, inner], check=True, capture_output=True)
        stack("volume", "create", "-p", self.pool, "g", "--size", "32M", check=0)
        stack("luks", "format", "-p", self.pool, "g", "--new-key-file", self.key, *FAST_KDF,
              check=0)
        out = self.path("g.plain")
        export(self.pool, "g", out, "plain", self.key)
        with open(inner, "rb") as f, open(out, "r+b") as g:
            g.write(f.read(1 << 20))
        for extra in (("--format", "plain"), ()):
            with self.subTest(extra=extra):
                r = stack("--json", "import", "-p", self.pool, out, "--into", "g", "-k",
                          self.key, *extra)
                self.assertEqual(r.rc, 0, r.err)
                self.assertEqual(r.json()["format"], "plain")
        back = self.path("g.back")
        export(self.pool, "g", back, "plain", self.key)
        self.assertTrue(same_bytes(back, out))
        self.assertClean()

    def test_killed_import_leaves_the_volume_as_before(self):
        img = self.plain("vm", "vm.img")
        fp = self.plain("vm", "fp.img")
        size = os.path.getsize(img)
        with open(img, "r+b") as f:  # bytes only: the file system is not the point here
            f.seek(8 << 20)
            f.write(os.urandom(size - (8 << 20)))
        # A kill that lands after the publishing commit leaves the import done;
        # the volume is then rolled back to this snapshot for the next round.
        r = stack("snapshot", "create", "-p", self.pool, "vm@before-kill")
        self.assertEqual(r.rc, 0, r.err)
        entries = self.info()["entries"]
        stack_bin = os.environ.get("STACK_BIN", "stack")
        rng = random.Random(15)
        killed_midway = 0
        for _ in range(12):
            p = subprocess.Popen([stack_bin, "import", "-p", self.pool, img, "--into", "vm",
                                  "--format", "plain", "-k", self.key],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Once the hidden clone exists (the holder answers `pool info`), wait a
            # little more, then SIGKILL.
            while p.poll() is None:
                r = stack("--json", "pool", "info", "-p", self.pool)
                if r.rc == 0 and r.json()["entries"] > entries:
                    break
            time.sleep(rng.uniform(0, 0.02))
            p.kill()
            p.wait()
            if p.returncode != -9:
                continue  # it finished first: nothing to learn from this round
            # All or nothing: a kill after the publishing commit leaves the
            # import done, any earlier one leaves the volume as it was.
            now = self.plain("vm", "after-kill.img")
            if same_bytes(now, img):
                r = stack("snapshot", "rollback", "-p", self.pool, "vm@before-kill")
                self.assertEqual(r.rc, 0, r.err)
                self.assertTrue(same_bytes(self.plain("vm", "rolled-back.img"), fp))
                continue
            killed_midway += 1
            self.assertTrue(same_bytes(now, fp), "a killed import changed the volume")
            self.assertClean()
        if killed_midway == 0:
            self.skipTest("every import finished before the kill")
        # A writable open removes what the kills left; the whole import then works.
        r = self.into(img, "--format", "plain", "-k", self.key)
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(self.info()["entries"], entries)
        self.assertTrue(same_bytes(self.plain("vm", "done.img"), img))


if __name__ == "__main__":
    main()

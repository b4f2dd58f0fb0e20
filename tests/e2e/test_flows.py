"""User flows 1-5 of architecture.md, end to end, with real oracles."""
import filecmp
import json
import os
import subprocess
import tarfile

from images import (FAST_KDF, PASS, allocated_bytes, debugfs_cat, e2fsck_clean, export,
                    make_tree, sha256, write_pass)
from stacktest import EXIT, StackTestCase, main, sh, stack


class Flows(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("images.stk")
        self.key = write_pass(self.path("pass.txt"))
        self.tree = make_tree(self.path("tree"))

    def build(self, vol="base", snap="v1", src=None, size="256M", extra=()):
        return stack("--json", "build", "-p", self.pool, vol, "--from", src or self.tree,
                     "--size", size, "--snapshot", snap, "-k", self.key, *FAST_KDF, *extra,
                     check=0).json()

    def assertTreeEqual(self, a, b):
        cmp = filecmp.dircmp(a, b, ignore=["lost+found"])
        def walk(c, where):
            self.assertEqual(c.left_only, [], f"only in source {where}")
            self.assertEqual(c.right_only, [], f"only in image {where}")
            (_, mismatch, errors) = filecmp.cmpfiles(c.left, c.right, c.common_files,
                                                     shallow=False)
            self.assertEqual(mismatch + errors, [], f"differ in {where}")
            for name, sub in c.subdirs.items():
                walk(sub, os.path.join(where, name))
        walk(cmp, "/")

    # Flow 1: build an encrypted golden image and snapshot it, in one command.
    def test_flow1_build_from_directory_and_tarball(self):
        rep = self.build()
        self.assertEqual(rep["volume"], "base")
        self.assertEqual(rep["snapshot"], "base@v1")
        self.assertTrue(rep["encrypted"])
        self.assertTrue(rep["created_pool"])
        self.assertEqual(rep["populate"]["files"], 204)   # hostname(+hard link) + 202
        self.assertEqual(rep["populate"]["hardlinks"], 1)
        self.assertEqual(rep["populate"]["symlinks"], 1)
        names = [e["name"] for e in stack("--json", "volume", "list", "-p", self.pool,
                                          "--all", check=0).json()]
        self.assertEqual(names, ["base", "base@v1"])
        stack("pool", "check", self.pool, check=0)
        # The stored volume is a LUKS2 container cryptsetup opens.
        img = self.path("base.luks2")
        export(self.pool, "base@v1", img, "stored")
        dump = sh(f"cryptsetup luksDump {img}").stdout
        self.assertIn("Version:       \t2", dump)
        self.assertIn("aes-xts-plain64", dump)
        sh(f"cryptsetup open --test-passphrase --key-file {self.key} {img}")
        # The plaintext is a clean ext4 with the tree's content.
        plain = self.path("base.ext4")
        export(self.pool, "base@v1", plain, "plain", self.key)
        rc, out = e2fsck_clean(plain)
        self.assertEqual(rc, 0, out)
        self.assertEqual(debugfs_cat(plain, "/etc/hostname"), b"golden\n")
        out_dir = self.path("extracted")
        stack("fs", "extract", "-p", self.pool, "base@v1", "-k", self.key, "--to", out_dir,
              check=0)
        self.assertTreeEqual(self.tree, out_dir)
        # A tarball source works the same way.
        tgz = self.path("tree.tar.gz")
        with tarfile.open(tgz, "w:gz") as t:
            t.add(self.tree, arcname=".")
        rep = self.build("fromtar", "t1", src=tgz)
        self.assertEqual(rep["populate"]["files"], 204)
        out2 = self.path("extracted2")
        stack("fs", "extract", "-p", self.pool, "fromtar@t1", "-k", self.key, "--to", out2,
              check=0)
        self.assertTreeEqual(self.tree, out2)
        stack("pool", "check", self.pool, check=0)

    # Flow 2: clone the snapshot for a task in O(1).
    def test_flow2_clone_shares_blocks(self):
        self.build()
        before = stack("--json", "pool", "info", self.pool, check=0).json()
        rep = stack("--json", "clone", "-p", self.pool, "base@v1", "task-1", check=0).json()
        self.assertEqual(rep["name"], "task-1")
        self.assertEqual(rep["kind"], "volume")
        self.assertEqual(rep["source"], "base@v1")
        after = stack("--json", "pool", "info", self.pool, check=0).json()
        # Data blocks are shared, not copied: used space barely moves.
        self.assertLess(after["used_bytes"] - before["used_bytes"], 1 << 20)
        vols = {e["name"]: e for e in after["volumes"]}
        self.assertEqual(vols["task-1"]["parent_uuid"], vols["base@v1"]["uuid"])
        self.assertLess(vols["task-1"]["exclusive_bytes"], 1 << 20)
        self.assertGreater(vols["task-1"]["shared_bytes"], 3 << 20)
        stack("pool", "check", self.pool, check=0)

    # Flow 3: edit files inside the clone without mounting.
    def test_flow3_edit_clone(self):
        self.build()
        stack("clone", "-p", self.pool, "base@v1", "vm", check=0)
        motd = self.path("motd")
        with open(motd, "w") as f:
            f.write("welcome to vm\n")
        k = ["-k", self.key]
        stack("fs", "put", "-p", self.pool, "vm", motd, "/etc/motd", *k, check=0)
        stack("fs", "mkdir", "-p", self.pool, "vm", "--parents", "/srv/data/x", *k, check=0)
        stack("fs", "rm", "-p", self.pool, "vm", "-r", "/usr/share/doc", *k, check=0)
        stack("fs", "chmod", "-p", self.pool, "vm", "0600", "/etc/motd", *k, check=0)
        stack("fs", "chown", "-p", self.pool, "vm", "1000:1000", "/srv/data", *k, check=0)
        stack("fs", "symlink", "-p", self.pool, "vm", "/etc/motd", "/motd", *k, check=0)
        r = stack("fs", "cat", "-p", self.pool, "vm", "/etc/motd", *k, check=0)
        self.assertEqual(r.out, "welcome to vm\n")
        st = stack("--json", "fs", "stat", "-p", self.pool, "vm", "/etc/motd", *k, check=0).json()
        self.assertEqual(st["mode"], 0o600)
        st = stack("--json", "fs", "stat", "-p", self.pool, "vm", "/srv/data", *k, check=0).json()
        self.assertEqual((st["uid"], st["gid"]), (1000, 1000))
        ls = stack("--json", "fs", "ls", "-p", self.pool, "vm", "/usr/share", *k, check=0).json()
        self.assertEqual(ls, [])
        # The snapshot is untouched.
        r = stack("fs", "cat", "-p", self.pool, "base@v1", "/etc/motd", *k)
        self.assertEqual(r.rc, EXIT["notfound"])
        ls = stack("--json", "fs", "ls", "-p", self.pool, "base@v1", "/usr/share/doc", *k,
                   check=0).json()
        self.assertEqual(len(ls), 201)
        plain = self.path("vm.ext4")
        export(self.pool, "vm", plain, "plain", self.key)
        rc, out = e2fsck_clean(plain)
        self.assertEqual(rc, 0, out)
        self.assertEqual(debugfs_cat(plain, "/etc/motd"), b"welcome to vm\n")
        stack("pool", "check", self.pool, check=0)

    # Flow 4: export as the stored LUKS2, as LUKS1 for QEMU, and decrypted.
    def test_flow4_export_formats(self):
        self.build(size="512M")
        plain = self.path("p.ext4")
        rep = export(self.pool, "base@v1", plain, "plain", self.key)
        self.assertEqual(rep["format"], "plain")
        self.assertEqual(rep["source_encryption"], "LUKS2")
        self.assertEqual(os.path.getsize(plain), rep["file_size"])
        self.assertLess(allocated_bytes(plain), 128 << 20, "plain export is not sparse")
        rc, out = e2fsck_clean(plain)
        self.assertEqual(rc, 0, out)
        # LUKS2 as stored: decrypt with the volume key cryptsetup dumps, independently.
        stored = self.path("s.luks2")
        rep = export(self.pool, "base@v1", stored, "stored")
        self.assertLess(allocated_bytes(stored), 160 << 20, "stored export is not sparse")
        dump = sh(f"cryptsetup luksDump -q --dump-volume-key --key-file {self.key} {stored}")
        self.assertIn("MK dump", dump.stdout)
        # LUKS1 for QEMU: qemu-img decrypts it to exactly the plain export.
        l1 = self.path("q.luks1")
        rep = export(self.pool, "base@v1", l1, "luks1", self.key,
                     extra=["--kdf", "pbkdf2", "--pbkdf2-iterations", "1000"])
        self.assertEqual(rep["format"], "luks1")
        self.assertIn("Version:       \t1", sh(f"cryptsetup luksDump {l1}").stdout)
        sh(f"cryptsetup open --test-passphrase --key-file {self.key} {l1}")
        raw = self.path("q.raw")
        sh(f"qemu-img convert --object secret,id=s0,file={self.key} "
           f"--image-opts driver=luks,key-secret=s0,file.filename={l1} -O raw {raw}")
        self.assertEqual(os.path.getsize(raw), os.path.getsize(plain))
        # Blocks the volume never wrote differ (no ciphertext stored there);
        # the filesystem content must be identical: compare what e2fsck/debugfs see.
        rc, out = e2fsck_clean(raw)
        self.assertEqual(rc, 0, out)
        self.assertEqual(debugfs_cat(raw, "/usr/share/doc/blob.bin"),
                         debugfs_cat(plain, "/usr/share/doc/blob.bin"))
        # Refuses to overwrite without --force, and leaves the file alone.
        h = sha256(plain)
        r = stack("export", "-p", self.pool, "base@v1", plain, "--format", "plain", "-k",
                  self.key, check=EXIT["exists"])
        self.assertOneLineError(r, "AlreadyExists")
        self.assertEqual(sha256(plain), h)

    # Flow 5: import raw images (plain and LUKS), zero blocks staying holes.
    def test_flow5_import(self):
        stack("pool", "create", self.pool, "--size", "64M", "--max-size", "4G", check=0)
        plain = self.path("mk.ext4")
        sh(f"mke2fs -q -t ext4 -d {self.tree} {plain} 256M")
        rep = stack("--json", "import", "-p", self.pool, plain, "imported", check=0).json()
        self.assertEqual(rep["detected"], "plain")
        self.assertGreater(rep["zero_bytes_skipped"] + (256 << 20) - rep["source_allocated_bytes"],
                           128 << 20)
        info = stack("--json", "pool", "info", self.pool, check=0).json()
        vol = {e["name"]: e for e in info["volumes"]}["imported"]
        self.assertLess(vol["mapped_bytes"], 64 << 20, "zero blocks were stored")
        r = stack("fs", "cat", "-p", self.pool, "imported", "/etc/hostname", check=0)
        self.assertEqual(r.out, "golden\n")
        out = self.path("back.ext4")
        export(self.pool, "imported", out, "plain")
        self.assertEqual(sha256(out), sha256(plain))
        # A LUKS2 container made by cryptsetup imports as LUKS2 and opens here.
        lk = self.path("cs.luks2")
        sh(f"truncate -s 64M {lk}")
        sh(f"cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
           f"--key-file {self.key} {lk}")
        rep = stack("--json", "import", "-p", self.pool, lk, "fromcs", check=0).json()
        self.assertEqual(rep["detected"], "LUKS2")
        stack("fs", "mkfs", "-p", self.pool, "fromcs", "-k", self.key, check=0)
        stack("fs", "put", "-p", self.pool, "fromcs", self.path("pass.txt"), "/k", "-k",
              self.key, check=0)
        back = self.path("cs-back.luks2")
        export(self.pool, "fromcs", back, "stored")
        sh(f"cryptsetup open --test-passphrase --key-file {self.key} {back}")
        stack("pool", "check", self.pool, check=0)


if __name__ == "__main__":
    main()

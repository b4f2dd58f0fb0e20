"""The pool, volume, snapshot and luks commands, end to end, with --json
output checked and cryptsetup as the oracle for key management."""
import json
import os

from images import FAST_KDF, make_tree, plain_fingerprint, sha256, write_pass
from stacktest import EXIT, StackTestCase, main, sh, stack


class Commands(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("k1"))
        self.tree = make_tree(self.path("tree"))

    def build(self, vol="base", snap="v1"):
        stack("build", "-p", self.pool, vol, "--from", self.tree, "--size", "128M",
              "--snapshot", snap, "-k", self.key, *FAST_KDF, check=0)

    def test_pool_create_info_grow_verify(self):
        rep = stack("--json", "pool", "create", self.pool, "--size", "64M", "--max-size", "1G",
                    check=0).json()
        self.assertEqual(rep["max_bytes"], 1 << 30)
        self.assertEqual(rep["entries"], 0)
        r = stack("pool", "create", self.pool, check=EXIT["exists"])
        self.assertOneLineError(r, "AlreadyExists")
        stack("volume", "create", "-p", self.pool, "v", "--size", "32M", "--note", "n1",
              "--tag", "a", "--tag", "b", check=0)
        dev = self.path("data")
        with open(dev, "wb") as f:
            f.write(os.urandom(1 << 20))
        rep = stack("--json", "pool", "grow", self.pool, "--max-size", "2G", check=0).json()
        self.assertEqual(rep["max_bytes"], 2 << 30)
        v = stack("--json", "pool", "verify", self.pool, check=0).json()
        self.assertTrue(v["ok"])
        c = stack("--json", "pool", "check", self.pool, check=0).json()
        self.assertTrue(c["ok"])
        self.assertEqual(c["leaked_blocks"], 0)
        info = stack("--json", "pool", "info", self.pool, check=0).json()
        (e,) = info["volumes"]
        self.assertEqual((e["name"], e["note"], e["tags"], e["size_bytes"]),
                         ("v", "n1", ["a", "b"], 32 << 20))

    def test_snapshot_history_rollback_and_filters(self):
        self.build()
        k = ["-k", self.key]
        fp1 = plain_fingerprint(self.tmp, self.pool, "base@v1", self.key)
        stack("fs", "put", "-p", self.pool, "base", self.key, "/etc/secret", *k, check=0)
        stack("snapshot", "create", "-p", self.pool, "base@v2", "--note", "added secret",
              "--tag", "release", check=0)
        stack("snapshot", "create", "-p", self.pool, "base", "v3", check=0)
        hist = stack("--json", "snapshot", "list", "-p", self.pool, "base", check=0).json()
        self.assertEqual([h["name"] for h in hist], ["base@v1", "base@v2", "base@v3"])
        self.assertTrue(all(h["read_only"] and h["kind"] == "snapshot" for h in hist))
        tagged = stack("--json", "snapshot", "list", "-p", self.pool, "--tag", "release",
                       check=0).json()
        self.assertEqual([h["name"] for h in tagged], ["base@v2"])
        grep = stack("--json", "snapshot", "list", "-p", self.pool, "--grep", "secret",
                     check=0).json()
        self.assertEqual([h["name"] for h in grep], ["base@v2"])
        # Roll back to v1: the file added after it disappears.
        stack("snapshot", "rollback", "-p", self.pool, "base@v1", check=0)
        r = stack("fs", "cat", "-p", self.pool, "base", "/etc/secret", *k)
        self.assertEqual(r.rc, EXIT["notfound"])
        self.assertEqual(plain_fingerprint(self.tmp, self.pool, "base", self.key), fp1)
        # v2 still has it; deleting v1 (the rollback source) keeps base intact.
        stack("fs", "cat", "-p", self.pool, "base@v2", "/etc/secret", *k, check=0)
        stack("snapshot", "rm", "-p", self.pool, "base@v1", check=0)
        self.assertEqual(plain_fingerprint(self.tmp, self.pool, "base", self.key), fp1)
        stack("pool", "check", self.pool, check=0)

    def test_rename_resize_set(self):
        self.build()
        stack("volume", "rename", "-p", self.pool, "base", "renamed", check=0)
        names = [e["name"] for e in stack("--json", "volume", "list", "-p", self.pool, "--all",
                                          check=0).json()]
        self.assertEqual(sorted(names), ["renamed", "renamed@v1"])
        rep = stack("--json", "volume", "resize", "-p", self.pool, "renamed", "--size", "256M",
                    check=0).json()
        self.assertEqual(rep["size_bytes"], 256 << 20)
        stack("volume", "set", "-p", self.pool, "renamed", "--read-only", check=0)
        r = stack("fs", "mkdir", "-p", self.pool, "renamed", "/x", "-k", self.key,
                  check=EXIT["readonly"])
        self.assertOneLineError(r, "ReadOnly")
        stack("volume", "set", "-p", self.pool, "renamed", "--writable", check=0)
        stack("fs", "mkdir", "-p", self.pool, "renamed", "/x", "-k", self.key, check=0)
        stack("pool", "check", self.pool, check=0)

    def test_luks_key_management_with_cryptsetup_oracle(self):
        self.build()
        k2 = write_pass(self.path("k2"), b"second passphrase")
        k3 = write_pass(self.path("k3"), b"third passphrase")
        dump = stack("--json", "luks", "dump", "-p", self.pool, "base", check=0).json()
        self.assertEqual(dump["version"], 2)
        self.assertEqual(len(dump["keyslots"]), 1)
        rep = stack("--json", "luks", "add-key", "-p", self.pool, "base", "-k", self.key,
                    "--new-key-file", k2, *FAST_KDF, check=0).json()
        slot2 = rep["keyslot"]
        stack("luks", "change-key", "-p", self.pool, "base", "-k", k2, "--new-key-file", k3,
              *FAST_KDF, check=0)
        stack("luks", "remove-key", "-p", self.pool, "base", "-k", self.key, check=0)
        # cryptsetup agrees: k3 opens, k1 and k2 do not.
        img = self.path("base.luks2")
        stack("export", "-p", self.pool, "base", img, check=0)
        sh(f"cryptsetup open --test-passphrase --key-file {k3} {img}")
        self.assertNotEqual(sh(f"cryptsetup open --test-passphrase --key-file {self.key} {img}",
                               check=False).returncode, 0)
        self.assertNotEqual(sh(f"cryptsetup open --test-passphrase --key-file {k2} {img}",
                               check=False).returncode, 0)
        self.assertIn(f"  {slot2}: luks2", sh(f"cryptsetup luksDump {img}").stdout)
        # The last keyslot is not removed without --force.
        r = stack("luks", "remove-key", "-p", self.pool, "base", "-k", k3, check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        # Header backup and restore.
        hdr = self.path("hdr.bin")
        stack("luks", "backup", "-p", self.pool, "base", hdr, check=0)
        stack("luks", "add-key", "-p", self.pool, "base", "-k", k3, "--new-key-file", k2,
              *FAST_KDF, check=0)
        stack("luks", "restore", "-p", self.pool, "base", hdr, check=0)
        r = stack("fs", "ls", "-p", self.pool, "base", "-k", k2, check=EXIT["auth"])
        stack("fs", "ls", "-p", self.pool, "base", "-k", k3, check=0)
        # The snapshot keeps the original keyslot: k1 still opens it.
        stack("fs", "ls", "-p", self.pool, "base@v1", "-k", self.key, check=0)

    def test_progress_only_on_a_terminal(self):
        big = self.path("big")
        os.makedirs(big)
        for i in range(40):
            with open(os.path.join(big, f"f{i}"), "wb") as f:
                f.write(os.urandom(1 << 20))
        bin_ = os.environ["STACK_BIN"]
        cmd = (f"{bin_} build -p {self.pool} t --from {big} --size 256M -k {self.key} "
               + " ".join(FAST_KDF))
        # On a (pseudo) terminal: a progress line with a percentage, rate and ETA.
        r = sh(f"script -qec '{cmd}' /dev/null", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"build: +\d+\.\d% .*/s ETA \d\d:\d\d")
        # Not a terminal: nothing on stderr.
        r = stack("export", "-p", self.pool, "t", self.path("t.img"), check=0)
        self.assertEqual(r.err, "")
        r = stack("build", "-p", self.pool, "u", "--from", big, "--size", "256M", "-k",
                  self.key, *FAST_KDF, check=0)
        self.assertEqual(r.err, "")

    def test_image_file_targets(self):
        plain = self.path("raw.ext4")
        sh(f"truncate -s 64M {plain}")
        stack("fs", "mkfs", "--image", plain, "--label", "raw", check=0)
        stack("fs", "populate", "--image", plain, "--from", self.tree, check=0)
        rc = sh(f"e2fsck -fn {plain}", check=False)
        self.assertEqual(rc.returncode, 0, rc.stdout)
        df = stack("--json", "fs", "df", "--image", plain, check=0).json()
        self.assertEqual(df["label"], "raw")
        # A LUKS2 image file: format, mkfs and populate through our encryption.
        enc = self.path("enc.luks2")
        sh(f"truncate -s 64M {enc}")
        stack("luks", "format", "--image", enc, "--new-key-file", self.key, *FAST_KDF, check=0)
        stack("fs", "mkfs", "--image", enc, "-k", self.key, check=0)
        stack("fs", "put", "--image", enc, self.key, "/key", "-k", self.key, check=0)
        r = stack("fs", "cat", "--image", enc, "/key", "-k", self.key, check=0)
        with open(self.key, "rb") as f:
            self.assertEqual(r.out.encode(), f.read())
        sh(f"cryptsetup open --test-passphrase --key-file {self.key} {enc}")


if __name__ == "__main__":
    main()

"""The bad-input catalogue: every case is one command that must be refused
with one line "stack: <Code>: ...", the exit status of that code, and no
change anywhere: pool files byte-identical (and their mtime), no file
created, changed or left behind in the scratch directory.

Cases are rows of CASES (table-driven); `{name}` fields are fixture paths.
Defects other engineers are fixing (superblock damage, LUKS unsupported
cipher, extract name safety) are added later by the integrator.
"""
import fcntl
import hashlib
import os
import subprocess
import sys
import unittest

from images import FAST_KDF, make_tree, write_pass
from stacktest import EXIT, STACK, StackTestCase, main, sh, stack

CODE_EXIT = {"InvalidArgument": EXIT["usage"], "NotFound": EXIT["notfound"],
             "AlreadyExists": EXIT["exists"], "NoSpace": EXIT["nospace"],
             "AuthFailed": EXIT["auth"], "Corruption": EXIT["corruption"],
             "IoError": EXIT["io"], "Busy": EXIT["busy"], "Unsupported": EXIT["unsupported"],
             "OutOfRange": EXIT["range"], "ReadOnly": EXIT["readonly"]}

K = ["-k", "{key}"]
BADK = ["-k", "{badkey}"]
KDF = FAST_KDF
P = ["-p", "{pool}"]

# (id, argv, code, what the message must contain or None)
CASES = [
    # Wrong passphrase, missing key file.
    ("auth-fs-ls", ["fs", "ls", *P, "base", *BADK], "AuthFailed", None),
    ("auth-fs-cat-snapshot", ["fs", "cat", *P, "base@v1", "/etc/hostname", *BADK],
     "AuthFailed", None),
    ("auth-fs-put", ["fs", "put", *P, "base", "{key}", "/x", *BADK], "AuthFailed", None),
    ("auth-fs-get", ["fs", "get", *P, "base@v1", "/etc/hostname", "{new}", *BADK],
     "AuthFailed", None),
    ("auth-export-plain", ["export", *P, "base@v1", "{new}", "--format", "plain", *BADK],
     "AuthFailed", None),
    ("auth-export-luks1", ["export", *P, "base@v1", "{new}", "--format", "luks1", *BADK, *KDF],
     "AuthFailed", None),
    ("auth-export-over-existing", ["export", *P, "base@v1", "{existing}", "--force",
                                   "--format", "plain", *BADK], "AuthFailed", None),
    ("auth-clone-new-key", ["clone", *P, "base@v1", "c1", *BADK, "--new-key-file", "{key}",
                            *KDF], "AuthFailed", None),
    ("auth-fs-mkdir", ["fs", "mkdir", *P, "base", "/new", *BADK], "AuthFailed", None),
    ("auth-image", ["fs", "ls", "--image", "{stored}", *BADK], "AuthFailed", None),
    ("missing-key-file", ["fs", "ls", *P, "base", "-k", "{absent}"], "NotFound", None),
    ("missing-key-file-export", ["export", *P, "base", "{new}", "--format", "plain", "-k",
                                 "{absent}"], "NotFound", None),
    ("missing-new-key-file", ["clone", *P, "base@v1", "c1", *K, "--new-key-file", "{absent}"],
     "NotFound", None),
    # Corrupt, truncated or foreign files.
    ("not-a-pool", ["pool", "info", "{noise}"], "Corruption", None),
    ("not-a-pool-list", ["volume", "list", "-p", "{noise}"], "Corruption", None),
    ("truncated-pool", ["volume", "list", "-p", "{truncated}"], "Corruption", None),
    ("not-ext4-image", ["fs", "ls", "--image", "{noise}"], "Corruption", None),
    # Sitting 18: a 0-byte image made a 0-byte volume (volume create --size 0 is refused);
    # an image of any other size is imported, rounded up (test_host_files).
    ("empty-image", ["import", *P, "{empty}", "imp"], "InvalidArgument",
     "is empty (0 bytes): there is no image to import"),
    # Sitting 17: a FIFO as the image hung in open(); an empty --into took the other usage.
    ("fifo-import-source", ["import", *P, "{fifo}", "imp"], "InvalidArgument",
     "not a regular file"),
    ("import-into-empty", ["import", *P, "{stored}", "--into", ""], "InvalidArgument",
     "--into: the volume name is empty"),
    ("truncated-luks-image", ["fs", "ls", "--image", "{cut_luks}", *K], "Corruption", None),
    # Names that do not exist.
    ("no-volume-fs-ls", ["fs", "ls", *P, "nope", *K], "NotFound", None),
    ("no-snapshot-clone", ["clone", *P, "base@nope", "c1"], "NotFound", None),
    ("no-volume-rm", ["volume", "rm", *P, "ghost"], "NotFound", None),
    ("no-snapshot-rollback", ["snapshot", "rollback", *P, "base@ghost"], "NotFound", None),
    ("no-volume-resize", ["volume", "resize", *P, "ghost", "--size", "64M"], "NotFound", None),
    ("no-volume-set", ["volume", "set", *P, "ghost", "--note", "x"], "NotFound", None),
    ("no-volume-rename", ["volume", "rename", *P, "ghost", "g2"], "NotFound", None),
    ("no-volume-snapshot", ["snapshot", "create", *P, "ghost@s"], "NotFound", None),
    ("no-volume-export", ["export", *P, "ghost", "{new}"], "NotFound", None),
    ("no-path-cat", ["fs", "cat", *P, "base", "/no/such", *K], "NotFound", None),
    ("no-path-get", ["fs", "get", *P, "base", "/no/such", "{new}", *K], "NotFound", None),
    ("no-path-ls", ["fs", "ls", *P, "base", "/no/dir", *K], "NotFound", None),
    ("no-pool-info", ["pool", "info", "{absent}"], "NotFound", None),
    ("no-pool-volume-create", ["volume", "create", "-p", "{absent}", "v", "--size", "1M"],
     "NotFound", None),
    ("no-import-source", ["import", *P, "{absent}", "imp"], "NotFound", None),
    ("no-build-source", ["build", *P, "other", "--from", "{absent}", "--size", "64M", *K,
                         *KDF], "NotFound", None),
    ("no-image", ["export", "--image", "{absent}", "{new}"], "NotFound", None),
    # Invalid names.
    ("name-empty", ["volume", "create", *P, "", "--size", "1M"], "InvalidArgument", "empty"),
    ("name-at-in-volume", ["volume", "create", *P, "a@b", "--size", "1M"], "InvalidArgument",
     None),
    ("name-slash", ["volume", "create", *P, "bad/name", "--size", "1M"], "InvalidArgument",
     None),
    ("name-dot", ["volume", "create", *P, ".hidden", "--size", "1M"], "InvalidArgument", None),
    ("name-control", ["volume", "create", *P, "a\nb\x1b", "--size", "1M"], "InvalidArgument",
     "a\\x0ab\\x1b"),
    ("name-too-long", ["volume", "create", *P, "x" * 129, "--size", "1M"], "InvalidArgument",
     "128"),
    ("name-snapshot-empty", ["snapshot", "create", *P, "base@"], "InvalidArgument", None),
    ("name-two-ats", ["snapshot", "create", *P, "base@a@b"], "InvalidArgument", None),
    ("name-snapshot-without-at", ["snapshot", "create", *P, "base"], "InvalidArgument", None),
    ("name-clone-at", ["clone", *P, "base@v1", "c@d"], "InvalidArgument", None),
    ("name-rename-space", ["volume", "rename", *P, "base", "bad name"], "InvalidArgument",
     None),
    ("name-build-at", ["build", *P, "a@b", "--from", "{tree}", "--size", "64M", *K, *KDF],
     "InvalidArgument", None),
    ("name-import-space", ["import", *P, "{stored}", "a b"], "InvalidArgument", None),
    ("name-build-snapshot", ["build", *P, "v2", "--from", "{tree}", "--size", "64M",
                             "--snapshot", "x/y", *K, *KDF], "InvalidArgument", None),
    # Bad sizes (defect 17).
    ("size-unaligned-create", ["volume", "create", *P, "v", "--size", "4097"],
     "InvalidArgument", "use 4096 or 8192"),
    ("size-zero-create", ["volume", "create", *P, "v", "--size", "0"], "InvalidArgument",
     "positive"),
    ("size-negative", ["volume", "create", *P, "v", "--size", "-1"], "InvalidArgument", None),
    ("size-fraction", ["volume", "create", *P, "v", "--size", "1.5G"], "InvalidArgument",
     "whole number"),
    ("size-unknown-unit", ["volume", "create", *P, "v", "--size", "12Q"], "InvalidArgument",
     "unknown unit"),
    ("size-decimal-unit", ["volume", "create", *P, "v", "--size", "64KB"], "InvalidArgument",
     "unknown unit"),
    ("size-int64-max", ["volume", "create", *P, "v", "--size", "9223372036854775807"],
     "InvalidArgument", "not a multiple"),
    ("size-int64-max-plus-1", ["volume", "create", *P, "v", "--size", "9223372036854775808"],
     "InvalidArgument", "larger than"),
    ("size-huge", ["volume", "create", *P, "v", "--size", "99999999999999999999"],
     "InvalidArgument", "larger than"),
    ("size-huge-suffix", ["volume", "create", *P, "v", "--size", "9000P"], "InvalidArgument",
     "larger than"),
    ("size-empty", ["volume", "create", *P, "v", "--size", ""], "InvalidArgument", None),
    ("size-build-unaligned", ["build", *P, "v2", "--from", "{tree}", "--size", "4097", *K,
                              *KDF], "InvalidArgument", "use 4096 or 8192"),
    ("size-build-zero", ["build", *P, "v2", "--from", "{tree}", "--size", "0", *K, *KDF],
     "InvalidArgument", "positive"),
    ("size-build-new-pool", ["build", "-p", "{new}", "v2", "--from", "{tree}", "--size", "4097",
                             *K, *KDF], "InvalidArgument", "use 4096 or 8192"),
    ("size-resize-zero", ["volume", "resize", *P, "base", "--size", "0"], "InvalidArgument",
     "positive"),
    ("size-resize-unaligned", ["volume", "resize", *P, "base", "--size", "4097"],
     "InvalidArgument", "use 4096 or 8192"),
    ("size-resize-shrink-luks", ["volume", "resize", *P, "base", "--size", "64M"],
     "OutOfRange", "134217728"),
    ("size-resize-shrink-ext4", ["volume", "resize", *P, "plain", "--size", "16M"],
     "OutOfRange", "ext4"),
    ("size-clone-unaligned", ["clone", *P, "base@v1", "c1", "--size", "4097"],
     "InvalidArgument", "use 4096 or 8192"),
    ("size-clone-zero", ["clone", *P, "base@v1", "c1", "--size", "0"], "InvalidArgument",
     "positive"),
    ("size-pool-unaligned", ["pool", "create", "{new}", "--size", "4097"], "InvalidArgument",
     "use 4096 or 8192"),
    ("size-pool-zero", ["pool", "create", "{new}", "--size", "0"], "InvalidArgument",
     "positive"),
    ("size-pool-max-below", ["pool", "create", "{new}", "--size", "64M", "--max-size", "32M"],
     "InvalidArgument", "below --size"),
    ("size-pool-max-zero", ["pool", "create", "{new}", "--max-size", "0"], "InvalidArgument",
     "positive"),
    ("size-pool-block-size", ["pool", "create", "{new}", "--block-size", "5000"],
     "InvalidArgument", "power of two"),
    ("size-grow-unaligned", ["pool", "grow", "{pool}", "--max-size", "100000001"],
     "InvalidArgument", "not a multiple"),
    ("size-blockdev-zero", ["blockdev", "create", "{new}", "--size", "0"], "InvalidArgument",
     "positive"),
    ("size-blockdev-unaligned", ["blockdev", "create", "{new}", "--size", "1000"],
     "InvalidArgument", "use 4096"),
    ("size-cache-garbage", ["pool", "info", "{pool}", "--cache", "lots"], "InvalidArgument",
     None),
    # Existing targets without --force.
    ("exists-export", ["export", *P, "base@v1", "{existing}"], "AlreadyExists", None),
    ("exists-export-plain", ["export", *P, "base@v1", "{existing}", "--format", "plain", *K],
     "AlreadyExists", None),
    ("exists-pool-create", ["pool", "create", "{existing}"], "AlreadyExists", None),
    ("exists-blockdev-create", ["blockdev", "create", "{existing}", "--size", "1M"],
     "AlreadyExists", None),
    ("exists-volume", ["volume", "create", *P, "base", "--size", "1M"], "AlreadyExists", None),
    ("exists-clone", ["clone", *P, "base@v1", "base"], "AlreadyExists", None),
    ("exists-snapshot", ["snapshot", "create", *P, "base@v1"], "AlreadyExists", None),
    ("exists-build", ["build", *P, "base", "--from", "{tree}", "--size", "64M", *K, *KDF],
     "AlreadyExists", None),
    ("exists-import", ["import", *P, "{stored}", "base"], "AlreadyExists", None),
    ("exists-rename", ["volume", "rename", *P, "plain", "base"], "AlreadyExists", None),
    ("export-to-directory", ["export", *P, "base@v1", "{dir}", "--force"], "InvalidArgument",
     "directory"),
    # Unknown and conflicting flags, missing arguments.
    ("unknown-command", ["frobnicate"], "InvalidArgument", None),
    ("unknown-verb", ["volume", "frobnicate"], "InvalidArgument", None),
    ("unknown-flag", ["volume", "list", *P, "--bogus"], "InvalidArgument", None),
    ("unknown-flag-export", ["export", *P, "base@v1", "{new}", "--frobnicate"],
     "InvalidArgument", None),
    ("no-command", [], "InvalidArgument", None),
    ("ro-and-writable", ["volume", "set", *P, "base", "--read-only", "--writable"],
     "InvalidArgument", "not both"),
    ("extract-to-and-tar", ["fs", "extract", *P, "base@v1", *K, "--to", "{newdir}", "--tar",
                            "{new}"], "InvalidArgument", None),
    ("extract-neither", ["fs", "extract", *P, "base@v1", *K], "InvalidArgument", None),
    ("clone-cipher", ["clone", *P, "base@v1", "c1", "--cipher", "aes"], "InvalidArgument",
     None),
    ("export-format", ["export", *P, "base@v1", "{new}", "--format", "zip"],
     "InvalidArgument", None),
    ("export-method", ["export", *P, "base@v1", "{new}", "--method", "teleport"],
     "InvalidArgument", None),
    ("export-method-format", ["export", *P, "base@v1", "{new}", "--method", "reflink",
                              "--format", "plain", *K], "InvalidArgument", None),
    ("export-no-output", ["export", *P, "base@v1"], "InvalidArgument", None),
    ("no-target", ["fs", "ls", *K], "InvalidArgument", None),
    ("pool-and-image", ["fs", "ls", *P, "base", "--image", "{stored}", *K], "InvalidArgument",
     "two targets"),
    ("pool-and-image-export", ["export", *P, "base@v1", "--image", "{stored}", "{new}"],
     "InvalidArgument", "two targets"),
    ("build-no-size", ["build", *P, "v2", "--from", "{tree}", *K, *KDF], "InvalidArgument",
     "--size"),
    ("create-no-size", ["volume", "create", *P, "v"], "InvalidArgument", "--size"),
    ("kdf-unknown", ["clone", *P, "base@v1", "c1", *K, "--new-key-file", "{key}", "--kdf",
                     "md5"], "InvalidArgument", None),
    ("bad-mode", ["fs", "mkdir", *P, "base", "/d", "--mode", "999", *K], "InvalidArgument",
     None),
    ("bad-owner", ["fs", "chown", *P, "base", "abc", "/etc", *K], "InvalidArgument", None),
    ("both-stdin", ["clone", *P, "base@v1", "c1", "-k", "-", "--new-key-file", "-"],
     "InvalidArgument", None),
    ("get-symlink", ["fs", "get", *P, "base@v1", "/usr/hostname-link", "{new}", *K],
     "InvalidArgument", "symbolic link"),
    # Read-only entries.
    ("snapshot-write", ["fs", "mkdir", *P, "base@v1", "/new", *K], "ReadOnly", None),
    ("snapshot-resize", ["volume", "resize", *P, "base@v1", "--size", "256M"],
     "InvalidArgument", None),
    ("read-only-volume-write", ["fs", "mkdir", *P, "frozen", "/new"], "ReadOnly", None),
]

# Refused fs edits: the file system is opened writable, nothing changes, so
# its close writes nothing and the pool commits nothing (CloseFs writes the
# superblock only when libext2fs saw a change).
FS_WRITE_CASES = [
    ("rm-missing-path", ["fs", "rm", *P, "base", "/no/such", *K], "NotFound", None),
    ("mkdir-no-parent", ["fs", "mkdir", *P, "base", "/no/such/dir", *K], "NotFound", None),
]

# Cases run while another process holds the pool's lock.
BUSY_CASES = [
    ("busy-clone", ["clone", *P, "base@v1", "c2"]),
    ("busy-volume-create", ["volume", "create", *P, "v", "--size", "1M"]),
    ("busy-snapshot", ["snapshot", "create", *P, "base@s2"]),
    ("busy-fs-mkdir", ["fs", "mkdir", *P, "base", "/x", *K]),
    ("busy-resize", ["volume", "resize", *P, "base", "--size", "256M"]),
    ("busy-rm", ["volume", "rm", *P, "plain"]),
]


def state(root):
    """Every file under root: size, mtime and content hash (data extents)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if os.path.isdir(p) and not os.path.islink(p):
                out[os.path.relpath(p, root)] = ("dir", st.st_mode)
                continue
            h = hashlib.sha256()
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    fd, pos, size = f.fileno(), 0, st.st_size
                    while pos < size:
                        try:
                            data = os.lseek(fd, pos, os.SEEK_DATA)
                        except OSError:
                            break
                        hole = os.lseek(fd, data, os.SEEK_HOLE)
                        f.seek(data)
                        h.update(f"@{data}".encode() + f.read(hole - data))
                        pos = hole
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, st.st_mode,
                                             h.hexdigest())
    return out


class BadInput(StackTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        base = os.environ.get("STACK_TEST_TMP") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        cls.root = tempfile.mkdtemp(prefix="bad-input-", dir=base)
        cls.fx = fx = {}
        j = lambda n: os.path.join(cls.root, n)
        fx["pool"] = j("p.stk")
        fx["key"] = write_pass(j("pass.txt"))
        fx["badkey"] = write_pass(j("bad.txt"), b"wrong passphrase")
        fx["tree"] = make_tree(j("tree"))
        fx["absent"] = j("absent")
        fx["new"] = j("new-output")
        fx["newdir"] = j("new-dir")
        fx["dir"] = j("a-dir")
        os.makedirs(fx["dir"])
        stack("build", "-p", fx["pool"], "base", "--from", fx["tree"], "--size", "128M",
              "--snapshot", "v1", "-k", fx["key"], *KDF, check=0)
        stack("build", "-p", fx["pool"], "plain", "--from", fx["tree"], "--size", "32M",
              "--no-encrypt", "--snapshot", "", check=0)
        stack("volume", "create", "-p", fx["pool"], "frozen", "--size", "32M", check=0)
        stack("volume", "set", "-p", fx["pool"], "frozen", "--read-only", check=0)
        fx["stored"] = j("stored.img")
        stack("export", "-p", fx["pool"], "base@v1", fx["stored"], check=0)
        fx["existing"] = j("existing.bin")
        with open(fx["existing"], "wb") as f:
            f.write(b"precious bytes\n")
        fx["noise"] = j("noise.bin")
        with open(fx["noise"], "wb") as f:
            f.write(os.urandom(1 << 20))
        fx["empty"] = j("empty.bin")
        open(fx["empty"], "wb").close()
        fx["fifo"] = j("a-fifo")
        os.mkfifo(fx["fifo"])
        fx["truncated"] = j("truncated.stk")
        with open(fx["pool"], "rb") as f, open(fx["truncated"], "wb") as g:
            g.write(f.read(4096 * 3))
        fx["cut_luks"] = j("cut-luks.img")
        with open(fx["stored"], "rb") as f, open(fx["cut_luks"], "wb") as g:
            g.write(f.read(4096))  # the binary header, without its JSON area

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.root, ignore_errors=True)

    def argv(self, args):
        return [a.format(**self.fx) for a in args]

    def refused(self, case_id, args, code, needle):
        before = state(self.root)
        r = stack(*self.argv(args))
        lines = [l for l in r.err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, f"{case_id}: expected one error line: {r.err!r}")
        self.assertTrue(lines[0].startswith(f"stack: {code}: "), f"{case_id}: {lines[0]}")
        self.assertEqual(r.rc, CODE_EXIT[code], f"{case_id}: exit {r.rc}: {lines[0]}")
        if needle:
            self.assertIn(needle, lines[0], case_id)
        after = state(self.root)
        self.assertEqual(after, before, f"{case_id}: something changed on the host")

    def test_catalogue(self):
        self.assertGreaterEqual(len(CASES) + len(BUSY_CASES), 60)
        ids = [c[0] for c in CASES + FS_WRITE_CASES] + [c[0] for c in BUSY_CASES]
        self.assertEqual(len(ids), len(set(ids)), "duplicate case ids")
        for case_id, args, code, needle in CASES:
            with self.subTest(case=case_id):
                self.refused(case_id, args, code, needle)
        listing = stack("--json", "volume", "list", "-p", self.fx["pool"], "--all",
                        check=0).json()
        self.assertEqual(sorted(e["name"] for e in listing),
                         ["base", "base@v1", "frozen", "plain"])
        stack("pool", "check", self.fx["pool"], check=0)

    def test_failed_fs_write_changes_nothing(self):
        for case_id, args, code, needle in FS_WRITE_CASES:
            self.refused(case_id, args, code, needle)

    def test_pool_held_elsewhere(self):
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl,sys,time; f=open(sys.argv[1],'rb+'); "
             "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
             self.fx["pool"]], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "locked")
            for case_id, args in BUSY_CASES:
                with self.subTest(case=case_id):
                    self.refused(case_id, args, "Busy", None)
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()

    def test_full_pool(self):
        # A full pool: NoSpace, then the pool is clean and lists what it did.
        small = os.path.join(self.root, "small.stk")
        stack("pool", "create", small, "--size", "16M", "--max-size", "16M", check=0)
        img = os.path.join(self.tmp, "data.img")
        with open(img, "wb") as f:
            f.write(os.urandom(32 << 20))
        try:
            r = stack("import", "-p", small, img, "big", check=EXIT["nospace"])
            self.assertOneLineError(r, "NoSpace")
            self.assertEqual(stack("--json", "volume", "list", "-p", small, "--all",
                                   check=0).json(), [])
            stack("pool", "check", small, check=0)
        finally:
            os.unlink(small)


if __name__ == "__main__":
    main()

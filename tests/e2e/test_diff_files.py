"""`stack diff --files`: the files that differ between two snapshots, checked
against the two trees extracted to the host (an independent walk of both
images), against its own --full-scan, for cost (only inodes of changed
inode-table blocks are examined), for renames and replaced files, and for
its errors."""
import os
import stat
import subprocess

from images import FAST_KDF, make_tree, write_pass
from stacktest import EXIT, StackTestCase, main, stack


def walk(root):
    """path -> (type, mode bits, uid, gid, mtime_ns, content or link or entries)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files + [""]:
            p = os.path.join(dirpath, name) if name else dirpath
            if not name and p != root:
                continue
            st = os.lstat(p)
            rel = "/" + os.path.relpath(p, root) if p != root else "/"
            rel = rel.replace("/./", "/")
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", tuple(sorted(os.listdir(p))))
            else:
                with open(p, "rb") as f:
                    what = ("file", f.read())
            out[rel] = (what[0], stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_mtime_ns, what[1])
    return out


def expected_changes(a, b):
    """{path: A|D|M} from two walks. lost+found is the file system's own."""
    out = {}
    for p in set(a) | set(b):
        if p.startswith("/lost+found"):
            continue
        if p not in a:
            out[p] = "A"
        elif p not in b:
            out[p] = "D"
        elif a[p] != b[p]:
            out[p] = "M"
    return out


def ours(j):
    """{path: A|D|M} from our report (a rename is a removal and an addition)."""
    tag = {"added": "A", "removed": "D", "modified": "M"}
    out = {}
    for c in j["changes"]:
        if c["kind"] == "renamed":
            out[c["old_path"]] = "D"
            out[c["path"]] = "A"
        else:
            out[c["path"]] = tag[c["kind"]]
    return out


class FileDiff(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("pass.txt"))

    def files(self, a, b, *extra, check=0, key=True):
        args = ["--json", "diff", "-p", self.pool, "--files", a, b, *extra]
        if key:
            args += ["-k", self.key]
        return stack(*args, check=check)

    def extract(self, entry):
        d = self.path("x-" + entry.replace("@", "_"))
        stack("fs", "extract", "-p", self.pool, entry, "/", "--to", d, "-k", self.key, check=0)
        return d

    def fs(self, *args):
        stack("fs", args[0], "-p", self.pool, "v", *args[1:], "-k", self.key, check=0)

    def test_changes_match_the_extracted_trees(self):
        tree = make_tree(self.path("tree"))
        stack("build", "-p", self.pool, "v", "--from", tree, "--size", "64M",
              "--snapshot", "base", "-k", self.key, *FAST_KDF, check=0)
        host = self.path("host")
        os.makedirs(host)
        with open(os.path.join(host, "new.txt"), "w") as f:
            f.write("new file\n")
        with open(os.path.join(host, "config.toml"), "w") as f:
            f.write("[server]\nport = 9090\n")
        with open(os.path.join(host, "blob"), "wb") as f:
            f.write(os.urandom(1 << 20))
        self.fs("put", os.path.join(host, "new.txt"), "/etc/new.txt")
        self.fs("put", os.path.join(host, "config.toml"), "/etc/app/config.toml")  # overwrite
        self.fs("put", os.path.join(host, "blob"), "/usr/share/doc/blob.bin")     # replace data
        self.fs("rm", "/usr/share/doc/f007.txt")
        self.fs("rm", "-r", "/var/empty")
        self.fs("chmod", "0600", "/etc/hostname")
        self.fs("chown", "1234:5678", "/usr/share/doc/f100.txt")
        self.fs("mkdir", "/srv")
        self.fs("symlink", "/etc/new.txt", "/srv/link")
        stack("snapshot", "create", "-p", self.pool, "v@after", check=0)

        want = expected_changes(walk(self.extract("v@base")), walk(self.extract("v@after")))
        j = self.files("v@base", "v@after").json()
        got = ours(j)
        self.assertEqual(got, want, {p: (got.get(p), want.get(p)) for p in set(got) | set(want)
                                     if got.get(p) != want.get(p)})
        self.assertFalse(j["full_scan"])
        # Details a walk of the host trees also shows.
        by_path = {c["path"]: c for c in j["changes"]}
        self.assertEqual(by_path["/etc/hostname"]["what"], ["mode"])
        self.assertEqual(by_path["/usr/share/doc/f100.txt"]["what"], ["owner"])
        self.assertIn("content", by_path["/usr/share/doc/blob.bin"]["what"])
        self.assertEqual(by_path["/srv/link"]["type"], "symlink")
        self.assertEqual(by_path["/var/empty"]["type"], "dir")
        # The full scan finds exactly the same.
        full = self.files("v@base", "v@after", "--full-scan").json()
        self.assertTrue(full["full_scan"])
        self.assertEqual(full["changes"], j["changes"])
        self.assertGreater(full["inodes_examined"], j["inodes_examined"])
        # The other way round, everything flips.
        back = ours(self.files("v@after", "v@base").json())
        flip = {"A": "D", "D": "A", "M": "M"}
        self.assertEqual(back, {p: flip[k] for p, k in want.items()})
        # Nothing changed: nothing reported, nothing examined.
        same = self.files("v@after", "v").json()
        self.assertEqual(same["changes"], [])
        self.assertEqual(same["inodes_examined"], 0)
        # The human form: one line per change, then a summary.
        r = stack("diff", "-p", self.pool, "--files", "v@base", "v@after", "-k", self.key,
                  check=0)
        self.assertIn("A /etc/new.txt", r.out)
        self.assertIn("D /usr/share/doc/f007.txt", r.out)
        self.assertIn("M /etc/hostname (mode)", r.out)
        self.assertIn(f"{len(j['changes'])} changes", r.out)

    def test_cost_follows_the_change(self):
        tree = self.path("many")
        for d in range(10):
            os.makedirs(os.path.join(tree, f"d{d}"))
            for i in range(300):
                with open(os.path.join(tree, f"d{d}", f"f{i}"), "w") as f:
                    f.write(f"{d}/{i}\n")
        stack("build", "-p", self.pool, "v", "--from", tree, "--size", "128M", "--no-encrypt",
              "--snapshot", "base", check=0)
        with open(self.path("one"), "w") as f:
            f.write("one\n")
        stack("fs", "put", "-p", self.pool, "v", self.path("one"), "/d4/one", check=0)
        stack("snapshot", "create", "-p", self.pool, "v@after", check=0)
        j = self.files("v@base", "v@after", key=False).json()
        self.assertEqual(ours(j), {"/d4": "M", "/d4/one": "A"})
        # Two inode-table blocks at most (the new file's and its directory's),
        # 16 inodes each at 256 bytes: not the 3000 files.
        self.assertLessEqual(j["inodes_examined"], 32)
        full = self.files("v@base", "v@after", "--full-scan", key=False).json()
        self.assertGreater(full["inodes_examined"], 3000)
        self.assertEqual(full["changes"], j["changes"])

    def test_renames_and_replacements(self):
        tree = self.path("t")
        os.makedirs(os.path.join(tree, "d"))
        for n in ("a", "b", "c"):
            with open(os.path.join(tree, "d", n), "w") as f:
                f.write(n * 100)
        stack("build", "-p", self.pool, "v", "--from", tree, "--size", "32M", "--no-encrypt",
              "--snapshot", "base", check=0)
        # Rename d/a to d/moved and d/b over d/c, as ext4 does it (debugfs
        # on the exported image, the renamed inode's ctime touched as a
        # kernel rename does), then bring the image back.
        img = self.path("plain.img")
        stack("export", "-p", self.pool, "v", img, "--format", "plain", check=0)
        cmds = "\n".join([
            "link /d/a /d/moved", "unlink /d/a", "sif /d/moved ctime 20300101",
            "unlink /d/c", "link /d/b /d/c", "unlink /d/b", "sif /d/c ctime 20300101",
        ])
        r = subprocess.run(["debugfs", "-w", "-f", "-", img], input=cmds, text=True,
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        stack("import", "-p", self.pool, img, "--into", "v", "--format", "plain", check=0)
        stack("snapshot", "create", "-p", self.pool, "v@after", check=0)
        j = self.files("v@base", "v@after", key=False).json()
        renames = {(c["old_path"], c["path"]) for c in j["changes"] if c["kind"] == "renamed"}
        self.assertEqual(renames, {("/d/a", "/d/moved"), ("/d/b", "/d/c")}, j["changes"])
        full = self.files("v@base", "v@after", "--full-scan", key=False).json()
        self.assertEqual(
            {(c["old_path"], c["path"]) for c in full["changes"] if c["kind"] == "renamed"},
            renames)
        # A file replaced by another inode under the same name.
        with open(self.path("c2"), "w") as f:
            f.write("replacement\n")
        stack("fs", "rm", "-p", self.pool, "v", "/d/c", check=0)
        stack("fs", "put", "-p", self.pool, "v", self.path("c2"), "/d/c", check=0)
        stack("snapshot", "create", "-p", self.pool, "v@third", check=0)
        j = self.files("v@after", "v@third", key=False).json()
        c = {x["path"]: x for x in j["changes"]}["/d/c"]
        self.assertEqual(c["kind"], "modified")
        self.assertEqual(c["what"][0], "replaced")

    def test_hostile_images(self):
        # Crafted images (tests/lib/hostile_images.py): unsafe names, a
        # duplicate name, a directory entry looping back to the root. The
        # diff ends, names no path with a "." or ".." component or an
        # embedded "/" and says what it skipped.
        import hostile_images as hi
        for case in ("dotdot", "dotdot_only_dir", "slash", "duplicate", "loop"):
            with self.subTest(case=case):
                img = self.path(case + ".img")
                hi.make(img, case)
                vol = "h" + str(len(case))
                stack("import", "-p", self.pool, img, vol, check=0)
                stack("snapshot", "create", "-p", self.pool, f"{vol}@a", check=0)
                with open(self.path("n"), "w") as f:
                    f.write("new\n")
                # Writers refuse a directory loop; elsewhere the put lands.
                stack("fs", "put", "-p", self.pool, vol, self.path("n"), "/new", check=None)
                stack("snapshot", "create", "-p", self.pool, f"{vol}@b", check=0)
                for extra in ((), ("--full-scan",)):
                    r = self.files(f"{vol}@a", f"{vol}@b", *extra, key=False, check=0)
                    j = r.json()
                    for c in j["changes"]:
                        for p in (c["path"], c.get("old_path", "/")):
                            self.assertTrue(p.startswith("/"), p)
                            self.assertNotIn("..", p.split("/"), p)
                            self.assertNotIn(".", p.split("/")[1:], p)
                    if case != "loop":
                        self.assertIn("/new", [c["path"] for c in j["changes"]])

    def test_errors(self):
        tree = make_tree(self.path("tree"))
        stack("build", "-p", self.pool, "v", "--from", tree, "--size", "64M",
              "--snapshot", "base", "-k", self.key, *FAST_KDF, check=0)
        wrong = write_pass(self.path("wrong.txt"), b"not the passphrase")
        r = stack("diff", "-p", self.pool, "--files", "v@base", "v", "-k", wrong,
                  check=EXIT["auth"])
        self.assertOneLineError(r, "AuthFailed")
        r = stack("diff", "-p", self.pool, "--files", "v@base", "v@nope", "-k", self.key,
                  check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        r = stack("diff", "-p", self.pool, "--full-scan", "v@base", "v", check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        # A volume holding no file system.
        stack("volume", "create", "-p", self.pool, "raw", "--size", "8M", check=0)
        stack("snapshot", "create", "-p", self.pool, "raw@s", check=0)
        r = stack("diff", "-p", self.pool, "--files", "raw@s", "raw", check=None)
        self.assertNotEqual(r.rc, 0)
        self.assertEqual(len(r.err.strip().splitlines()), 1, r.err)


if __name__ == "__main__":
    main()

"""Hostile ext4 images (issue 12): readers never create anything outside the
destination, refuse or skip unsafe and duplicate names with a warning, never
follow a symlink already in the destination, print every name on one line;
corrupt compressed tarballs fail the build (spec/fsbridge.md "Hostile images").

Images are raw plain ext4 files crafted by tests/lib/hostile_images.py and
read through `--image FILE`.
"""
import io
import os
import subprocess
import tarfile

import hostile_images as hi
from stacktest import EXIT, StackTestCase, main, stack


def listing(root):
    """Every path below root (symlinks not followed), with its type."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            kind = "l" if os.path.islink(p) else "d" if os.path.isdir(p) else "f"
            out.add((os.path.relpath(p, root), kind))
    return out


class HostileImages(StackTestCase):
    def setUp(self):
        super().setUp()
        # box/ holds the destination; anything written next to it (box/..)
        # or in `outside` is an escape.
        self.box = self.path("box")
        os.makedirs(self.box)
        self.dest = os.path.join(self.box, "dest")
        self.outside = self.path("outside")
        os.makedirs(self.outside)

    def image(self, case, **kw):
        img = self.path(case + ".img")
        if kw:
            getattr(hi, "case_" + case)(img, **kw)
        else:
            hi.make(img, case)
        return img

    def assertNothingEscaped(self, before, dests=("box/dest",)):
        new = listing(self.tmp) - before
        escaped = {(p, k) for p, k in new
                   if not any(p == d or p.startswith(d + "/") for d in dests)}
        self.assertEqual(escaped, set(), "created outside the destination")
        self.assertEqual(os.listdir(self.outside), [])

    def extract_all_ways(self, img, want_rc):
        """extract --to, get, --tar -: returns (tar member names, stderr of extract)."""
        before = listing(self.tmp)
        r = stack("fs", "extract", "--image", img, "--to", self.dest, check=want_rc)
        self.assertNothingEscaped(before)
        r2 = stack("fs", "get", "--image", img, "/", self.path("box/got"), check=want_rc)
        self.assertNothingEscaped(before, ("box/dest", "box/got"))
        proc = subprocess.run([os.environ.get("STACK_BIN", "stack"), "fs", "extract", "--image",
                               img, "--tar", "-"], capture_output=True)
        self.assertEqual(proc.returncode, want_rc, proc.stderr)
        names = tarfile.open(fileobj=io.BytesIO(proc.stdout)).getnames()
        for n in names:
            parts = n.split("/")
            self.assertFalse(n.startswith("/") or ".." in parts, f"tar member {n!r}")
        return names, r.err + r2.err

    def test_unsafe_names_are_skipped_with_a_warning(self):
        for case, hostile in hi.UNSAFE_NAMES.items():
            for suffix in ("", "_dir"):
                with self.subTest(case=case + suffix):
                    img = self.image(case + suffix)
                    names, err = self.extract_all_ways(img, EXIT["corruption"])
                    self.assertIn("./ok", names)
                    self.assertIn("stack: warning: /: skipping entry", err)
                    self.assertIn("stack: Corruption: extract: 1 hostile entry skipped", err)
                    with open(os.path.join(self.dest, "ok")) as f:
                        self.assertEqual(f.read(), "fine\n")
                    self.assertEqual(sorted(os.listdir(self.dest)), ["lost+found", "ok"])
                    # ls: the safe entries, one warning, exit 0.
                    r = stack("fs", "ls", "--image", img, "/", check=0)
                    self.assertEqual(r.out.splitlines(), ["lost+found", "ok"])
                    self.assertIn("skipping entry", r.err)
                    r = stack("fs", "ls", "-l", "--image", img, "/", check=0)
                    self.assertEqual(len(r.out.splitlines()), 2)
                    self.tearDown()
                    self.setUp()

    def test_duplicate_name_symlink_and_directory(self):
        img = self.image("duplicate", link_target=self.outside)
        names, err = self.extract_all_ways(img, EXIT["corruption"])
        self.assertIn("a second entry of that name", err)
        self.assertEqual(os.listdir(self.outside), [])
        # The first on disk (the symlink) is the one kept, as lookups find it.
        self.assertTrue(os.path.islink(os.path.join(self.dest, "evil")))
        self.assertNotIn("./evil/pwn", names)

    def test_existing_symlink_in_destination_is_replaced_not_followed(self):
        img = self.image("plain_dir")
        os.makedirs(self.dest)
        os.symlink(self.outside, os.path.join(self.dest, "d"))
        with open(os.path.join(self.dest, "ok"), "w") as f:  # a file to be replaced
            f.write("old")
        os.symlink(os.path.join(self.outside, "target"), os.path.join(self.dest, "dangling"))
        before = listing(self.tmp)
        stack("fs", "extract", "--image", img, "--to", self.dest, check=0)
        self.assertNothingEscaped(before)
        d = os.path.join(self.dest, "d")
        self.assertFalse(os.path.islink(d))
        self.assertTrue(os.path.isdir(d))
        with open(os.path.join(d, "f")) as f:
            self.assertEqual(f.read(), "inside\n")
        # hard link kept, and a symlink where the image has a file replaced
        self.assertEqual(os.stat(os.path.join(d, "hard")).st_ino,
                         os.stat(os.path.join(self.dest, "ok")).st_ino)
        # same through `fs get` into a destination holding a symlink
        got = self.path("box/got")
        os.makedirs(got)
        os.symlink(self.outside, os.path.join(got, "d"))
        stack("fs", "get", "--image", img, "/", got, check=0)
        self.assertFalse(os.path.islink(os.path.join(got, "d")))
        self.assertEqual(os.listdir(self.outside), [])

    def test_existing_symlink_where_image_has_a_file(self):
        img = self.image("plain_dir")
        os.makedirs(self.dest)
        victim = os.path.join(self.outside, "victim")
        os.symlink(victim, os.path.join(self.dest, "ok"))
        stack("fs", "extract", "--image", img, "--to", self.dest, check=0)
        self.assertFalse(os.path.exists(victim))
        self.assertFalse(os.path.islink(os.path.join(self.dest, "ok")))

    def test_directory_loop_ends(self):
        img = self.image("loop")
        names, err = self.extract_all_ways(img, EXIT["corruption"])
        self.assertIn("already visited", err)
        self.assertIn("./ok", names)

    def test_writers_refuse_a_directory_loop_and_change_nothing(self):
        # rm -r, and a put or populate that replaces the looping directory,
        # walk the tree to free it: a loop would recurse forever (or free
        # the root); they stop with Corruption before freeing anything.
        img = self.image("loop")
        with open(img, "rb") as f:
            before = f.read()
        src = self.path("src")
        os.makedirs(os.path.join(src, "loop"))
        with open(os.path.join(src, "file"), "wb") as f:
            f.write(b"x")
        for args in (["fs", "rm", "-r", "--image", img, "/loop"],
                     ["fs", "put", "--image", img, os.path.join(src, "file"), "/loop"]):
            with self.subTest(args=args[:2]):
                r = stack(*args, check=EXIT["corruption"], timeout=60)
                self.assertIn("reached twice", r.err)
                with open(img, "rb") as f:
                    self.assertTrue(f.read() == before, "image changed")

    def test_odd_names_are_extracted_and_printed_escaped(self):
        for case, name in hi.ODD_NAMES.items():
            with self.subTest(case=case):
                img = self.image(case)
                stack("fs", "extract", "--image", img, "--to", self.dest, check=0)
                self.assertIn(name.decode(), os.listdir(self.dest))
                r = stack("fs", "ls", "--image", img, "/", check=0)
                esc = name.decode().replace("\n", "\\x0a").replace("\x1b", "\\x1b")
                self.assertEqual(r.out.splitlines(), sorted(["lost+found", "ok", esc]))
                r = stack("fs", "ls", "-l", "--image", img, "/", check=0)
                self.assertEqual(len(r.out.splitlines()), 3)
                self.assertNotIn("\x1b", r.out)
                r = stack("--json", "fs", "ls", "--image", img, "/", check=0)
                self.assertIn(name.decode(), [e["name"] for e in r.json()])


class CorruptTarballs(StackTestCase):
    """A compressed tarball whose stream fails its check: build fails with
    Corruption naming the archive, and no volume is published."""

    def make_tarball(self, comp):
        src = self.path("src")
        os.makedirs(src, exist_ok=True)
        with open(os.path.join(src, "f"), "wb") as f:
            f.write(os.urandom(200000).hex().encode())  # compressible, 400 kB
        tar = self.path("t.tar")
        subprocess.run(["tar", "-C", src, "-cf", tar, "."], check=True)
        subprocess.run([comp, "-k", "-f", tar], check=True)
        return tar + {"gzip": ".gz", "zstd": ".zst", "xz": ".xz"}[comp]

    def corrupt(self, path, where):
        with open(path, "rb") as f:
            data = bytearray(f.read())
        # the gzip CRC; a byte of the xz/zstd check; a byte in the middle
        off = {"trailer": len(data) - 8 if path.endswith(".gz") else len(data) - 14
               if path.endswith(".xz") else len(data) - 2, "middle": len(data) // 2}[where]
        data[off] ^= 0x01
        bad = path + "." + where
        with open(bad, "wb") as f:
            f.write(data)
        return bad

    def test_corrupt_streams_fail_the_build(self):
        for comp in ("gzip", "zstd", "xz"):
            tarball = self.make_tarball(comp)
            pool = self.path(comp + ".stk")
            stack("build", "-p", pool, "good", "--from", tarball, "--size", "16M", "--no-encrypt",
                  check=0)
            for where in ("trailer", "middle"):
                with self.subTest(comp=comp, where=where):
                    bad = self.corrupt(tarball, where)
                    r = stack("build", "-p", pool, "bad", "--from", bad, "--size", "16M",
                              "--no-encrypt", check=EXIT["corruption"])
                    self.assertOneLineError(r, "Corruption")
                    self.assertIn(bad, r.err)
                    r = stack("--json", "volume", "list", "-p", pool, "--all", check=0)
                    self.assertNotIn("bad", [v["name"] for v in r.json()])
                    # the same from stdin
                    with open(bad, "rb") as f:
                        r = stack("build", "-p", pool, "bad", "--from", "-", "--size", "16M",
                                  "--no-encrypt", input=f.read(), check=EXIT["corruption"])
                    self.assertIn(b"tar <stdin>: ", r.err)
                    r = stack("--json", "volume", "list", "-p", pool, "--all", check=0)
                    self.assertNotIn("bad", [v["name"] for v in r.json()])


if __name__ == "__main__":
    main()

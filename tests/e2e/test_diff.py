"""`stack diff -p POOL FROM TO`: the block ranges where TO differs from FROM,
checked against what was written (raw images imported as volumes), against
the stored exports of two snapshots of a LUKS2 volume changed through the
file system, and its errors (one line, exit status per code)."""
import os

from images import FAST_KDF, make_tree, write_pass
from stacktest import EXIT, StackTestCase, main, stack

BS = 4096


def write_image(path, blocks, nonzero):
    """A raw image of `blocks` 4 KiB blocks; block b holds a pattern of
    nonzero[b] (a byte value), others are zero (holes after import)."""
    with open(path, "wb") as f:
        f.truncate(blocks * BS)
        for b, v in nonzero.items():
            f.seek(b * BS)
            f.write(bytes([v]) * BS)


def expected(from_map, to_map, to_blocks):
    """Ranges (offset, length, kind) for entries of unrelated lineages: every
    block `to` maps is written, every block only `from` maps is discarded."""
    out = []
    for b in range(to_blocks):
        if b in to_map:
            k = "written"
        elif b in from_map:
            k = "discarded"
        else:
            continue
        if out and out[-1][2] == k and out[-1][0] + out[-1][1] == b * BS:
            out[-1][1] += BS
        else:
            out.append([b * BS, BS, k])
    return [tuple(r) for r in out]


def ranges_of(j):
    return [(r["offset"], r["length"], r["kind"]) for r in j["ranges"]]


class Diff(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        stack("pool", "create", self.pool, "--size", "256M", check=0)

    def diff(self, a, b, *extra, check=0):
        return stack("--json", "diff", "-p", self.pool, a, b, *extra, check=check)

    def test_imported_volumes(self):
        one = {0: 1, 1: 2, 2: 3, 10: 4, 11: 5, 200: 6}
        two = {1: 2, 2: 9, 3: 9, 150: 7, 300: 8}  # block 1: same bytes, other lineage
        write_image(self.path("one.img"), 256, one)
        write_image(self.path("two.img"), 320, two)
        stack("import", "-p", self.pool, self.path("one.img"), "a", check=0)
        stack("snapshot", "create", "-p", self.pool, "a@s1", check=0)
        stack("clone", "-p", self.pool, "a@s1", "c", check=0)
        stack("import", "-p", self.pool, self.path("two.img"), "b", check=0)

        # One lineage, nothing changed: no ranges, shared metadata skipped.
        for a, b in (("a@s1", "a"), ("a", "a@s1"), ("a@s1", "c"), ("c", "a")):
            j = self.diff(a, b).json()
            self.assertEqual(j["ranges"], [], (a, b))
            self.assertTrue(j["by_address"], (a, b))
            self.assertEqual(j["written_bytes"] + j["discarded_bytes"], 0)
            self.assertEqual((j["from"], j["to"]), (a, b))

        # Unrelated lineages: still exact, and it says it compared mappings.
        j = self.diff("a@s1", "b").json()
        self.assertFalse(j["by_address"])
        want = expected(one, two, 320)
        self.assertEqual(ranges_of(j), want)
        self.assertEqual(j["written_bytes"], len(two) * BS)
        self.assertEqual(j["discarded_bytes"], len([b for b in one if b not in two]) * BS)
        self.assertEqual((j["from_size_bytes"], j["to_size_bytes"]), (256 * BS, 320 * BS))
        self.assertEqual(j["block_size"], BS)
        # Reverse direction: nothing past TO's size (block 300 of b is beyond a).
        j = self.diff("b", "a@s1").json()
        self.assertEqual(ranges_of(j), expected(two, one, 256))

        # A shrink: no range past the new size; the size change is reported,
        # not a range.
        stack("volume", "resize", "-p", self.pool, "c", "--size", str(8 * BS), "--force",
              check=0)
        j = self.diff("a@s1", "c").json()
        self.assertEqual(j["ranges"], [])
        self.assertEqual(j["to_size_bytes"], 8 * BS)
        r = stack("diff", "-p", self.pool, "a@s1", "c", check=0)
        self.assertIn("size 1 MiB -> 32 KiB", r.out.replace(".0 ", " "))
        self.assertIn("lineage shortcut: yes", r.out)

        # The human form: one line per range, then totals and the shortcut.
        r = stack("diff", "-p", self.pool, "a@s1", "b", check=0)
        lines = r.out.splitlines()
        self.assertEqual(len(lines), len(want) + 3, r.out)  # ranges, totals, size, shortcut
        self.assertEqual(lines[0].split(), [want[0][2], "offset", str(want[0][0]), "length",
                                            str(want[0][1])])
        self.assertIn(f"a@s1 -> b: {len(want)} ranges", r.out)
        self.assertIn("lineage shortcut: no", r.out)

    def test_luks_volume_changed_through_the_fs(self):
        key = write_pass(self.path("pass.txt"))
        tree = make_tree(self.path("tree"))
        stack("build", "-p", self.pool, "base", "--from", tree, "--size", "64M",
              "--snapshot", "v1", "-k", key, *FAST_KDF, check=0)
        with open(self.path("big"), "wb") as f:
            f.write(os.urandom(300 * 1024))
        stack("fs", "put", "-p", self.pool, "base", self.path("big"), "/big", "-k", key, check=0)
        stack("snapshot", "create", "-p", self.pool, "base@v2", check=0)
        j = self.diff("base@v1", "base@v2").json()
        self.assertTrue(j["by_address"])
        self.assertGreaterEqual(j["written_bytes"], 300 * 1024)
        # Oracle: the stored (ciphertext) exports of both snapshots. Every
        # block that differs lies in a range of the right kind; every block
        # outside the ranges is identical.
        for s in ("v1", "v2"):
            stack("export", "-p", self.pool, f"base@{s}", self.path(f"{s}.img"),
                  "--format", "stored", check=0)
        with open(self.path("v1.img"), "rb") as f1, open(self.path("v2.img"), "rb") as f2:
            old, new = f1.read(), f2.read()
        kind_at = {}
        for off, length, kind in ranges_of(j):
            for b in range(off // BS, (off + length) // BS):
                kind_at[b] = kind
        differing = 0
        for b in range(len(new) // BS):
            o, n = old[b * BS:(b + 1) * BS], new[b * BS:(b + 1) * BS]
            if o != n:
                differing += 1
                self.assertIn(b, kind_at, f"block {b} differs but is in no range")
                want = "discarded" if n == bytes(BS) else "written"
                self.assertEqual(kind_at[b], want, f"block {b}")
            elif b in kind_at and kind_at[b] == "discarded":
                self.assertEqual(n, bytes(BS))
        self.assertGreater(differing, 0)
        # O(changed): far fewer nodes than a walk of the whole tree.
        full = self.diff("base@v1", "base@v1").json()
        self.assertEqual(full["ranges"], [])
        self.assertEqual(full["nodes_visited"], 0)

    def test_errors(self):
        write_image(self.path("one.img"), 16, {0: 1})
        stack("import", "-p", self.pool, self.path("one.img"), "a", check=0)
        for a, b, missing in (("a@nope", "a", "a@nope"), ("a", "ghost", "ghost"),
                              ("ghost@s", "a", "ghost@s")):
            r = stack("diff", "-p", self.pool, a, b, check=EXIT["notfound"])
            self.assertOneLineError(r, "NotFound")
            self.assertIn(f"'{missing}'", r.err)
        for args in (["a"], ["a", "a", "a"], ["a", "bad/name"], ["a@", "a"]):
            r = stack("diff", "-p", self.pool, *args, check=EXIT["usage"])
            self.assertOneLineError(r, "InvalidArgument")
        r = stack("diff", "a", "a", check=EXIT["usage"], env={"STACK_POOL": ""})
        self.assertOneLineError(r, "InvalidArgument")
        r = stack("diff", "-p", self.path("absent.stk"), "a", "a", check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        # $STACK_POOL names the pool too.
        r = stack("--json", "diff", "a", "a", check=0, env={"STACK_POOL": self.pool})
        self.assertEqual(r.json()["ranges"], [])


if __name__ == "__main__":
    main()

"""End-to-end tests of the CLI conventions, through `stack blockdev`."""
import os

from stacktest import EXIT, StackTestCase, main, sh, stack


class CliConventions(StackTestCase):
    def test_version_and_help(self):
        r = stack("--version", check=0)
        self.assertRegex(r.out.strip(), r"^stack \d+\.\d+\.\d+$")
        r = stack("--help", check=0)
        self.assertIn("blockdev", r.out)
        self.assertIn("exit with a status per code", r.out)
        r = stack("blockdev", "create", "--help", check=0)
        self.assertIn("example:", r.out)

    def test_usage_errors_are_one_line_exit_2(self):
        r = stack(check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        r = stack("blockdev", "frobnicate", check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        r = stack("blockdev", "create", self.path("x"), "--size", "12Q", check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        self.assertFalse(os.path.exists(self.path("x")))

    def test_not_found_and_exists(self):
        r = stack("blockdev", "info", self.path("missing"), check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        stack("blockdev", "create", self.path("d"), "--size", "1M", check=0)
        before = open(self.path("d"), "rb").read()
        r = stack("blockdev", "create", self.path("d"), "--size", "2M", check=EXIT["exists"])
        self.assertOneLineError(r, "AlreadyExists")
        self.assertEqual(open(self.path("d"), "rb").read(), before)

    def test_sparse_map_matches_seek_data(self):
        img = self.path("disk.img")
        stack("blockdev", "create", img, "--size", "64M", check=0)
        sh(f"dd if=/dev/urandom of={img} bs=4096 seek=1000 count=5 conv=notrunc status=none")
        sh(f"dd if=/dev/urandom of={img} bs=4096 seek=9000 count=1 conv=notrunc status=none")
        info = stack("--json", "blockdev", "info", img, check=0).json()
        self.assertEqual(info["size_bytes"], 64 << 20)
        self.assertEqual(info["block_size"], 4096)
        ext = stack("--json", "blockdev", "map", img, check=0).json()
        covered = lambda off: any(e["offset"] <= off < e["offset"] + e["length"] for e in ext)
        for blk in list(range(1000, 1005)) + [9000]:
            self.assertTrue(covered(blk * 4096), f"block {blk} not reported")
        self.assertLess(sum(e["length"] for e in ext), 1 << 20)
        # Discard frees the first run: it reads back as zeros and leaves the map.
        stack("blockdev", "discard", img, "--offset", str(1000 * 4096), "--length", "20K",
              check=0)
        with open(img, "rb") as f:
            f.seek(1000 * 4096)
            self.assertEqual(f.read(5 * 4096), bytes(5 * 4096))
        ext = stack("--json", "blockdev", "map", img, check=0).json()
        self.assertFalse(covered(1002 * 4096))
        self.assertTrue(covered(9000 * 4096))

    def test_misaligned_discard_refused_and_changes_nothing(self):
        img = self.path("d.img")
        stack("blockdev", "create", img, "--size", "1M", check=0)
        sh(f"dd if=/dev/urandom of={img} bs=4096 count=4 conv=notrunc status=none")
        before = open(img, "rb").read()
        r = stack("blockdev", "discard", img, "--offset", "100", "--length", "4096",
                  check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        self.assertEqual(open(img, "rb").read(), before)


if __name__ == "__main__":
    main()

"""Isolation: the source snapshot's content never changes, whatever is done
to a clone (edit, resize, re-key, delete)."""
from images import FAST_KDF, make_tree, plain_fingerprint, write_pass
from stacktest import EXIT, StackTestCase, main, sh, stack


class Isolation(StackTestCase):
    def test_clone_changes_never_reach_the_snapshot(self):
        pool = self.path("p.stk")
        key = write_pass(self.path("k"))
        key2 = write_pass(self.path("k2"), b"the clone's own passphrase")
        stack("build", "-p", pool, "base", "--from", make_tree(self.path("t")), "--size",
              "128M", "--snapshot", "v1", "-k", key, *FAST_KDF, check=0)
        fp = plain_fingerprint(self.tmp, pool, "base@v1", key)
        # Fork with its own passphrase and a larger size.
        rep = stack("--json", "clone", "-p", pool, "base@v1", "fork", "-k", key,
                    "--new-key-file", key2, "--size", "256M", *FAST_KDF, check=0).json()
        self.assertTrue(rep["own_passphrase"])
        self.assertEqual(rep["size_bytes"], 256 << 20)
        # The old passphrase no longer opens the fork; the new one does.
        r = stack("fs", "ls", "-p", pool, "fork", "-k", key, check=EXIT["auth"])
        self.assertOneLineError(r, "AuthFailed")
        stack("fs", "put", "-p", pool, "fork", key2, "/etc/hostname", "-k", key2, check=0)
        stack("fs", "rm", "-p", pool, "fork", "-r", "/usr", "-k", key2, check=0)
        # And the source still opens with its own passphrase only.
        stack("fs", "ls", "-p", pool, "base@v1", "-k", key, check=0)
        stack("fs", "ls", "-p", pool, "base@v1", "-k", key2, check=EXIT["auth"])
        self.assertEqual(plain_fingerprint(self.tmp, pool, "base@v1", key), fp)
        # Changing the clone's key and deleting it leave the snapshot as it was.
        key3 = write_pass(self.path("k3"), b"third")
        stack("luks", "change-key", "-p", pool, "fork", "-k", key2, "--new-key-file", key3,
              *FAST_KDF, check=0)
        stack("volume", "resize", "-p", pool, "fork", "--size", "512M", check=0)
        self.assertEqual(plain_fingerprint(self.tmp, pool, "base@v1", key), fp)
        stack("volume", "rm", "-p", pool, "fork", check=0)
        self.assertEqual(plain_fingerprint(self.tmp, pool, "base@v1", key), fp)
        # Deleting the origin volume keeps the snapshot (peers, no dependency).
        stack("volume", "rm", "-p", pool, "base", check=0)
        self.assertEqual(plain_fingerprint(self.tmp, pool, "base@v1", key), fp)
        stack("pool", "check", pool, check=0)

    def test_clone_refuses_settings_that_cannot_differ(self):
        pool = self.path("p.stk")
        key = write_pass(self.path("k"))
        stack("build", "-p", pool, "base", "--from", make_tree(self.path("t")), "--size",
              "64M", "-k", key, *FAST_KDF, check=0)
        for extra in (["--sector-size", "512"], ["--cipher", "aes-cbc-essiv"]):
            r = stack("clone", "-p", pool, "base@golden", "c", *extra, check=EXIT["usage"])
            self.assertOneLineError(r, "InvalidArgument")
            self.assertIn("volume key", r.err)
        r = stack("clone", "-p", pool, "base@golden", "c", "--size", "1M", check=EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        names = [e["name"] for e in stack("--json", "volume", "list", "-p", pool, "--all",
                                          check=0).json()]
        self.assertNotIn("c", names)


if __name__ == "__main__":
    main()

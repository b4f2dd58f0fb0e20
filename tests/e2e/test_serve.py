"""`stack serve` (issue 14): pool entries over NBD through nbdkit and the
stack plugin, checked with real clients as oracles: nbdinfo, nbdcopy,
qemu-img, qemu-io, libnbd's Python binding, cryptsetup and e2fsck."""
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from images import FAST_KDF, PASS, allocated_bytes, e2fsck_clean, make_tree, write_pass
from stacktest import EXIT, SKIP_EXIT, STACK, StackTestCase, main, sanitizer, stack

MISSING = [t for t in ("nbdkit", "nbdinfo", "nbdcopy", "qemu-io", "qemu-img")
           if shutil.which(t) is None]
try:
    import nbd  # python3-libnbd
except ImportError:  # pragma: no cover
    nbd = None
    MISSING.append("python3-libnbd")
if MISSING:
    print(f"SKIP: test_serve needs {', '.join(MISSING)} (scripts/setup.sh installs them)")
    sys.exit(SKIP_EXIT)


if sanitizer() != "none":
    # nbdkit is not instrumented: it cannot dlopen a plugin built with ASan
    # or TSan (their runtimes must be loaded first).
    print(f"SKIP: test_serve under STACK_SANITIZER={sanitizer()}: uninstrumented nbdkit "
          "cannot load the instrumented plugin")
    sys.exit(SKIP_EXIT)

MiB = 1 << 20


def run(*cmd, check=True):
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


class Server:
    """A running `stack serve`; uris maps export name -> URI (from its ready lines)."""

    def __init__(self, pool, names, *extra, key=None, view=None, pidfile=None):
        args = [STACK, "serve", "-p", pool, *names, *extra]
        if key:
            args += ["-k", key]
        if view:
            args += ["--view", view]
        if pidfile:
            args += ["--pidfile", pidfile]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.uris = {}
        self.timer = threading.Timer(300, self.proc.kill)  # a hung start fails, never hangs
        self.timer.start()
        for _ in names:
            line = self.proc.stdout.readline()
            if not line:
                self.timer.cancel()
                self.proc.wait(timeout=60)
                raise AssertionError(f"serve failed: exit {self.proc.returncode}: "
                                     f"{self.proc.stderr.read()}")
            m = re.match(r"serving (\S+) \((plain|stored), (read-only|read-write)\) at (\S+)$",
                         line.strip())
            assert m, line
            self.uris[m.group(1)] = m.group(4)
        self.timer.cancel()
        # stderr is read as it comes: a server that logs much (nbdkit logs
        # every refused request) must never block on a full pipe.
        self.err = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def stderr(self):
        return "".join(self.err)

    def wait(self, timeout=120):
        """Waits for the server to end; its exit status and stderr."""
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, self.stderr()

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.wait(timeout=60)


class ServeTest(StackTestCase):
    def setUp(self):
        super().setUp()
        self.pool = self.path("p.stk")
        self.key = write_pass(self.path("pass.txt"))
        self.servers = []
        stack("pool", "create", self.pool, "--size", "256M", check=0)

    def tearDown(self):
        for s in self.servers:
            s.kill()
        super().tearDown()

    def serve(self, *names, extra=(), **kw):
        s = Server(self.pool, list(names), *extra, **kw)
        self.servers.append(s)
        return s

    def stop(self, s, sig=signal.SIGTERM):
        rc, err = s.stop(sig)
        self.assertEqual(rc, 0, err)

    def volume(self, name, size="64M", encrypted=False, discards=False):
        stack("volume", "create", "-p", self.pool, name, "--size", size, check=0)
        if encrypted:
            stack("luks", "format", "-p", self.pool, name, "--new-key-file", self.key, *FAST_KDF,
                  *(["--allow-discards"] if discards else []), check=0)

    def read_when_served_again(self, name, length, offset=0, **kw):
        """Serves `name` alone, reads it, stops: what a restart sees."""
        s = self.serve(name, **kw)
        h = nbd.NBD()
        h.connect_uri(s.uris[name])
        data = h.pread(length, offset)
        h.shutdown()
        self.stop(s)
        return data

    def assertPoolClean(self):
        r = stack("--json", "pool", "check", self.pool)
        self.assertEqual(r.rc, 0, r.out + r.err)

    def entry(self, name):
        for e in stack("--json", "volume", "list", "-p", self.pool, "--all", check=0).json():
            if e["name"] == name:
                return e
        raise AssertionError(f"no entry {name}")

    def sparse_source(self, size, runs):
        """A sparse file with random data at (offset, length) runs."""
        p = self.path(f"src-{len(runs)}-{size}.img")
        with open(p, "wb") as f:
            f.truncate(size)
            for off, ln in runs:
                f.seek(off)
                f.write(os.urandom(ln))
        return p

    def qemu_io(self, uri, *cmds, check=True, read_only=False):
        args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else [])
        for c in cmds:
            args += ["-c", c]
        r = subprocess.run(args + [uri], capture_output=True, text=True)
        text = r.stdout + r.stderr
        if check:
            self.assertEqual(r.returncode, 0, text)
            self.assertNotRegex(text, r"failed|error|Pattern verification", text)
        return text

    # ------------------------------------------------------------ tests

    def test_info_list_map_and_nbdcopy_both_ways(self):
        self.volume("vm1")
        self.volume("vm2", size="32M")
        runs = [(0, 64 * 1024), (5 * MiB, 3 * MiB), (40 * MiB + 8192, 4096), (63 * MiB, MiB)]
        src = self.sparse_source(64 * MiB, runs)
        s = self.serve("vm1", "vm2", view="stored")
        uri = s.uris["vm1"]
        self.assertEqual(int(run("nbdinfo", "--size", uri).stdout), 64 * MiB)
        self.assertEqual(int(run("nbdinfo", "--size", s.uris["vm2"]).stdout), 32 * MiB)
        listed = json.loads(run("nbdinfo", "--list", "--json", uri).stdout)
        self.assertEqual(sorted(e["export-name"] for e in listed["exports"]), ["vm1", "vm2"])
        run("nbdcopy", src, uri)
        extents = json.loads(run("nbdinfo", "--map", "--json", uri).stdout)
        data = sum(e["length"] for e in extents if e["type"] & 1 == 0)
        # Holes are hole+zero in the stored view (the pool reads them as zeros).
        self.assertTrue(all(e["type"] in (0, 3) for e in extents), extents)
        back = self.path("back.img")
        run("nbdcopy", uri, back)
        with open(src, "rb") as a, open(back, "rb") as b:
            self.assertTrue(a.read() == b.read(), "nbdcopy round trip differs")
        # Sparseness kept: the copy holds about what was written, not 64 MiB.
        self.assertLessEqual(allocated_bytes(back), sum(l for _, l in runs) + 8 * 65536)
        self.assertEqual(run("qemu-img", "compare", "-f", "raw", "-F", "raw", src, uri).returncode, 0)
        self.stop(s)
        self.assertEqual(data, self.entry("vm1")["mapped_bytes"])
        self.assertEqual(data, sum(l for _, l in runs))
        self.assertPoolClean()

    def test_plain_view_qemu_io_patterns_and_ext4(self):
        tree = make_tree(self.path("tree"))
        stack("build", "-p", self.pool, "fsvol", "--from", tree, "--size", "64M", "-k", self.key,
              *FAST_KDF, check=0)
        self.volume("raw", encrypted=True)
        s = self.serve("fsvol", "raw", key=self.key)
        out = self.path("fs.img")
        run("nbdcopy", s.uris["fsvol"], out)
        rc, text = e2fsck_clean(out)
        self.assertEqual(rc, 0, text)
        uri = s.uris["raw"]
        self.qemu_io(uri, "write -P 0xab 0 64k", "flush", "read -P 0xab 0 64k")
        # Unaligned: read-modify-write of our 4 KiB sectors.
        self.qemu_io(uri, "write -P 0xcd 1000 3000", "read -P 0xab 0 1000",
                     "read -P 0xcd 1000 3000", "read -P 0xab 4000 61536")
        self.qemu_io(uri, "write -P 0x11 8M 1M", "write -z 8M 4096", "read -P 0 8M 4096",
                     "read -P 0x11 8196k 1020k", "flush")
        # Plain-view holes decrypt to garbage: reported as holes, never as zero
        # (so no whole-device comparison here: qemu reads such holes as zeros).
        extents = json.loads(run("nbdinfo", "--map", "--json", uri).stdout)
        self.assertTrue(all(e["type"] in (0, 1) for e in extents), extents)
        self.stop(s)
        # What was written is there after the server is gone (a fresh server reads it).
        s = self.serve("raw", key=self.key)
        self.qemu_io(s.uris["raw"], "read -P 0xab 0 1000", "read -P 0xcd 1000 3000",
                     "read -P 0 8M 4096")
        self.stop(s)
        self.assertPoolClean()

    def test_stored_view_opens_as_luks2(self):
        self.volume("enc", size="32M", encrypted=True)
        s = self.serve("enc", view="stored")
        out = self.path("stored.img")
        run("nbdcopy", s.uris["enc"], out)
        self.stop(s)
        self.assertIn("LUKS header information", run("cryptsetup", "luksDump", out).stdout)
        run("cryptsetup", "open", "--test-passphrase", "--key-file", self.key, out)
        bad = write_pass(self.path("bad.txt"), b"wrong")
        self.assertNotEqual(run("cryptsetup", "open", "--test-passphrase", "--key-file", bad, out,
                                check=False).returncode, 0)

    def test_concurrent_clients_on_one_and_several_exports(self):
        self.volume("a", encrypted=True)
        self.volume("b")
        s = self.serve("a", "b", key=self.key)
        procs = []
        for name in ("a", "b"):
            for i in range(4):
                pat = 0x21 + i + (0x10 if name == "b" else 0)
                procs.append(subprocess.Popen(
                    ["qemu-io", "-f", "raw", "-c", f"write -P {pat} {i * 8}M 8M", "-c", "flush",
                     "-c", f"read -P {pat} {i * 8}M 8M", s.uris[name]],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for p in procs:
            out, _ = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, out)
            self.assertNotRegex(out, r"failed|Pattern verification")
        # Several connections from one client, in parallel (multi-conn).
        src = self.sparse_source(32 * MiB, [(0, 32 * MiB)])
        run("nbdcopy", "--connections=4", "--requests=16", src, s.uris["a"])
        back = self.path("a-head.img")
        run("nbdcopy", "--connections=4", s.uris["a"], back)
        with open(src, "rb") as f1, open(back, "rb") as f2:
            self.assertEqual(f1.read(), f2.read(32 * MiB))
        for i in range(4):
            self.qemu_io(s.uris["b"], f"read -P {0x31 + i} {i * 8}M 8M")
        self.stop(s)
        self.assertPoolClean()

    def test_snapshot_and_read_only_entries_are_served_read_only(self):
        self.volume("v")
        s = self.serve("v")
        self.qemu_io(s.uris["v"], "write -P 0x5a 0 1M", "flush")
        self.stop(s)
        stack("snapshot", "create", "-p", self.pool, "v@s1", check=0)
        s = self.serve("v@s1")
        info = json.loads(run("nbdinfo", "--json", s.uris["v@s1"]).stdout)
        self.assertTrue(info["exports"][0]["is_read_only"])
        out = self.qemu_io(s.uris["v@s1"], "write -P 0x77 0 4k", check=False)
        self.assertRegex(out, r"(?i)read-only|not permitted|EPERM|EROFS|permission")
        self.qemu_io(s.uris["v@s1"], "read -P 0x5a 0 1M", read_only=True)
        # The server refuses a write sent anyway (libnbd's own check turned off).
        h = nbd.NBD()
        h.connect_uri(s.uris["v@s1"])
        self.assertTrue(h.is_read_only())
        h.set_strict_mode(0)
        for op in (lambda: h.pwrite(b"w" * 4096, 0), lambda: h.zero(4096, 0),
                   lambda: h.trim(4096, 0)):
            with self.assertRaises(nbd.Error) as cm:
                op()
            self.assertIn(cm.exception.errno, ("EPERM", "EROFS"), str(cm.exception))
        self.assertEqual(h.pread(4096, 0), b"\x5a" * 4096)
        h.shutdown()
        self.stop(s)
        self.assertPoolClean()

    def test_pool_stays_usable_while_serving(self):
        """Other commands on a served pool are answered by the server (the
        control socket): a snapshot holds every write acknowledged before
        it, the served entry cannot be removed or rolled back under the
        guest (Busy naming the export), its file system is not opened
        beside the guest, and other entries are managed as usual."""
        self.volume("vm1", encrypted=True)
        self.volume("spare", size="16M")
        s = self.serve("vm1", key=self.key)
        h = nbd.NBD()
        h.connect_uri(s.uris["vm1"])
        h.pwrite(b"\x5a" * MiB, 0)  # acknowledged, not flushed
        r = stack("snapshot", "create", "-p", self.pool, "vm1@s1", timeout=120)
        self.assertEqual(r.rc, 0, r.err)
        h.pwrite(b"\x77" * MiB, 0)
        h.flush()
        names = [e["name"] for e in
                 stack("--json", "volume", "list", "-p", self.pool, "--all", check=0).json()]
        self.assertIn("vm1@s1", names)
        for args in (("volume", "rm", "-p", self.pool, "vm1"),
                     ("snapshot", "rollback", "-p", self.pool, "vm1@s1"),
                     ("volume", "rename", "-p", self.pool, "vm1", "vm9")):
            r = stack(*args, check=EXIT["busy"], timeout=120)
            self.assertOneLineError(r, "Busy")
            self.assertIn("NBD export 'vm1'", r.err)
        r = stack("fs", "ls", "-p", self.pool, "vm1", "-k", self.key, check=EXIT["busy"],
                  timeout=120)
        self.assertOneLineError(r, "Busy")
        # Other entries: created, written, deleted through the server.
        stack("volume", "create", "-p", self.pool, "new", "--size", "8M", check=0, timeout=120)
        stack("volume", "rm", "-p", self.pool, "spare", check=0, timeout=120)
        self.assertEqual(h.pread(4096, 0), b"\x77" * 4096)
        h.shutdown()
        self.stop(s)
        s = self.serve("vm1@s1", "vm1", key=self.key)
        for name, byte in (("vm1@s1", b"\x5a"), ("vm1", b"\x77")):
            h = nbd.NBD()
            h.connect_uri(s.uris[name])
            self.assertEqual(h.pread(MiB, 0), byte * MiB, name)
            h.shutdown()
        self.stop(s)
        names = [e["name"] for e in
                 stack("--json", "volume", "list", "-p", self.pool, "--all", check=0).json()]
        self.assertIn("new", names)
        self.assertNotIn("spare", names)
        self.assertPoolClean()

    def test_snapshot_while_a_writer_runs_holds_every_acknowledged_write(self):
        """A writer keeps writing block i with a pattern naming i (stored
        view, 4 KiB blocks, in order); the snapshot taken meanwhile holds
        every block acknowledged before the snapshot command started, and
        none the writer started after the command returned."""
        self.volume("vm1", size="32M")
        s = self.serve("vm1", view="stored")
        nblocks = 32 * MiB // 4096
        acked = [0]
        stop = threading.Event()

        def block(i):
            return i.to_bytes(4, "little") * 1024

        def writer():
            h = nbd.NBD()
            h.connect_uri(s.uris["vm1"])
            for i in range(nblocks):
                if stop.is_set():
                    break
                h.pwrite(block(i), i * 4096)
                acked[0] = i + 1
                if i % 64 == 63:
                    h.flush()
            h.shutdown()

        t = threading.Thread(target=writer)
        t.start()
        while acked[0] < 200:
            time.sleep(0.01)
        before = acked[0]
        r = stack("snapshot", "create", "-p", self.pool, "vm1@mid", timeout=120)
        after = acked[0]
        stop.set()
        t.join(timeout=120)
        self.assertEqual(r.rc, 0, r.err)
        self.assertLess(before, nblocks, "the writer finished before the snapshot: no overlap")
        self.stop(s)
        out = self.path("mid.img")
        s = self.serve("vm1@mid", view="stored")
        run("nbdcopy", s.uris["vm1@mid"], out)
        self.stop(s)
        with open(out, "rb") as f:
            data = f.read()
        for i in range(nblocks):
            got = data[i * 4096:(i + 1) * 4096]
            if i < before:
                self.assertEqual(got, block(i), f"block {i} acknowledged before the snapshot")
            elif i > after:
                # the writer had at most one write (block `after`) in flight
                # when the command returned: later blocks were not yet written.
                self.assertEqual(got, bytes(4096), f"block {i} written after the snapshot")
        self.assertPoolClean()

    def test_forwarded_json_equals_direct(self):
        """Commands forwarded to a serving process print what they print when
        run directly (stdout, stderr, exit status), --json included."""
        self.volume("vm1")
        self.volume("vm2", size="16M")
        stack("snapshot", "create", "-p", self.pool, "vm2@s", check=0)
        cmds = [("--json", "volume", "list", "-p", self.pool, "--all"),
                ("--json", "snapshot", "list", "-p", self.pool),
                ("--json", "pool", "info", self.pool),
                ("volume", "list", "-p", self.pool),
                ("snapshot", "rm", "-p", self.pool, "vm2@nope"),
                ("volume", "rm", "-p", self.pool, "missing")]
        s = self.serve("vm1", "vm2@s", view="stored")
        forwarded = [stack(*c, timeout=120) for c in cmds]
        self.stop(s)
        direct = [stack(*c) for c in cmds]
        for c, f, d in zip(cmds, forwarded, direct):
            self.assertEqual((f.rc, f.out, f.err), (d.rc, d.out, d.err), " ".join(c))
        self.assertEqual(forwarded[-1].rc, EXIT["notfound"])

    def test_errors_before_start(self):
        self.volume("enc", size="32M", encrypted=True)
        bad = write_pass(self.path("bad.txt"), b"not the passphrase")
        r = stack("serve", "-p", self.pool, "enc", "-k", bad)
        self.assertEqual(r.rc, EXIT["auth"], r.err)
        self.assertOneLineError(r, "AuthFailed")
        r = stack("serve", "-p", self.pool, "nope")
        self.assertEqual(r.rc, EXIT["notfound"], r.err)
        self.assertOneLineError(r, "NotFound")
        r = stack("serve", "-p", self.pool, "enc", "--view", "x")
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        # The ready line names the port: one nobody would listen on is refused.
        for port in ("0", "65536", "99999", "123456"):
            r = stack("serve", "-p", self.pool, "enc", "--tcp", "127.0.0.1:" + port)
            self.assertEqual(r.rc, EXIT["usage"], r.err)
            self.assertOneLineError(r, "InvalidArgument")
            self.assertIn("1 to 65535", r.err)
        empty = self.path("emptybin")
        os.mkdir(empty)
        r = stack("serve", "-p", self.pool, "enc", env={"PATH": empty})
        self.assertEqual(r.rc, EXIT["unsupported"], r.err)
        self.assertIn("nbdkit", r.err)
        # Held by a server: a second one is Busy.
        s = self.serve("enc", key=self.key)
        r = stack("serve", "-p", self.pool, "enc", "-k", self.key, "--socket", self.path("s2"))
        self.assertEqual(r.rc, EXIT["busy"], r.err)
        self.assertOneLineError(r, "Busy")
        self.stop(s)

    def test_non_conforming_client_cannot_stop_the_server(self):
        """A client that ignores what the server advertised (libnbd with
        strict mode off) sends every request with every flag to every kind
        of export. Each gets an answer or loses its own connection; the
        server keeps serving, another client's acknowledged writes stay, the
        pool stays clean. (A fast zero to an export that did not advertise
        it used to abort nbdkit, and with it every client's unflushed
        writes.)"""
        self.volume("v", size="16M")
        self.volume("e", size="32M", encrypted=True)
        stack("snapshot", "create", "-p", self.pool, "v@s", check=0)
        s = self.serve("v", "e", "v@s", key=self.key)
        victim = nbd.NBD()
        victim.connect_uri(s.uris["v"])
        victim.pwrite(b"\x5a" * 65536, 0)  # acknowledged, never flushed
        flags = [0, nbd.CMD_FLAG_FUA, nbd.CMD_FLAG_NO_HOLE, nbd.CMD_FLAG_DF,
                 nbd.CMD_FLAG_REQ_ONE, nbd.CMD_FLAG_FAST_ZERO, 0xffff]
        requests = {
            "pread": lambda h, f: h.pread(4096, 4096, f),
            "pwrite": lambda h, f: h.pwrite(b"\x01" * 4096, 8 * MiB, f),
            "zero": lambda h, f: h.zero(4096, 8 * MiB, f),
            "trim": lambda h, f: h.trim(4096, 8 * MiB, f),
            "cache": lambda h, f: h.cache(4096, 0, f),
            "flush": lambda h, f: h.flush(f),
            "block_status": lambda h, f: h.block_status(4096, 0, lambda *a: 0, f),
        }
        answered = 0
        for name in ("v", "e", "v@s"):
            for req, call in requests.items():
                for f in flags:
                    h = nbd.NBD()
                    h.set_strict_mode(0)
                    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
                    h.connect_uri(s.uris[name])
                    try:
                        call(h, f)
                        answered += 1
                    except nbd.Error:
                        pass  # refused, or this connection dropped: both fine
                    try:
                        h.shutdown()
                    except nbd.Error:
                        pass
                    self.assertIsNone(s.proc.poll(), f"{req} flags {f:#x} on {name} "
                                      f"stopped the server: {s.stderr()}")
        self.assertGreater(answered, 0)
        self.assertEqual(victim.pread(65536, 0), b"\x5a" * 65536)
        victim.shutdown()
        self.stop(s)
        self.assertEqual(self.read_when_served_again("v", 65536), b"\x5a" * 65536)
        self.assertPoolClean()

    def test_served_volume_keeps_its_size_and_writability(self):
        """Resizing a volume a client is writing (the volume, or the ext4 in
        it) or making it read-only is Busy while it is served: the client's
        disk would change under it. Other volumes resize as usual."""
        self.volume("u", size="16M")
        stack("fs", "mkfs", "-p", self.pool, "u", check=0)
        self.volume("other", size="16M")
        s = self.serve("u")
        before = self.entry("u")["size_bytes"]
        for args in (("volume", "resize", "-p", self.pool, "u", "--size", "32M"),
                     ("volume", "resize", "-p", self.pool, "u", "--size", "8M", "--force"),
                     ("fs", "resize", "-p", self.pool, "u", "--size", "40M"),
                     ("fs", "resize", "-p", self.pool, "u"),
                     ("volume", "set", "-p", self.pool, "u", "--read-only")):
            r = stack(*args, check=EXIT["busy"], timeout=120)
            self.assertOneLineError(r, "Busy")
            self.assertIn("'u'", r.err)
        e = self.entry("u")
        self.assertEqual(e["size_bytes"], before)
        self.assertFalse(e["read_only"])
        self.assertEqual(int(run("nbdinfo", "--size", s.uris["u"]).stdout), before)
        stack("volume", "set", "-p", self.pool, "u", "--note", "served", check=0, timeout=120)
        stack("volume", "resize", "-p", self.pool, "other", "--size", "32M", check=0, timeout=120)
        self.stop(s)
        self.assertEqual(self.entry("other")["size_bytes"], 32 * MiB)
        stack("fs", "resize", "-p", self.pool, "u", "--size", "40M", check=0)
        img = self.path("u.img")
        stack("export", "-p", self.pool, "u", img, "--format", "plain", check=0)
        rc, out = e2fsck_clean(img)
        self.assertEqual(rc, 0, out)
        self.assertPoolClean()

    def test_flush_on_a_read_only_export_commits_every_write(self):
        """spec/serve.md: a flush on any connection of any export makes every
        write acknowledged before it durable, the read-only exports' too."""
        self.volume("w", size="16M")
        stack("snapshot", "create", "-p", self.pool, "w@s", check=0)
        pidfile = self.path("nbdkit.pid")
        s = self.serve("w", "w@s", pidfile=pidfile)
        h = nbd.NBD()
        h.connect_uri(s.uris["w"])
        h.pwrite(b"\x6b" * 65536, 0)  # acknowledged, not flushed on this export
        ro = nbd.NBD()
        ro.connect_uri(s.uris["w@s"])
        ro.flush()
        with open(pidfile) as f:
            os.kill(int(f.read()), signal.SIGKILL)
        s.wait(timeout=60)
        self.assertEqual(self.read_when_served_again("w", 65536), b"\x6b" * 65536)
        self.assertPoolClean()

    def test_unknown_export_name_write_past_end_and_disconnect(self):
        self.volume("v", size="16M")
        s = self.serve("v")
        uri = s.uris["v"]
        bad = uri.replace("///v?", "///nope?")
        self.assertNotEqual(run("nbdinfo", bad, check=False).returncode, 0)
        out = self.qemu_io(uri, "write -P 0x42 16M 4k", check=False)
        self.assertRegex(out, r"(?i)failed|error|out of range|Input/output|No space")
        h = nbd.NBD()
        h.connect_uri(uri)
        with self.assertRaises(nbd.Error):
            h.pwrite(b"x" * 4096, 16 * MiB - 2048)
        h.pwrite(b"y" * 4096, 0)  # 0x79
        h.flush()
        h.shutdown()
        # A client that goes away in the middle of sending a 4 MiB write.
        code = ("import nbd, os, sys\n"
                "h = nbd.NBD(); h.connect_uri(sys.argv[1])\n"
                "h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b'z' * (4 << 20))), 8 << 20)\n"
                "h.poll(0)\n"
                "os._exit(0)\n")
        for _ in range(3):
            subprocess.run([sys.executable, "-c", code, uri], check=True, timeout=60)
        # Still serving, with what was flushed.
        self.qemu_io(uri, "read -P 0x79 0 4k")
        self.assertEqual(int(run("nbdinfo", "--size", uri).stdout), 16 * MiB)
        self.stop(s)
        self.assertPoolClean()

    def test_pool_full_gives_enospc(self):
        small = self.path("small.stk")
        stack("pool", "create", small, "--size", "16M", "--max-size", "16M", check=0)
        stack("volume", "create", "-p", small, "big", "--size", "64M", check=0)
        s = Server(small, ["big"], view="stored")
        self.servers.append(s)
        h = nbd.NBD()
        h.connect_uri(s.uris["big"])
        acked = 0
        err = None
        for i in range(64):
            try:
                h.pwrite(bytes([i + 1]) * MiB, i * MiB)
                h.flush()
                acked = i + 1
            except nbd.Error as e:
                err = e
                break
        self.assertIsNotNone(err, "a 16 MiB pool took 64 MiB")
        self.assertEqual(err.errno, "ENOSPC", str(err))
        for i in range(acked):
            self.assertEqual(h.pread(MiB, i * MiB), bytes([i + 1]) * MiB)
        h.shutdown()
        self.stop(s)
        r = stack("--json", "pool", "check", small)
        self.assertEqual(r.rc, 0, r.out + r.err)
        s = Server(small, ["big"], view="stored")
        self.servers.append(s)
        h = nbd.NBD()
        h.connect_uri(s.uris["big"])
        for i in range(acked):
            self.assertEqual(h.pread(MiB, i * MiB), bytes([i + 1]) * MiB, f"chunk {i}")
        h.shutdown()
        self.stop(s)

    def test_sigkill_during_flushing_writer(self):
        self.volume("v", size="32M", encrypted=True)
        rng = random.Random(1414)
        pidfile = self.path("nbdkit.pid")
        for round_ in range(12):
            s = self.serve("v", key=self.key, pidfile=pidfile)
            with open(pidfile) as f:
                pid = int(f.read())
            h = nbd.NBD()
            h.connect_uri(s.uris["v"])
            killer = threading.Timer(rng.uniform(0.05, 0.6), os.kill, (pid, signal.SIGKILL))
            killer.start()
            durable = []   # (offset, byte) acknowledged before the last completed flush
            pending = []
            n = 0
            try:
                while True:
                    off = rng.randrange(0, 32 * MiB // 4096) * 4096
                    val = (round_ * 37 + n) % 255 + 1
                    n += 1
                    pending.append((off, val))  # may land even if the reply is lost
                    h.pwrite(bytes([val]) * 4096, off)
                    if len(pending) >= 8:
                        h.flush()
                        durable += pending
                        pending = []
            except nbd.Error:
                pass
            killer.join()
            rc, _ = s.wait(timeout=60)
            self.assertNotEqual(rc, 0)  # its server was killed
            self.assertPoolClean()
            # The last value acknowledged-and-flushed for each offset, unless a
            # later unflushed write to the same offset may have landed.
            last = {}
            for off, val in durable:
                last[off] = val
            maybe = {off for off, _ in pending}
            s = self.serve("v", key=self.key)
            h = nbd.NBD()
            h.connect_uri(s.uris["v"])
            for off, val in last.items():
                got = h.pread(4096, off)
                if off in maybe:
                    continue
                self.assertEqual(got, bytes([val]) * 4096, f"round {round_} offset {off}")
            h.shutdown()
            self.stop(s)

    def test_sigint_and_sigterm_commit_unflushed_writes(self):
        self.volume("v", encrypted=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            s = self.serve("v", key=self.key)
            h = nbd.NBD()
            h.connect_uri(s.uris["v"])
            h.pwrite(bytes([sig]) * 65536, 4 * MiB)  # never flushed by the client
            h.shutdown()
            self.stop(s, sig)
            self.assertFalse(os.path.exists(self.pool + ".nbd.sock"))
            s = self.serve("v", key=self.key)
            h = nbd.NBD()
            h.connect_uri(s.uris["v"])
            self.assertEqual(h.pread(65536, 4 * MiB), bytes([sig]) * 65536, signal.Signals(sig).name)
            h.shutdown()
            self.stop(s)
        self.assertPoolClean()

    def test_capabilities_block_sizes_trim_and_socket_mode(self):
        self.volume("v", size="32M")
        self.volume("e", size="32M", encrypted=True)
        self.volume("d", size="32M", encrypted=True, discards=True)
        s = self.serve("v", "e", "d", key=self.key)
        self.assertEqual(os.stat(self.pool + ".nbd.sock").st_mode & 0o777, 0o600)
        info = {e["export-name"]: e for e in
                json.loads(run("nbdinfo", "--list", "--json", s.uris["v"]).stdout)["exports"]}
        for name in ("v", "e", "d"):
            x = info[name]
            self.assertTrue(x["can_flush"] and x["can_fua"] and x["can_multi_conn"], x)
            self.assertEqual(x["block_size_minimum"], 4096, x)
            self.assertEqual(x["block_size_preferred"], 4096, x)
            self.assertGreaterEqual(x["block_size_maximum"], 4096, x)
        self.assertTrue(info["v"]["can_trim"])
        self.assertFalse(info["e"]["can_trim"])  # no allow-discards
        self.assertTrue(info["d"]["can_trim"])
        # Fast zero is advertised everywhere; the plain view of an encrypted
        # entry cannot zero fast (it writes encrypted zeros) and says ENOTSUP.
        for name in ("v", "e", "d"):
            self.assertTrue(info[name]["can_fast_zero"], name)
        h = nbd.NBD()
        h.connect_uri(s.uris["e"])
        h.pwrite(b"\x02" * 8192, 0)
        with self.assertRaises(nbd.Error) as cm:
            h.zero(8192, 0, nbd.CMD_FLAG_FAST_ZERO)
        self.assertEqual(cm.exception.errnum, errno.ENOTSUP)
        self.assertEqual(h.pread(8192, 0), b"\x02" * 8192)  # nothing zeroed
        h.zero(8192, 0)
        self.assertEqual(h.pread(8192, 0), bytes(8192))
        h.shutdown()
        # Trim frees pool blocks; zero with may_trim leaves holes (stored data path).
        h = nbd.NBD()
        h.connect_uri(s.uris["v"])
        h.pwrite(b"\x01" * (4 * MiB), 0)
        h.trim(2 * MiB, 0)
        h.zero(MiB, 3 * MiB)
        h.flush()
        self.assertEqual(h.pread(MiB, 3 * MiB), bytes(MiB))
        h.shutdown()
        self.stop(s)
        self.assertEqual(self.entry("v")["mapped_bytes"], MiB)
        self.assertPoolClean()

    def test_unaligned_writes_race_free_with_large_pool_blocks(self):
        ROUNDS, BLOCKS = 2, 1024  # the whole 16 MiB data segment: 1024 chances per round
        # 16 KiB pool blocks under 4 KiB LUKS sectors: CryptDevice merges
        # pool blocks, our plugin merges sectors; neither may lose a
        # neighbour's concurrent write.
        big = self.path("big.stk")
        stack("pool", "create", big, "--size", "128M", "--block-size", "16384", check=0)
        stack("volume", "create", "-p", big, "v", "--size", "32M", check=0)
        stack("luks", "format", "-p", big, "v", "--new-key-file", self.key, *FAST_KDF, check=0)
        s = Server(big, ["v"], key=self.key)
        self.servers.append(s)
        info = json.loads(run("nbdinfo", "--json", s.uris["v"]).stdout)["exports"][0]
        self.assertEqual((info["block_size_minimum"], info["block_size_preferred"]), (4096, 16384))
        # Each client owns a part of every 16 KiB pool block: an unaligned
        # 3000-byte range inside its own 4 KiB sector (qemu would do its own
        # read-modify-write of the sector, so raw libnbd with its alignment
        # check off sends them as they are), then its whole sector.
        # Many requests in flight per connection (nbdkit runs them on parallel
        # threads), none of one client overlapping another of its own (NBD
        # does not order those); the last round's values must all be there.
        code = ("import nbd, sys\n"
                "c = int(sys.argv[2]); h = nbd.NBD(); h.set_strict_mode(0)\n"
                "h.connect_uri(sys.argv[1]); cookies = []; keep = []\n"
                "for r in range(ROUNDS):\n"
                "    for k in range(BLOCKS):\n"
                "        if k < BLOCKS // 2:\n"
                "            buf, off = bytes([c * 16 + r + 1]) * 3000, k * 16384 + c * 4096 + 500\n"
                "        else:\n"
                "            buf, off = bytes([c * 16 + r + 1]) * 4096, k * 16384 + c * 4096\n"
                "        while h.aio_in_flight() >= 16:\n"
                "            h.poll(-1)\n"
                "        b = nbd.Buffer.from_bytearray(bytearray(buf))\n"
                "        keep.append(b)  # alive until the command is retired\n"
                "        cookies.append(h.aio_pwrite(b, off))\n"
                "    while h.aio_in_flight() > 0:  # a round's writes land before the next's:\n"
                "        h.poll(-1)                 # two to one offset never race\n"
                "for ck in cookies:\n"
                "    h.aio_command_completed(ck)  # raises if the server failed it\n"
                "h.flush(); h.shutdown()\n").replace("ROUNDS", str(ROUNDS)).replace("BLOCKS", str(BLOCKS))
        procs = [subprocess.Popen([sys.executable, "-c", code, s.uris["v"], str(c)])
                 for c in range(4)]
        for p in procs:
            self.assertEqual(p.wait(timeout=300), 0)
        h = nbd.NBD()
        h.connect_uri(s.uris["v"])
        for k in range(BLOCKS):
            blk = h.pread(16384, k * 16384)
            for c in range(4):
                v = c * 16 + ROUNDS
                if k < BLOCKS // 2:
                    got, want = blk[c * 4096 + 500:c * 4096 + 3500], bytes([v]) * 3000
                else:
                    got, want = blk[c * 4096:(c + 1) * 4096], bytes([v]) * 4096
                self.assertTrue(got == want, f"block {k} client {c}: a write was lost "
                                f"(found bytes {sorted(set(got))[:8]}, wanted {want[0]})")
        h.shutdown()
        self.stop(s)

    def test_fork_pidfile_tcp_and_key_on_stdin(self):
        self.volume("v", size="32M", encrypted=True)
        pidfile = self.path("serve.pid")
        port = 20000 + os.getpid() % 20000
        with open(self.key, "rb") as f:
            r = subprocess.run([STACK, "serve", "-p", self.pool, "v", "-k", "-", "--fork",
                                "--pidfile", pidfile, "--tcp", f"127.0.0.1:{port}"],
                               stdin=f, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"nbd://127.0.0.1:{port}/v", r.stdout)
        with open(pidfile) as f:
            pid = int(f.read())
        try:
            self.qemu_io(f"nbd://127.0.0.1:{port}/v", "write -P 0x66 0 64k", "flush",
                         "read -P 0x66 0 64k")
        finally:
            os.kill(pid, signal.SIGTERM)
            for _ in range(600):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.assertPoolClean()
        s = self.serve("v", key=self.key)
        self.qemu_io(s.uris["v"], "read -P 0x66 0 64k", read_only=True)
        self.stop(s)

    def test_forked_servers_parent_leaves_the_pool_alone(self):
        """nbdkit's parent exits right after forking the server into the
        background. The plugin's teardown must not run there: it once unlinked
        the pool's holder note while the server served (and glibc aborted
        freeing the cipher's secure memory). strace -f is the oracle: the
        process that runs nbdkit and forks the server removes and renames
        nothing, and exits 0 rather than by a signal."""
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed (scripts/setup.sh installs it)")
        probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True,
                               text=True)
        if probe.returncode != 0:  # e.g. a container that forbids ptrace
            self.skipTest(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
        self.volume("v", size="32M", encrypted=True)
        pidfile, log, sock = self.path("serve.pid"), self.path("strace.log"), self.path("f.sock")
        with open(self.key, "rb") as f:
            tracer = subprocess.Popen(
                ["strace", "-f", "-q", "-o", log, "-e",
                 "trace=execve,clone,clone3,fork,vfork,unlink,unlinkat,rename,renameat,"
                 "renameat2,exit_group",
                 STACK, "serve", "-p", self.pool, "v", "-k", "-", "--fork", "--pidfile", pidfile,
                 "--socket", sock],
                stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pid = 0
            for _ in range(600):  # the daemon writes its pid once it serves
                if os.path.exists(pidfile) and open(pidfile).read().strip():
                    pid = int(open(pidfile).read())
                    break
                self.assertIsNone(tracer.poll(), "strace ended before the server started")
                time.sleep(0.1)
            self.assertNotEqual(pid, 0, "the forked server wrote no pidfile")
            self.qemu_io(f"nbd+unix:///v?socket={sock}", "write -P 0x5a 0 64k", "flush")
            # The note naming who holds the pool is still there while it serves.
            self.assertTrue(os.path.exists(self.pool + ".holder"), "the holder note is gone")
        finally:
            if pid:
                os.kill(pid, signal.SIGTERM)
            tracer.wait(timeout=120)
        events = {}
        for line in open(log, errors="replace"):
            m = re.match(r"(\d+)\s+(.*)", line)
            if m:
                events.setdefault(int(m.group(1)), []).append(m.group(2))
        parents = [p for p, ev in events.items()
                   if any(e.startswith("execve(") and "nbdkit" in e.split(",")[0] and
                          e.rstrip().endswith("= 0") for e in ev)]
        self.assertEqual(len(parents), 1, f"one process runs nbdkit: {sorted(events)}")
        parent = parents[0]
        self.assertNotEqual(parent, pid, "nbdkit did not fork into the background")
        # What the parent does after forking the server (before it, opening
        # the pool clears a stale holder note: that is the parent's to do).
        ev = events[parent]
        forks = [i for i, e in enumerate(ev)
                 if re.match(r"(clone3?|v?fork)\(", e) and e.rstrip().endswith(f"= {pid}")]
        self.assertEqual(len(forks), 1, f"nbdkit's parent forked the server once: {ev}")
        ev = ev[forks[0] + 1:]
        touched = [e for e in ev if re.match(r"(unlink|unlinkat|rename|renameat2?)\(", e)]
        self.assertEqual(touched, [],
                         f"nbdkit's parent (pid {parent}) changed files after the fork: {touched}")
        self.assertIn("+++ exited with 0 +++", ev[-1], f"nbdkit's parent ended: {ev[-3:]}")
        self.assertPoolClean()
        s = self.serve("v", key=self.key)
        self.qemu_io(s.uris["v"], "read -P 0x5a 0 64k", read_only=True)
        self.stop(s)

    def test_tls_psk_required_when_asked(self):
        self.volume("v", size="16M")
        psk = self.path("psk")
        with open(psk, "w") as f:
            f.write("alice:" + os.urandom(32).hex() + "\n")
        os.chmod(psk, 0o600)
        s = self.serve("v", extra=("--tls-psk", psk))
        uri = s.uris["v"]
        self.assertTrue(uri.startswith("nbds+unix:///v?socket="), uri)
        plain = uri.replace("nbds+unix://", "nbd+unix://")
        self.assertNotEqual(run("nbdinfo", "--size", plain, check=False).returncode, 0)
        tls = uri.replace("nbds+unix:///", "nbds+unix://alice@/") + "&tls-psk-file=" + psk
        self.assertEqual(int(run("nbdinfo", "--size", tls).stdout), 16 * MiB)
        self.stop(s)


if __name__ == "__main__":
    main()

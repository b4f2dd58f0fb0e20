"""send and receive (issue 15): snapshots shipped between pools as raw
streams (spec/send-stream.md). Oracles: the sender's own exports (byte
identity), cryptsetup (the received LUKS2 container opens), e2fsck -fn (the
received file system is clean), `stack pool check` (nothing half-made left).
Damage is made by hand: each record kind altered by one byte, truncation at
many offsets, a newer version, a wrong base, a stream fed twice."""
import json
import os
import random
import struct
import subprocess

from images import FAST_KDF, e2fsck_clean, export, make_tree, sha256, write_pass
from stacktest import EXIT, StackTestCase, main, stack

HEADER_LEN_AT = 12
REC = 32
WRITE, HOLE, END = 1, 2, 3


def read(path):
    with open(path, "rb") as f:
        return f.read()


def records(data):
    """(type, stream offset, record bytes incl. payload) of every record, then
    ("digest", offset, 32): a parser of the layout only (no checks)."""
    pos = struct.unpack_from("<I", data, HEADER_LEN_AT)[0]
    out = [("header", 0, pos)]
    while pos < len(data) - 32:
        typ, _, off, length = struct.unpack_from("<IIQQ", data, pos)
        size = REC + (length if typ == WRITE else 0)
        out.append((typ, pos, size))
        pos += size
    out.append(("digest", pos, 32))
    return out


def renamed_stream(data, volume=None, snapshot=None):
    """A version-2 full stream (no note, tags or resume block) with its names
    replaced and a fresh snapshot uuid (not a duplicate), every checksum and
    the digest recomputed as spec/send-stream.md says: what a hostile sender
    can make."""
    import ctypes
    import hashlib
    xxh = ctypes.CDLL("libxxhash.so.0")
    xxh.XXH3_64bits_withSeed.restype = ctypes.c_uint64
    xxh.XXH3_64bits_withSeed.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    hl = struct.unpack_from("<I", data, HEADER_LEN_AT)[0]
    nv, ns, nn, nt = struct.unpack_from("<HHHH", data, 88)
    assert struct.unpack_from("<I", data, 8)[0] == 2 and nn == 0 and nt == 0
    assert not struct.unpack_from("<I", data, 16)[0] & 2
    vol = volume.encode() if volume is not None else data[96:96 + nv]
    snap = snapshot.encode() if snapshot is not None else data[96 + nv:96 + nv + ns]
    h = bytearray(data[:96])
    h[32:48] = os.urandom(16)
    struct.pack_into("<HH", h, 88, len(vol), len(snap))
    h += vol + snap
    n = (len(h) + 7) // 8 * 8 + 8
    h += bytes(n - len(h))
    struct.pack_into("<I", h, HEADER_LEN_AT, n)
    struct.pack_into("<Q", h, n - 8, xxh.XXH3_64bits_withSeed(bytes(h[:n - 8]), n - 8,
                                                              0x53454e44))
    body = data[hl:-32]
    digest = hashlib.sha256(h)
    pos = 0
    while True:
        typ, _, _, length = struct.unpack_from("<IIQQ", body, pos)
        digest.update(body[pos:pos + REC])
        pos += REC + (length if typ == WRITE else 0)
        if typ == END:
            break
    return bytes(h) + body + digest.digest()


def wait_reading_stdin(proc, limit=60.0):
    """True once `proc` sits in read(2) on fd 0 (per /proc/PID/syscall: number
    0, first argument 0x0); False if it exited. `limit` only bounds a hang."""
    import time
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with open(f"/proc/{proc.pid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            fields = []
        if len(fields) > 1 and fields[0] == "0" and fields[1] == "0x0":
            return True
        time.sleep(0.01)
    return False


class Send(StackTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.path("a.stk")
        self.b = self.path("b.stk")
        self.key = write_pass(self.path("pass.txt"))
        self.tree = make_tree(self.path("tree"))
        stack("pool", "create", self.b, "--size", "64M", "--max-size", "4G", check=0)

    # -- helpers ---------------------------------------------------------------
    def build(self, vol="golden", snap="v1"):
        stack("build", "-p", self.a, vol, "--from", self.tree, "--size", "64M", "--snapshot",
              snap, "-k", self.key, *FAST_KDF, check=0)

    def raw_volume(self):
        """Volume `raw` (plain, 1 MiB of random data) with raw@a, and raw@b
        whose second half was cut away (a HOLE in the a->b stream)."""
        img = self.path("raw.img")
        with open(img, "wb") as f:
            f.write(os.urandom(1 << 20))
        stack("pool", "create", self.a, "--size", "64M", "--max-size", "4G", check=0)
        stack("import", "-p", self.a, img, "raw", check=0)
        stack("snapshot", "create", "-p", self.a, "raw@a", check=0)
        stack("volume", "resize", "-p", self.a, "raw", "--size", "512K", "--force", check=0)
        stack("volume", "resize", "-p", self.a, "raw", "--size", "1M", check=0)
        stack("snapshot", "create", "-p", self.a, "raw@b", check=0)

    def send(self, pool, snap, frm=None, name=None, version=None):
        out = self.path(name or f"s-{snap.replace('@', '_')}-{frm or 'full'}-{version}"
                        .replace("@", "_"))
        if os.path.exists(out):
            os.unlink(out)
        args = ["--json", "send", "-p", pool, snap, "-o", out]
        if frm:
            args += ["--from", frm]
        if version:
            args += ["--stream-version", str(version)]
        rep = stack(*args, check=0).json()
        self.assertEqual(rep["stream_bytes"], os.path.getsize(out))
        return out

    def receive(self, path, *extra, env=None):
        # No passphrase anywhere: no key file, and the environment scrubbed.
        e = {k: "" for k in os.environ if k.startswith("STACK_") and "PASS" in k}
        e.update(env or {})
        return stack("--json", "receive", "-p", self.b, "-i", path, *extra, env=e)

    def entries(self, pool):
        return sorted((e["name"], e["uuid"]) for e in
                      stack("--json", "volume", "list", "-p", pool, "--all", check=0).json())

    def assertClean(self, pool):
        r = stack("pool", "check", "-p", pool)
        self.assertEqual(r.rc, 0, r.out + r.err)

    def assertRefused(self, path, code, before, *extra):
        r = self.receive(path, *extra)
        self.assertEqual(r.rc, EXIT[code], f"{path}: {r.out}{r.err}")
        self.assertEqual(self.entries(self.b), before, "a refused receive left something visible")
        # Not even a hidden entry is left behind.
        info = stack("--json", "pool", "info", "-p", self.b, check=0).json()
        self.assertEqual(info["entries"], len(before))
        self.assertClean(self.b)
        return r

    def stored_sha(self, pool, entry):
        out = self.path(f"st-{os.path.basename(pool)}-{entry.replace('@', '_')}.img")
        export(pool, entry, out, "stored")
        h = sha256(out)
        os.unlink(out)
        return h

    # -- round trips -----------------------------------------------------------
    def test_full_round_trip_encrypted_without_key(self):
        self.build()
        s = self.send(self.a, "golden@v1")
        rep = self.receive(s)
        self.assertEqual(rep.rc, 0, rep.err)
        rep = rep.json()
        self.assertEqual(rep["snapshot"], "golden@v1")
        self.assertEqual(rep["stream_bytes"], os.path.getsize(s))
        a = {e["name"]: e for e in stack("--json", "volume", "list", "-p", self.a, "--all",
                                         check=0).json()}
        b = {e["name"]: e for e in stack("--json", "volume", "list", "-p", self.b, "--all",
                                         check=0).json()}
        for k in ("uuid", "parent_uuid", "created_unix_ns", "size_bytes", "note", "tags"):
            self.assertEqual(a["golden@v1"][k], b["golden@v1"][k], k)
        self.assertEqual(b["golden"]["uuid"], a["golden@v1"]["parent_uuid"])
        # Byte identity of what is stored (ciphertext), and of the plaintext.
        self.assertEqual(self.stored_sha(self.a, "golden@v1"), self.stored_sha(self.b, "golden@v1"))
        stored = self.path("recv-stored.img")
        export(self.b, "golden@v1", stored, "stored")
        r = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", self.key,
                            stored], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        pa, pb = self.path("pa.img"), self.path("pb.img")
        export(self.a, "golden@v1", pa, "plain", self.key)
        export(self.b, "golden@v1", pb, "plain", self.key)
        self.assertEqual(sha256(pa), sha256(pb))
        rc, log = e2fsck_clean(pb)
        self.assertEqual(rc, 0, log)
        self.assertClean(self.b)

    def test_full_then_three_incrementals_in_order_and_out_of_order_refused(self):
        self.build()
        for i in (2, 3, 4):
            f = self.path(f"f{i}.txt")
            with open(f, "w") as fh:
                fh.write(f"change {i}\n" * (1000 * i))
            stack("fs", "put", "-p", self.a, "golden", f, f"/etc/f{i}.txt", "-k", self.key,
                  check=0)
            stack("snapshot", "create", "-p", self.a, f"golden@v{i}", check=0)
        full = self.send(self.a, "golden@v1")
        inc = {i: self.send(self.a, f"golden@v{i}", f"golden@v{i - 1}") for i in (2, 3, 4)}
        for i in (2, 3, 4):  # an incremental carries only the change
            self.assertLess(os.path.getsize(inc[i]), os.path.getsize(full) // 2)
        self.assertEqual(self.receive(full).rc, 0)
        before = self.entries(self.b)
        r = self.assertRefused(inc[3], "notfound", before)  # v3's base v2 is not there yet
        uuids = {n: u for n, u in self.entries(self.a)}
        self.assertIn(uuids["golden@v2"], r.err)
        self.assertIn(uuids["golden@v1"], r.err)  # the receiver's newest snapshot
        for i in (2, 3, 4):
            r = self.receive(inc[i])
            self.assertEqual(r.rc, 0, r.err)
            self.assertTrue(r.json()["incremental"])
        before = self.entries(self.b)
        self.assertRefused(inc[2], "exists", before)  # already applied
        for i in (1, 2, 3, 4):
            self.assertEqual(self.stored_sha(self.a, f"golden@v{i}"),
                             self.stored_sha(self.b, f"golden@v{i}"), f"v{i}")
        pb = self.path("pb4.img")
        export(self.b, "golden@v4", pb, "plain", self.key)
        rc, log = e2fsck_clean(pb)
        self.assertEqual(rc, 0, log)
        self.assertClean(self.b)

    def test_version_1_streams_still_received_and_digests_as_specified(self):
        # An older stack's streams (version 1, `--stream-version 1`): full and
        # incremental, received like version 2 ones. The final digest per
        # spec/send-stream.md: v1 over every byte, v2 over the header and the
        # 32 bytes of each record (a WRITE payload enters through its XXH3-64).
        import hashlib
        self.raw_volume()
        for v in (1, 2):
            full = read(self.send(self.a, "raw@a", version=v))
            inc = read(self.send(self.a, "raw@b", "raw@a", version=v))
            for data in (full, inc):
                self.assertEqual(struct.unpack_from("<I", data, 8)[0], v)
                h = hashlib.sha256()
                for kind, at, size in records(data):
                    if kind == "digest":
                        self.assertEqual(h.digest(), data[at:at + 32], f"v{v}")
                    else:
                        h.update(data[at:at + (size if v == 1 or kind == "header" else REC)])
        s1 = self.send(self.a, "raw@a", version=1)
        i1 = self.send(self.a, "raw@b", "raw@a", version=1)
        for p in (s1, i1):
            r = self.receive(p)
            self.assertEqual(r.rc, 0, r.err)
        for e in ("raw@a", "raw@b", "raw"):
            self.assertEqual(self.stored_sha(self.a, e), self.stored_sha(self.b, e), e)
        self.assertClean(self.b)
        r = stack("send", "-p", self.a, "raw@a", "-o", self.path("x.stream"),
                  "--stream-version", "3")
        self.assertEqual(r.rc, EXIT["usage"], r.err)

    def test_committed_streams_of_each_version_are_received(self):
        # Bytes written by the tool when each version was current (the fuzz
        # seeds, fuzz/stack/make_seeds.sh): a later stack must still take them.
        seeds = os.path.join(os.environ.get("STACK_SOURCE_DIR") or
                             os.path.join(os.path.dirname(__file__), "..", ".."),
                             "fuzz", "stack", "seeds", "send_stream_fuzzer")
        # Both versions of a stream are of the same snapshots (same uuids):
        # one pool each.
        pools = {1: self.b, 2: self.path("c.stk")}
        stack("pool", "create", pools[2], "--size", "64M", check=0)
        for v, suffix in ((1, "-v1"), (2, "")):
            full = os.path.join(seeds, f"full{suffix}.stream")
            inc = os.path.join(seeds, f"incremental{suffix}.stream")
            self.assertEqual(struct.unpack_from("<I", read(full), 8)[0], v)
            for p, snap in ((full, "vm@a"), (inc, "vm@b")):
                r = stack("--json", "receive", "-p", pools[v], "-i", p)
                self.assertEqual(r.rc, 0, f"{p}: {r.err}")
                self.assertEqual(r.json()["snapshot"], snap)
            self.assertClean(pools[v])
        # Both carried the same content.
        for e in ("vm@a", "vm@b"):
            self.assertEqual(self.stored_sha(pools[1], e), self.stored_sha(pools[2], e), e)

    def test_diverged_target_refused_unless_force(self):
        self.raw_volume()
        self.assertEqual(self.receive(self.send(self.a, "raw@a")).rc, 0)
        inc = self.send(self.a, "raw@b", "raw@a")
        # The receiver's volume changes after its base: refused, then --force.
        stack("volume", "resize", "-p", self.b, "raw", "--size", "2M", check=0)
        before = self.entries(self.b)
        r = self.assertRefused(inc, "exists", before)
        self.assertIn("raw@a", r.err)
        r = self.receive(inc, "--force")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(r.json()["hole_bytes"], 512 << 10)
        self.assertEqual(self.stored_sha(self.a, "raw@b"), self.stored_sha(self.b, "raw@b"))
        self.assertEqual(self.stored_sha(self.a, "raw"), self.stored_sha(self.b, "raw"))
        self.assertClean(self.b)

    # -- bad input -------------------------------------------------------------
    def test_every_record_kind_altered_by_one_byte(self):
        self.raw_volume()
        full = read(self.send(self.a, "raw@a"))
        inc = read(self.send(self.a, "raw@b", "raw@a"))
        kinds_seen = set()

        def alter_each(data):
            before = self.entries(self.b)
            for kind, at, size in records(data):
                kinds_seen.add(kind)
                # First byte, a middle byte (the payload of a WRITE), last byte.
                for pos in sorted({at, at + size // 2, at + size - 1}):
                    bad = bytearray(data)
                    bad[pos] ^= 0x01
                    p = self.path("bad.stream")
                    with open(p, "wb") as f:
                        f.write(bad)
                    r = self.assertRefused(p, "corruption", before)
                    self.assertOneLineError(r, "Corruption")

        alter_each(full)  # into an empty pool
        p = self.path("good.stream")
        with open(p, "wb") as f:
            f.write(full)
        self.assertEqual(self.receive(p).rc, 0)
        alter_each(inc)  # onto its base
        self.assertEqual(kinds_seen, {"header", WRITE, HOLE, END, "digest"})

    def test_truncation_at_many_offsets(self):
        self.raw_volume()
        data = read(self.send(self.a, "raw@a"))
        header_len = struct.unpack_from("<I", data, HEADER_LEN_AT)[0]
        cuts = {0, 1, 15, 16, len(data) - 1, len(data) - 32, len(data) - 33}
        for _, at, size in records(data):
            cuts.update({at, at + 1, at + REC - 1, at + size - 1})
        rng = random.Random(15)
        cuts.update(rng.randrange(len(data)) for _ in range(20))
        before = self.entries(self.b)
        p = self.path("cut.stream")
        for n in sorted(c for c in cuts if 0 <= c < len(data)):
            with open(p, "wb") as f:
                f.write(data[:n])
            r = self.receive(p)
            self.assertEqual(r.rc, EXIT["corruption"], r.err)
            self.assertEqual(self.entries(self.b), before, "a truncated receive showed something")
            # Cut after the header: kept as a partial receive (its token on the
            # error); cut inside it: nothing.
            parts = self.partials(self.b)
            self.assertEqual(len(parts), 1 if n >= header_len else 0, n)
            if parts:
                self.assertIn(parts[0]["resume_token"], r.err)
            self.assertClean(self.b)
        # Trailing garbage is damage, not an interruption: nothing is kept.
        with open(p, "wb") as f:
            f.write(data + b"\0")
        self.assertRefused(p, "corruption", before)
        # The stream whole still applies (nothing stale blocked it).
        with open(p, "wb") as f:
            f.write(data)
        self.assertEqual(self.receive(p).rc, 0)

    def cut_raw_stream(self, *receive_args):
        """raw@a's stream cut in half, received into B: a partial receive is
        kept (Corruption). Returns the cut stream's path and the token listed."""
        self.raw_volume()
        data = read(self.send(self.a, "raw@a"))
        cut = self.path("cut.stream")
        with open(cut, "wb") as f:
            f.write(data[:len(data) // 2])
        self.assertEqual(self.receive(cut, *receive_args).rc, EXIT["corruption"])
        return cut, self.partials(self.b)[0]["resume_token"]

    def partials(self, pool):
        return stack("--json", "pool", "info", "-p", pool, check=0).json()["partial_receives"]

    def feed_and_kill(self, data, cut):
        """Feeds data[:cut] to a receiver through a pipe and SIGKILLs it once it
        waits in read(2) for more: what it applied must survive as a partial."""
        stack_bin = os.environ.get("STACK_BIN", "stack")
        p = subprocess.Popen([stack_bin, "receive", "-p", self.b], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.stdin.write(data[:cut])
        p.stdin.flush()
        self.assertTrue(wait_reading_stdin(p), "receiver never waited for more input")
        p.kill()
        p.wait()
        p.stdin.close()

    def resume_stream(self, token, name="rest.stream"):
        out = self.path(name)
        if os.path.exists(out):
            os.unlink(out)
        rep = stack("--json", "send", "-p", self.a, "--resume", token, "-o", out, check=0).json()
        self.assertTrue(rep["resumed"])
        return out

    def striped_volume(self):
        """Volume `st` with st@a: many records (64 KiB of data every 128 KiB
        over 8 MiB). Returns the image file it was imported from."""
        img = self.path("striped.img")
        with open(img, "wb") as f:
            for _ in range(64):
                f.write(os.urandom(64 << 10))
                f.write(bytes(64 << 10))
        stack("pool", "create", self.a, "--size", "64M", "--max-size", "4G", check=0)
        stack("import", "-p", self.a, img, "st", check=0)
        stack("snapshot", "create", "-p", self.a, "st@a", check=0)
        return img

    def test_resume_after_kills_at_several_points(self):
        img = self.striped_volume()
        with open(img, "r+b") as f:  # and an incremental with WRITEs and a HOLE
            for at in range(1 << 20, 3 << 20, 128 << 10):
                f.seek(at)
                f.write(os.urandom(64 << 10))
        stack("import", "-p", self.a, img, "--into", "st", check=0)
        stack("volume", "resize", "-p", self.a, "st", "--size", "7M", "--force", check=0)
        stack("volume", "resize", "-p", self.a, "st", "--size", "8M", check=0)
        stack("snapshot", "create", "-p", self.a, "st@b", check=0)
        for snap, frm in (("st@a", None), ("st@b", "st@a")):
            data = read(self.send(self.a, snap, frm))
            rng = random.Random(snap)
            got = 0  # the partial must only ever move forward
            stream = data
            for _ in range(3):
                cut = rng.randrange(len(stream) // 4, len(stream) * 3 // 4)
                self.feed_and_kill(stream, cut)
                self.assertNotIn(snap, dict(self.entries(self.b)))
                parts = self.partials(self.b)
                self.assertEqual(len(parts), 1)
                self.assertGreaterEqual(parts[0]["received_to"], got)
                got = parts[0]["received_to"]
                self.assertClean(self.b)
                stream = read(self.resume_stream(parts[0]["resume_token"]))
                self.assertLess(len(stream), len(data))
            p = self.path("last.stream")
            with open(p, "wb") as f:
                f.write(stream)
            r = self.receive(p)
            self.assertEqual(r.rc, 0, r.err)
            self.assertTrue(r.json()["resumed"])
            self.assertEqual(self.partials(self.b), [])
            self.assertEqual(self.stored_sha(self.a, snap), self.stored_sha(self.b, snap), snap)
            self.assertClean(self.b)
        self.assertEqual(self.stored_sha(self.a, "st"), self.stored_sha(self.b, "st"))
        # The published entries carry the sender's identity, and no token as a note.
        a = {e["name"]: e for e in stack("--json", "volume", "list", "-p", self.a, "--all",
                                         check=0).json()}
        b = {e["name"]: e for e in stack("--json", "volume", "list", "-p", self.b, "--all",
                                         check=0).json()}
        self.assertEqual(b["st"]["note"], "")
        self.assertEqual(b["st"]["uuid"], a["st@a"]["parent_uuid"])
        for snap in ("st@a", "st@b"):
            self.assertEqual(b[snap]["uuid"], a[snap]["uuid"])

    def test_wrong_resume_stream_or_token_refused(self):
        self.striped_volume()
        data = read(self.send(self.a, "st@a"))
        p = self.path("cut.stream")
        with open(p, "wb") as f:
            f.write(data[:len(data) // 3])
        self.assertEqual(self.receive(p).rc, EXIT["corruption"])
        first = self.partials(self.b)[0]["resume_token"]
        old = self.resume_stream(first, "old-rest.stream")
        # The partial moves on: the first token's stream no longer fits.
        self.feed_and_kill(read(old), len(read(old)) // 2)
        second = self.partials(self.b)[0]["resume_token"]
        self.assertNotEqual(first, second)
        before = self.entries(self.b)
        r = self.receive(old)
        self.assertEqual(r.rc, EXIT["notfound"], r.err)
        self.assertIn(second, r.err)  # names the token that fits
        self.assertEqual(self.partials(self.b)[0]["resume_token"], second)
        # A resume stream for a snapshot with no partial here.
        other = self.path("other.stk")
        stack("pool", "create", other, "--size", "64M", check=0)
        r = stack("receive", "-p", other, "-i", old)
        self.assertEqual(r.rc, EXIT["notfound"], r.err)
        # Tokens altered or cut short are refused by the sender.
        bad = second[:-1] + ("0" if second[-1] != "0" else "1")
        for tok in (bad, second[:40], "x"):
            r = stack("send", "-p", self.a, "--resume", tok, "-o", self.path("never.stream"))
            self.assertEqual(r.rc, EXIT["usage"], r.err)
        # A token of another pool's snapshot: not there.
        r = stack("send", "-p", other, "--resume", second, "-o", self.path("never.stream"))
        self.assertEqual(r.rc, EXIT["notfound"], r.err)
        # A named snapshot must be the token's.
        stack("snapshot", "create", "-p", self.a, "st@z", check=0)
        r = stack("send", "-p", self.a, "st@z", "--resume", second, "-o", self.path("n.stream"))
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertEqual(self.entries(self.b), before)
        # --abort drops it; then nothing is left.
        r = stack("receive", "-p", self.b, "--abort", "st")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(self.partials(self.b), [])
        self.assertEqual(stack("--json", "pool", "info", "-p", self.b, check=0).json()["entries"], 0)
        r = stack("receive", "-p", self.b, "--abort", "st")
        self.assertEqual(r.rc, EXIT["notfound"], r.err)
        self.assertClean(self.b)

    def test_fed_twice_newer_version_wrong_base(self):
        self.raw_volume()
        s = self.send(self.a, "raw@a")
        inc = self.send(self.a, "raw@b", "raw@a")
        # A base the receiver never had: another lineage's snapshot.
        img = self.path("other.img")
        with open(img, "wb") as f:
            f.write(os.urandom(1 << 20))
        other = self.path("other.stk")
        stack("pool", "create", other, "--size", "64M", check=0)
        stack("import", "-p", other, img, "raw", check=0)
        stack("snapshot", "create", "-p", other, "raw@a", check=0)
        self.assertEqual(self.receive(self.send(other, "raw@a", name="other.stream")).rc, 0)
        before = self.entries(self.b)
        r = self.assertRefused(inc, "notfound", before)
        theirs = dict(self.entries(self.a))["raw@a"]
        ours = dict(self.entries(self.b))["raw@a"]
        self.assertIn(theirs, r.err)
        self.assertIn(ours, r.err)
        # Fed twice: the same name, then another name.
        os.unlink(self.b)
        stack("pool", "create", self.b, "--size", "64M", "--max-size", "4G", check=0)
        self.assertEqual(self.receive(s).rc, 0)
        before = self.entries(self.b)
        self.assertRefused(s, "exists", before)
        self.assertRefused(s, "exists", before, "copy")
        # A newer format version is refused naming it and the versions read.
        data = bytearray(read(s))
        struct.pack_into("<I", data, 8, 3)
        p = self.path("v3.stream")
        with open(p, "wb") as f:
            f.write(data)
        r = self.assertRefused(p, "unsupported", before)
        self.assertIn("version 3", r.err)
        self.assertIn("versions 1 to 2", r.err)

    def test_killed_receiver_leaves_nothing_and_pool_full_is_nospace(self):
        self.raw_volume()
        data = read(self.send(self.a, "raw@a"))
        rng = random.Random(151)
        left_hidden = 0
        for _ in range(6):
            # Fed part of the stream through a pipe; once it waits in read(2)
            # on stdin for the rest (it has applied what it got), SIGKILL.
            self.feed_and_kill(data, rng.randrange(200, len(data)))
            self.assertEqual(self.entries(self.b), [])
            # The kill left a partial receive, with its resume token.
            info = stack("--json", "pool", "info", "-p", self.b, check=0).json()
            left_hidden += info["entries"] > 0
            self.assertEqual(len(info["partial_receives"]), 1)
            self.assertTrue(info["partial_receives"][0]["resume_token"])
            self.assertClean(self.b)
        self.assertGreater(left_hidden, 0)
        # A whole stream of the same snapshot starts it again and succeeds.
        p = self.path("whole.stream")
        with open(p, "wb") as f:
            f.write(data)
        self.assertEqual(self.receive(p).rc, 0)
        info = stack("--json", "pool", "info", "-p", self.b, check=0).json()
        self.assertEqual(info["entries"], 2)
        # A pool too small for the stream: NoSpace, nothing visible.
        big = self.path("big.img")
        with open(big, "wb") as f:
            f.write(os.urandom(24 << 20))
        stack("import", "-p", self.a, big, "big", check=0)
        stack("snapshot", "create", "-p", self.a, "big@s", check=0)
        small = self.path("small.stk")
        stack("pool", "create", small, "--size", "16M", "--max-size", "16M", check=0)
        s = self.send(self.a, "big@s")
        r = stack("receive", "-p", small, "-i", s)
        self.assertEqual(r.rc, EXIT["nospace"], r.err)
        self.assertOneLineError(r, "NoSpace")
        self.assertEqual(self.entries(small), [])
        self.assertEqual(stack("--json", "pool", "info", "-p", small, check=0).json()["entries"], 0)
        self.assertClean(small)

    def test_progress_on_a_terminal(self):
        """send, receive and import --into draw rate and ETA on a TTY stderr
        (a pty here), and nothing when stderr is not a terminal."""
        import pty
        img = self.striped_volume()
        stack_bin = os.environ.get("STACK_BIN", "stack")

        def on_tty(*args):
            master, slave = pty.openpty()
            p = subprocess.Popen([stack_bin, *args], stdout=subprocess.DEVNULL, stderr=slave)
            os.close(slave)
            out = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            os.close(master)
            self.assertEqual(p.wait(), 0, out)
            return out.decode(errors="replace")

        s = self.path("p.stream")
        out = on_tty("send", "-p", self.a, "st@a", "-o", s)
        self.assertRegex(out, r"send: +100\.0% .*/s ETA \d\d:\d\d")
        out = on_tty("receive", "-p", self.b, "-i", s)
        self.assertRegex(out, r"receive: +\d+\.\d% .*/s ETA")
        with open(img, "r+b") as f:
            f.write(os.urandom(4096))
        out = on_tty("import", "-p", self.a, img, "--into", "st")
        self.assertRegex(out, r"import: +\d+\.\d% .*/s ETA")
        r = stack("send", "-p", self.a, "st@a", "-o", self.path("q.stream"))
        self.assertNotIn("ETA", r.err)

    def test_stdout_and_stdin(self):
        self.raw_volume()
        send = subprocess.run([os.environ.get("STACK_BIN", "stack"), "send", "-p", self.a,
                               "raw@a"], capture_output=True)
        self.assertEqual(send.returncode, 0, send.stderr)
        self.assertIn(b"sent raw@a", send.stderr)  # the report is not in the stream
        # Only snapshots are sent (a volume changes under the reader).
        r = stack("send", "-p", self.a, "raw", "-o", self.path("vol.stream"))
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertFalse(os.path.exists(self.path("vol.stream")))
        r = stack("send", "-p", self.a, "raw@nope", "-o", self.path("vol.stream"))
        self.assertEqual(r.rc, EXIT["notfound"], r.err)
        self.assertEqual([f for f in os.listdir(self.tmp) if "stack-tmp" in f], [])
        # A hidden or invalid target name is refused: receive never makes what
        # listings hide.
        for bad in (".build-x", "-x", "a@b"):
            r = stack("receive", "-p", self.b, bad, input=send.stdout)
            self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertEqual(self.entries(self.b), [])
        r = stack("--json", "receive", "-p", self.b, "renamed", input=send.stdout)
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(json.loads(r.out)["volume"], "renamed")
        self.assertEqual(self.stored_sha(self.a, "raw@a"), self.stored_sha(self.b, "renamed@a"))

        # An empty -o is a mistake (an unset variable), not a request for stdout.
        r = stack("send", "-p", self.a, "raw@a", "-o", "")
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertOneLineError(r, "InvalidArgument")
        self.assertEqual(r.out, "")

    def test_stream_names_follow_the_cli_rules(self):
        self.raw_volume()
        data = read(self.send(self.a, "raw@a"))
        before = self.entries(self.b)
        p = self.path("renamed.stream")
        # Snapshots the CLI could neither address nor remove afterwards, and
        # a volume name it would refuse: refused before anything changes.
        for names in ({"snapshot": "-x"}, {"snapshot": ".x"}, {"snapshot": ".."},
                      {"volume": "-v"}, {"volume": ".recv-v"}):
            with open(p, "wb") as f:
                f.write(renamed_stream(data, **names))
            r = self.assertRefused(p, "usage", before)
            self.assertOneLineError(r, "InvalidArgument")
            self.assertIn("the stream's", r.err)
        # The same rewrite with a valid name is received (the stream is sound).
        with open(p, "wb") as f:
            f.write(renamed_stream(data, snapshot="ok"))
        self.assertEqual(self.receive(p).rc, 0)
        self.assertIn("raw@ok", dict(self.entries(self.b)))

    def test_one_partial_receive_per_snapshot(self):
        cut, token = self.cut_raw_stream("x")
        # The same snapshot into another volume while x is being received.
        r = self.receive(cut, "y")
        self.assertEqual(r.rc, EXIT["exists"], r.err)
        self.assertIn("'x'", r.err)
        self.assertIn(token, r.err)
        self.assertIn("stack receive --abort x", r.err)
        self.assertEqual([q["volume"] for q in self.partials(self.b)], ["x"])
        # The token listed for x resumes it.
        rest = self.path("rest.stream")
        r = stack("send", "-p", self.a, "--resume", token, "-o", rest)
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(self.receive(rest).rc, 0)
        self.assertEqual(self.stored_sha(self.a, "raw@a"), self.stored_sha(self.b, "x@a"))
        self.assertEqual(self.partials(self.b), [])
        self.assertClean(self.b)

    def test_volume_commands_refuse_hidden_entries(self):
        _, token = self.cut_raw_stream()
        # Renaming would publish an unverified volume; a note would replace the
        # resume token; the others would change or drop it behind receive.
        for args in (("rename", ".recv-raw", "zz"), ("set", ".recv-raw", "--note", "hi"),
                     ("rm", ".recv-raw"), ("resize", ".recv-raw", "--size", "2M"),
                     ("flatten", ".recv-raw"), ("rm", ".recv-raw@a")):
            r = stack("volume", args[0], "-p", self.b, *args[1:])
            self.assertEqual(r.rc, EXIT["usage"], f"{args}: {r.err}")
            self.assertOneLineError(r, "InvalidArgument")
            self.assertIn("partial receive into 'raw'", r.err)
            self.assertIn("stack receive --abort raw", r.err)
        r = stack("volume", "rm", "-p", self.b, ".build-x")
        self.assertEqual(r.rc, EXIT["usage"], r.err)
        self.assertIn("unfinished build", r.err)
        # Untouched: still resumable with its token.
        self.assertEqual(self.partials(self.b)[0]["resume_token"], token)
        self.assertEqual(self.entries(self.b), [])
        r = stack("receive", "-p", self.b, "--abort", "raw")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(self.partials(self.b), [])
        self.assertClean(self.b)


if __name__ == "__main__":
    main()

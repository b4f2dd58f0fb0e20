"""Build from OCI images (issue 18): `stack build --from oci:DIR:TAG`,
`oci-archive:FILE:TAG`, `docker-archive:FILE:REPO:TAG` (spec/oci.md).

Images are made with Debian's umoci (init/new/unpack/repack, plus one layer
added verbatim with `umoci raw add-layer` for what repack never writes:
an opaque directory, a hard link, a `../` member, an xattr, a device node,
a non-root owner, a whiteout of a missing path) and converted with skopeo.
The oracle is `umoci unpack --rootless` of the same image, compared with
`stack fs extract` of ours; e2fsck -fn checks a plain export.
"""
import hashlib
import io
import json
import os
import pty
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import unittest

from images import FAST_KDF
from stacktest import EXIT, STACK, StackTestCase, main, stack

HAVE = {t: shutil.which(t) for t in ("umoci", "skopeo", "e2fsck")}
TAG = "t"


def run(*cmd, cwd=None):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd)


def add_member(t, name, data=None, **kw):
    ti = tarfile.TarInfo(name)
    pax = kw.pop("pax", None)
    for k, v in kw.items():
        setattr(ti, k, v)
    if pax:
        ti.pax_headers = pax
    if data is not None:
        ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)


CAP = "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12  # cap_net_raw, permitted


def crafted_layer(path):
    """What umoci repack never writes, in one layer (pax, for the xattr)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        add_member(t, "opt/", type=tarfile.DIRTYPE, mode=0o755)
        add_member(t, "opt/.wh..wh..opq", b"")            # clears opt/keep (lower)
        add_member(t, "opt/fresh", b"fresh\n", mode=0o640, uid=1000, gid=1000)
        add_member(t, "../escape", b"esc\n", mode=0o644)  # stays inside the image
        add_member(t, "/abs", b"abs\n", mode=0o644)
        add_member(t, "etc/.wh.never-there", b"")         # whiteout of nothing: ignored
        add_member(t, "etc/hl1", b"hard\n", mode=0o600)
        add_member(t, "etc/hl2", type=tarfile.LNKTYPE, linkname="etc/hl1")
        add_member(t, "bin/", type=tarfile.DIRTYPE, mode=0o755)
        add_member(t, "bin/ping", b"ping", mode=0o755,
                   pax={"SCHILY.xattr.security.capability": CAP})
        add_member(t, "dev/", type=tarfile.DIRTYPE, mode=0o755)
        add_member(t, "dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)


def make_image(work):
    """oci layout work/img, tag t: four layers that add, replace, delete,
    make a directory opaque, and a runtime config. Returns its path."""
    img = os.path.join(work, "img")
    b = os.path.join(work, "bundle")
    run("umoci", "init", "--layout", img)
    run("umoci", "new", "--image", f"{img}:{TAG}")

    def edit(fn):
        shutil.rmtree(b, ignore_errors=True)
        run("umoci", "unpack", "--rootless", "--image", f"{img}:{TAG}", b)
        fn(os.path.join(b, "rootfs"))
        run("umoci", "repack", "--image", f"{img}:{TAG}", b)

    def layer1(r):  # adds
        os.makedirs(f"{r}/etc")
        os.makedirs(f"{r}/opt/keep")
        os.makedirs(f"{r}/gone/deeper")
        with open(f"{r}/etc/hello", "w") as f:
            f.write("hello\n")
        os.symlink("hello", f"{r}/etc/link")
        with open(f"{r}/opt/keep/a", "w") as f:
            f.write("a\n")
        with open(f"{r}/gone/deeper/f", "wb") as f:
            f.write(os.urandom(300000))  # deleted above: never written
        with open(f"{r}/typechange", "w") as f:
            f.write("a file, then a directory\n")

    def layer2(r):  # replaces and deletes
        shutil.rmtree(f"{r}/gone")
        with open(f"{r}/etc/hello", "w") as f:
            f.write("replaced\n")
        os.chmod(f"{r}/etc/hello", 0o600)
        os.remove(f"{r}/opt/keep/a")
        with open(f"{r}/opt/keep/b", "w") as f:
            f.write("b\n")
        os.remove(f"{r}/typechange")
        os.makedirs(f"{r}/typechange/sub")
        os.remove(f"{r}/etc/link")
        os.symlink("/etc/hello", f"{r}/etc/link")

    def layer3(r):  # adds over
        with open(f"{r}/three", "w") as f:
            f.write("three\n")

    edit(layer1)
    edit(layer2)
    # The first two layers under a tag of their own: the base of a second
    # image (layer snapshots).
    run("umoci", "tag", "--image", f"{img}:{TAG}", "base2")
    edit(layer3)
    crafted = os.path.join(work, "crafted.tar")
    crafted_layer(crafted)
    run("umoci", "raw", "add-layer", "--image", f"{img}:{TAG}", crafted)
    run("umoci", "config", "--image", f"{img}:{TAG}", "--config.env", "FOO=bar",
        "--config.entrypoint", "/bin/sh", "--config.cmd", "-c", "--config.workingdir", "/opt",
        "--config.user", "1000:1000", "--config.label", "org.example=yes")
    return img


def tree(root, skip=("lost+found",)):
    """path -> (type, permission bits, size, content digest or link target,
    mtime in ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel in skip:
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", 0, 0, os.readlink(p), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), 0, "", st.st_mtime_ns)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_size, h, st.st_mtime_ns)
            else:
                out[rel] = ("s", stat.S_IMODE(st.st_mode), 0, "", st.st_mtime_ns)
    return out


def index_manifest(img, tag=TAG):
    with open(os.path.join(img, "index.json")) as f:
        for m in json.load(f)["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return m["digest"]
    raise AssertionError(f"{img} has no manifest tagged {tag}")


def blob(img, digest):
    return os.path.join(img, "blobs", "sha256", digest.split(":")[1])


def write_blob(img, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob(img, d), "wb") as f:
        f.write(data)
    return d, len(data)


def set_index(img, desc):
    with open(os.path.join(img, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [desc]}, f)


def replace_layer(img, i, data, tag=TAG):
    """Layer i of img:tag becomes `data`, the manifest's digest and size for it
    updated (so the blob passes its digest check), the config untouched."""
    with open(blob(img, index_manifest(img, tag))) as f:
        m = json.load(f)
    m["layers"][i]["digest"], m["layers"][i]["size"] = write_blob(img, data)
    d, n = write_blob(img, json.dumps(m).encode())
    set_index(img, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
                    "size": n, "annotations": {"org.opencontainers.image.ref.name": tag}})


@unittest.skipUnless(HAVE["umoci"] and HAVE["skopeo"],
                     "needs umoci and skopeo (scripts/setup.sh installs them)")
class OciBuild(StackTestCase):
    @classmethod
    def setUpClass(cls):
        base = os.environ.get("STACK_TEST_TMP") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        cls.work = tempfile.mkdtemp(prefix="e2e-oci-", dir=base)
        cls.img = make_image(cls.work)
        cls.ref = os.path.join(cls.work, "oracle")
        run("umoci", "unpack", "--rootless", "--image", f"{cls.img}:{TAG}", cls.ref)
        cls.want = tree(os.path.join(cls.ref, "rootfs"))
        # Rootless umoci makes an empty file for a device node; ours is real.
        del cls.want["dev/null"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def copy_image(self, name):
        dst = self.path(name)
        shutil.copytree(self.img, dst, symlinks=True)
        return dst

    def build(self, src, pool, *extra, check=0, size="64M", env=None):
        return stack("--json", "build", "-p", pool, "v", "--from", src, "--size", size,
                     "--no-encrypt", *extra, check=check, env=env)

    def extract(self, pool, entry="v@golden", name="out"):
        out = self.path(name)
        stack("fs", "extract", "-p", pool, entry, "--to", out, check=0)
        return out

    def assertTreeIsOracle(self, out):
        got = tree(out)
        del got["dev/null"]
        self.assertEqual(got, self.want)

    def assertNothingPublished(self, pool):
        if os.path.exists(pool):
            entries = stack("--json", "volume", "list", "-p", pool, check=0).json()
            self.assertEqual([e["name"] for e in entries], [])
            stack("pool", "check", "-p", pool, check=0)

    def test_oci_dir_same_tree_as_umoci(self):
        pool = self.path("p.stk")
        key = self.path("key")
        with open(key, "w") as f:
            f.write("oci passphrase")
        r = stack("--json", "build", "-p", pool, "v", "--from", f"oci:{self.img}:{TAG}",
                  "--size", "64M", "-k", key, *FAST_KDF, check=0).json()
        self.assertEqual(r["image"]["layers"], 4)
        self.assertEqual(r["image"]["digest"], index_manifest(self.img))
        # gone/deeper/f (300000 bytes) and the replaced files were not written.
        self.assertGreaterEqual(r["image"]["skipped_bytes"], 300000)
        self.assertEqual(r["image"]["bytes_written"], r["populate"]["bytes"])
        with open(blob(self.img, index_manifest(self.img))) as f:
            self.assertEqual(r["image"]["image_id"], json.load(f)["config"]["digest"])
        self.assertEqual(r["image"]["reused_layers"], 0)
        # Every member read (whiteouts and markers included); the ones not
        # written are those deleted or replaced above, and the markers.
        self.assertGreater(r["image"]["members"], r["image"]["skipped_members"])
        self.assertGreaterEqual(r["image"]["skipped_members"], 4)  # gone/, gone/deeper, .../f, a
        out = self.path("out")
        stack("fs", "extract", "-p", pool, "v@golden", "--to", out, "-k", key, check=0)
        self.assertTreeIsOracle(out)
        # What rootless umoci cannot show: device, owner, xattr, hard link.
        st = os.lstat(f"{out}/dev/null")
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual((os.major(st.st_rdev), os.minor(st.st_rdev)), (1, 3))
        tar = stack("fs", "extract", "-p", pool, "v@golden", "--tar", self.path("o.tar"),
                    "-k", key, check=0)
        del tar
        with tarfile.open(self.path("o.tar")) as t:
            owners = {m.name.lstrip("./"): (m.uid, m.gid) for m in t.getmembers()}
            ping = t.getmember("./bin/ping")
            self.assertEqual(ping.pax_headers.get("SCHILY.xattr.security.capability"), CAP)
        self.assertEqual(owners["opt/fresh"], (1000, 1000))
        self.assertEqual(owners["etc/hello"], (0, 0))
        self.assertEqual(os.lstat(f"{out}/etc/hl1").st_ino, os.lstat(f"{out}/etc/hl2").st_ino)
        # `../escape` and `/abs` landed at the image root, nowhere else.
        self.assertTrue(os.path.isfile(f"{out}/escape") and os.path.isfile(f"{out}/abs"))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.img), "escape")))
        plain = self.path("plain.img")
        stack("export", "-p", pool, "v@golden", plain, "--format", "plain", "-k", key, check=0)
        if not HAVE["e2fsck"]:
            self.skipTest("e2fsck not installed")
        fsck = subprocess.run(["e2fsck", "-fn", plain], capture_output=True, text=True)
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)

    def one_layer_image(self, name, members):
        """An OCI layout `name`:t of one uncompressed pax layer (members as for
        add_member, plus raw pax headers), digests and diff_id right, so it
        reaches the layer checks. Returns the reference."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for m in members:
                add_member(t, *m[:2], **(m[2] if len(m) > 2 else {}))
        layer = buf.getvalue()
        img = self.path(name)
        os.makedirs(os.path.join(img, "blobs", "sha256"))
        with open(os.path.join(img, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        ld, ln = write_blob(img, layer)
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}})
        cd, cn = write_blob(img, cfg.encode())
        man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": cd, "size": cn},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": ld, "size": ln}]}
        md, mn = write_blob(img, json.dumps(man).encode())
        set_index(img, {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": md, "size": mn,
                        "annotations": {"org.opencontainers.image.ref.name": TAG}})
        return f"oci:{img}:{TAG}"

    @staticmethod
    def sparse_member(name, regions, realsize, data=None):
        """A GNU PAX 1.0 sparse member: `regions` [(offset, length)] as its map
        says, in that order; `data` the stored bytes (default: 'A', 'B', ...
        repeated over each region's length)."""
        m = f"{len(regions)}\n".encode()
        for off, n in regions:
            m += f"{off}\n{n}\n".encode()
        m += b"\0" * (-len(m) % 512)
        if data is None:
            data = b"".join(bytes([65 + i]) * n for i, (_, n) in enumerate(regions))
        return ("GNUSparseFile.0/" + name, m + data,
                {"pax": {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                         "GNU.sparse.name": name, "GNU.sparse.realsize": str(realsize)}})

    def build_measured(self, src, pool, *extra, size="64M"):
        """Builds in a child process; returns (exit status, stderr, the build's
        peak RSS in bytes)."""
        prog = ("import resource, subprocess, sys\n"
                "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
                "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
                "sys.stderr.write(r.stderr)\n"
                "sys.exit(r.returncode)\n")
        r = subprocess.run([sys.executable, "-c", prog, STACK, "build", "-p", pool, "v",
                            "--from", src, "--size", size, "--no-encrypt", *extra],
                           capture_output=True, text=True, timeout=300)
        return r.returncode, r.stderr, int(r.stdout) * 1024

    def test_huge_sparse_member_fails_fast_in_bounded_memory(self):
        """A 10 KiB layer declaring a 2^50-byte sparse file: more than an ext4
        file holds, so OutOfRange in the first pass, before any hole is
        written (it used to take the hole in memory: bad_alloc after ~16 GiB)."""
        src = self.one_layer_image("huge", [self.sparse_member("big", [((1 << 50) - 2, 2)],
                                                               1 << 50)])
        pool = self.path("p.stk")
        rc, err, rss = self.build_measured(src, pool)
        self.assertEqual(rc, EXIT["range"], err)
        self.assertIn("OutOfRange", err)
        self.assertIn("'big'", err)
        self.assertIn("layer 1/1", err)
        self.assertLess(rss, 512 << 20)
        self.assertNothingPublished(pool)

    def test_sparse_gib_member_builds_sparse_in_bounded_memory(self):
        """A 1 GiB sparse file with data at both ends: its hole is carried as a
        hole (never as bytes), the build stays small, the file reads back
        right and takes blocks only for its data."""
        gib = 1 << 30
        src = self.one_layer_image("gib", [self.sparse_member(
            "d/sparse", [(0, 5), (gib - 3, 3)], gib, b"start" + b"end")])
        pool = self.path("p.stk")
        rc, err, rss = self.build_measured(src, pool)
        self.assertEqual(rc, 0, err)
        self.assertLess(rss, 512 << 20)
        out = self.extract(pool)
        st = os.stat(f"{out}/d/sparse")
        self.assertEqual(st.st_size, gib)
        with open(f"{out}/d/sparse", "rb") as f:
            self.assertEqual(f.read(4096), b"start" + b"\0" * 4091)
            f.seek(gib // 2)
            self.assertEqual(f.read(1 << 16), b"\0" * (1 << 16))
            f.seek(gib - 4096)
            self.assertEqual(f.read(), b"\0" * 4093 + b"end")
        fst = stack("--json", "fs", "stat", "-p", pool, "v@golden", "/d/sparse", check=0).json()
        self.assertLessEqual(fst["allocated_bytes"], 64 << 10, fst)
        info = stack("--json", "volume", "list", "-p", pool, check=0).json()[0]
        self.assertLess(info["mapped_bytes"], 8 << 20)

    def test_member_types_an_image_cannot_hold_are_corruption(self):
        """A GNU 'M' (multi-volume continuation) member and a hard link with an
        empty target: Corruption naming the layer and the member, from the
        first pass (they used to reach the tar writer: Internal)."""
        cases = {
            "m": [("x", b"xx\n", {"type": b"M"})],
            "emptylink": [("h", None, {"type": tarfile.LNKTYPE, "linkname": ""})],
        }
        for name, members in cases.items():
            with self.subTest(name):
                pool = self.path(f"{name}.stk")
                r = self.build(self.one_layer_image(name, [("ok", b"ok\n")] + members), pool,
                               check=EXIT["corruption"])
                self.assertOneLineError(r, "Corruption")
                self.assertIn("layer 1/1", r.err)
                self.assertIn(f"'{members[0][0]}'", r.err)
                self.assertNothingPublished(pool)

    def test_bad_sparse_maps_are_corruption(self):
        """Sparse maps out of order, overlapping, beyond the file's size, or not
        adding up to the stored data: Corruption naming the member (data used
        to land at the wrong offset)."""
        sm = self.sparse_member
        cases = {
            "unordered": sm("sp", [(100, 2), (10, 2)], 200),
            "overlap": sm("sp", [(10, 4), (12, 4)], 200),
            "beyond": sm("sp", [(10, 2), (195, 10)], 200),
            "short-map": sm("sp", [(10, 2)], 200, b"AAB"),
            "long-map": sm("sp", [(10, 2), (100, 2)], 200, b"AAB"),
        }
        for name, member in cases.items():
            with self.subTest(name):
                pool = self.path(f"{name}.stk")
                r = self.build(self.one_layer_image(name, [member]), pool,
                               check=EXIT["corruption"])
                self.assertOneLineError(r, "Corruption")
                self.assertIn("'sp'", r.err)
                self.assertNothingPublished(pool)
        # A good map with a hole before, between and after its regions.
        pool = self.path("good.stk")
        self.build(self.one_layer_image("good", [sm("sp", [(10, 2), (100, 2)], 200)]), pool)
        data = stack("fs", "cat", "-p", pool, "v@golden", "/sp", check=0).out
        self.assertEqual(data, "\0" * 10 + "AA" + "\0" * 88 + "BB" + "\0" * 98)

    def test_reproducible(self):
        """Same image, --timestamp and --uuid: byte-identical plain images,
        built twice from the layout and once each from its oci-archive and
        docker-archive copies (same layers; the docker one uncompressed)."""
        oa = self.path("r.oci.tar")
        da = self.path("r.docker.tar")
        run("skopeo", "copy", f"oci:{self.img}:{TAG}", f"oci-archive:{oa}:{TAG}")
        run("skopeo", "copy", f"oci:{self.img}:{TAG}", f"docker-archive:{da}:example/img:{TAG}")
        sources = [f"oci:{self.img}:{TAG}", f"oci:{self.img}:{TAG}", f"oci-archive:{oa}:{TAG}",
                   f"docker-archive:{da}"]
        digests = []
        for i, src in enumerate(sources):
            pool = self.path(f"r{i}.stk")
            self.build(src, pool, "--timestamp", "1700000000",
                       "--uuid", "11111111-2222-3333-4444-555555555555")
            img = self.path(f"r{i}.img")
            stack("export", "-p", pool, "v@golden", img, "--format", "plain", check=0)
            with open(img, "rb") as f:
                digests.append(hashlib.sha256(f.read()).hexdigest())
            os.remove(img)
        self.assertEqual(len(set(digests)), 1, dict(zip(sources[1:], digests[1:])))

    def test_kernel_mount_same_tree(self):
        """The kernel's ext4 reads the image as umoci unpacked it."""
        if os.geteuid() != 0:
            self.skipTest("mount -o loop needs root")
        pool = self.path("p.stk")
        self.build(f"oci:{self.img}:{TAG}", pool)
        plain = self.path("plain.img")
        stack("export", "-p", pool, "v@golden", plain, "--format", "plain", check=0)
        mnt = self.path("mnt")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-o", "loop,ro", plain, mnt], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("mount -o loop not permitted here: " + r.stderr.strip())
        try:
            got = tree(mnt)
            st = os.lstat(f"{mnt}/dev/null")
            self.assertTrue(stat.S_ISCHR(st.st_mode))
            self.assertEqual(os.getxattr(f"{mnt}/bin/ping", "security.capability",
                                         follow_symlinks=False), CAP.encode("latin-1"))
            self.assertEqual(os.lstat(f"{mnt}/opt/fresh").st_uid, 1000)
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
        del got["dev/null"]
        self.assertEqual(got, self.want)

    def test_config_and_digest_in_lists(self):
        pool = self.path("p.stk")
        self.build(f"oci:{self.img}:{TAG}", pool)
        with open(blob(self.img, index_manifest(self.img))) as f:
            config_digest = json.load(f)["config"]["digest"]
        for kind, name in (("volume", "v"), ("snapshot", "v@golden")):
            entries = stack("--json", kind, "list", "-p", pool, check=0).json()
            e = [x for x in entries if x["name"] == name][0]
            im = e["image"]
            self.assertEqual(im["digest"], index_manifest(self.img))
            self.assertEqual(im["image_id"], config_digest)
            self.assertEqual(im["platform"], "linux/amd64")
            c = im["config"]
            self.assertIn("FOO=bar", c["Env"])
            self.assertEqual(c["Entrypoint"], ["/bin/sh"])
            self.assertEqual(c["Cmd"], ["-c"])
            self.assertEqual(c["WorkingDir"], "/opt")
            self.assertEqual(c["User"], "1000:1000")
            self.assertEqual(c["Labels"], {"org.example": "yes"})

    def test_archives_same_tree(self):
        oa = self.path("img.oci.tar")
        da = self.path("img.docker.tar")
        run("skopeo", "copy", f"oci:{self.img}:{TAG}", f"oci-archive:{oa}:{TAG}")
        run("skopeo", "copy", f"oci:{self.img}:{TAG}", f"docker-archive:{da}:example/img:{TAG}")
        for i, src in enumerate((f"oci-archive:{oa}:{TAG}", f"docker-archive:{da}:example/img:{TAG}",
                                 f"docker-archive:{da}")):
            with self.subTest(src=src):
                pool = self.path(f"a{i}.stk")
                r = self.build(src, pool).json()
                self.assertEqual(r["image"]["layers"], 4)
                self.assertTreeIsOracle(self.extract(pool, name=f"a{i}"))

    def test_docker_archive_layers_stored_as_links(self):
        """docker save before v25 stores a layer shared by several images once
        and links the others to it (skopeo links duplicates): symlink and hard
        link members are followed inside the archive, wherever the linked
        member is; a link that leaves the archive is Corruption."""
        da = self.path("img.docker.tar")
        run("skopeo", "copy", f"oci:{self.img}:{TAG}", f"docker-archive:{da}:example/img:{TAG}")
        with tarfile.open(da) as t:
            members = [(m, t.extractfile(m).read() if m.isfile() else None)
                       for m in t.getmembers()]
        layers = json.loads(dict((m.name, d) for m, d in members)["manifest.json"])[0]["Layers"]
        self.assertGreaterEqual(len(layers), 3)

        def rewrite(out, links):
            """links: layer member -> (tarfile type, link name); the data of a
            linked layer goes to shared/N/layer.tar at the archive's end."""
            shared = []
            with tarfile.open(out, "w") as t:
                for m, d in members:
                    if m.name not in links:
                        t.addfile(m, io.BytesIO(d) if d is not None else None)
                        continue
                    shared.append((f"shared/{len(shared)}/layer.tar", d))
                    kind, target = links[m.name]
                    add_member(t, m.name, type=kind, linkname=target)
                for name, d in shared:
                    add_member(t, name, d)
            return out

        linked = rewrite(self.path("linked.tar"), {
            layers[0]: (tarfile.SYMTYPE, "./shared/../shared/0/layer.tar"),
            layers[1]: (tarfile.SYMTYPE, "/shared/1/layer.tar"),
            layers[2]: (tarfile.LNKTYPE, "shared/2/layer.tar")})
        pool = self.path("p.stk")
        self.build(f"docker-archive:{linked}:example/img:{TAG}", pool)
        self.assertTreeIsOracle(self.extract(pool))

        # Out of the archive; a link to itself.
        for i, target in enumerate(("../shared/0/layer.tar", layers[0])):
            with self.subTest(target=target):
                bad = rewrite(self.path(f"bad{i}.tar"), {layers[0]: (tarfile.SYMTYPE, target)})
                pool = self.path(f"bad{i}.stk")
                r = self.build(f"docker-archive:{bad}:example/img:{TAG}", pool,
                               check=EXIT["corruption"])
                self.assertOneLineError(r, "Corruption")
                self.assertIn("nothing inside the archive" if i == 0 else "links to follow",
                              r.err)
                self.assertNothingPublished(pool)

    def test_zstd_layers_same_tree(self):
        z = self.path("zstd")
        p = subprocess.run(["skopeo", "copy", "--dest-compress-format", "zstd",
                            f"oci:{self.img}:{TAG}", f"oci:{z}:{TAG}"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest("this skopeo cannot write zstd layers: " + p.stderr.strip())
        with open(blob(z, index_manifest(z))) as f:
            types = {l["mediaType"] for l in json.load(f)["layers"]}
        self.assertEqual(types, {"application/vnd.oci.image.layer.v1.tar+zstd"})
        pool = self.path("z.stk")
        self.build(f"oci:{z}:{TAG}", pool)
        self.assertTreeIsOracle(self.extract(pool))

    def test_tampered_layer_is_corruption_nothing_published(self):
        img = self.copy_image("tampered")
        with open(blob(img, index_manifest(img))) as f:
            layer = json.load(f)["layers"][1]["digest"]
        with open(blob(img, layer), "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0x01
            f.seek(0)
            f.write(data)
        pool = self.path("p.stk")
        self.build(f"oci:{self.img}:{TAG}", pool, "--snapshot", "")  # a pool with one entry
        stack("volume", "rename", "-p", pool, "v", "other", check=0)
        r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["corruption"])
        self.assertOneLineError(r, "Corruption")
        self.assertIn(layer, r.err)
        self.assertIn("layer 2/4", r.err)
        entries = stack("--json", "volume", "list", "-p", pool, check=0).json()
        self.assertEqual([e["name"] for e in entries], ["other"])
        stack("pool", "check", "-p", pool, check=0)

    def test_tampered_layer_with_layer_snapshots_leaves_no_snapshot(self):
        img = self.copy_image("tampered3")
        with open(blob(img, index_manifest(img))) as f:
            layer = json.load(f)["layers"][2]["digest"]
        with open(blob(img, layer), "ab") as f:
            f.write(b"\0")
        pool = self.path("p.stk")
        # A pool that was there: a failed build removes a pool it made itself.
        stack("pool", "create", pool, "--size", "64M", check=0)
        r = self.build(f"oci:{img}:{TAG}", pool, "--layer-snapshots", check=EXIT["corruption"])
        self.assertOneLineError(r, "Corruption")
        self.assertIn("layer 3/4", r.err)
        # Layers 1 and 2 were applied and snapshotted under the hidden name:
        # all of it went with the failed build.
        self.assertEqual(stack("--json", "snapshot", "list", "-p", pool, check=0).json(), [])
        self.assertNothingPublished(pool)

    def test_tampered_config_is_corruption(self):
        img = self.copy_image("badconfig")
        with open(blob(img, index_manifest(img))) as f:
            config = json.load(f)["config"]["digest"]
        with open(blob(img, config), "ab") as f:
            f.write(b" ")
        pool = self.path("p.stk")
        r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["corruption"])
        self.assertOneLineError(r, "Corruption")
        self.assertIn(config, r.err)
        self.assertNothingPublished(pool)

    def test_missing_blob_is_notfound(self):
        img = self.copy_image("missing")
        with open(blob(img, index_manifest(img))) as f:
            layer = json.load(f)["layers"][2]["digest"]
        os.remove(blob(img, layer))
        pool = self.path("p.stk")
        r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        self.assertIn(layer.split(":")[1], r.err)
        self.assertNothingPublished(pool)

    def test_unknown_media_type_is_unsupported(self):
        img = self.copy_image("mediatype")
        with open(blob(img, index_manifest(img))) as f:
            m = json.load(f)
        m["layers"][0]["mediaType"] = "application/vnd.example.layer.v1.squashfs"
        d, n = write_blob(img, json.dumps(m).encode())
        set_index(img, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
                        "size": n, "annotations": {"org.opencontainers.image.ref.name": TAG}})
        pool = self.path("p.stk")
        r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["unsupported"])
        self.assertOneLineError(r, "Unsupported")
        self.assertIn("application/vnd.example.layer.v1.squashfs", r.err)
        self.assertNothingPublished(pool)

    def test_platform_from_an_index(self):
        img = self.copy_image("multi")
        mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": index_manifest(img),
                 "size": os.path.getsize(blob(img, index_manifest(img)))}
        mdesc["platform"] = {"os": "linux", "architecture": "arm64"}
        d, n = write_blob(img, json.dumps({"schemaVersion": 2, "manifests": [mdesc]}).encode())
        set_index(img, {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d,
                        "size": n, "annotations": {"org.opencontainers.image.ref.name": TAG}})
        pool = self.path("p.stk")
        r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        self.assertIn("linux/amd64", r.err)
        self.assertIn("linux/arm64", r.err)
        self.assertNothingPublished(pool)
        self.build(f"oci:{img}:{TAG}", pool, "--platform", "linux/arm64")
        self.assertTreeIsOracle(self.extract(pool))

    def test_image_for_another_platform_is_notfound(self):
        """A single image (no index) whose config says amd64, asked for arm64."""
        pool = self.path("p.stk")
        r = self.build(f"oci:{self.img}:{TAG}", pool, "--platform", "linux/arm64",
                       check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        self.assertIn("linux/amd64, not linux/arm64", r.err)
        self.assertNothingPublished(pool)

    def test_sparse_member_stays_sparse(self):
        """A GNU sparse member: holes are written as nothing."""
        img = self.copy_image("sparse")
        src = self.path("sparse-src")
        os.makedirs(f"{src}/data")
        with open(f"{src}/data/sparse", "wb") as f:
            f.truncate(32 << 20)
            f.seek(20 << 20)
            f.write(b"middle")
        layer = self.path("sparse.tar")
        run("tar", "--sparse", "--format=gnu", "-C", src, "-cf", layer, "data")
        run("umoci", "raw", "add-layer", "--image", f"{img}:{TAG}", layer)
        pool = self.path("p.stk")
        self.build(f"oci:{img}:{TAG}", pool, size="128M")
        out = self.extract(pool)
        st = os.stat(f"{out}/data/sparse")
        self.assertEqual(st.st_size, 32 << 20)
        self.assertLess(st.st_blocks * 512, 1 << 20)
        with open(f"{out}/data/sparse", "rb") as f:
            f.seek(20 << 20)
            self.assertEqual(f.read(6), b"middle")
        info = stack("--json", "volume", "list", "-p", pool, check=0).json()[0]
        self.assertLess(info["mapped_bytes"], 8 << 20)

    def test_layer_larger_than_volume_is_nospace(self):
        img = self.copy_image("big")
        big = self.path("big.tar")
        with tarfile.open(big, "w") as t:
            add_member(t, "data/big", b"\x07" * (40 << 20))
        run("umoci", "raw", "add-layer", "--image", f"{img}:{TAG}", big)
        pool = self.path("p.stk")
        r = self.build(f"oci:{img}:{TAG}", pool, size="32M", check=EXIT["nospace"])
        self.assertOneLineError(r, "NoSpace")
        self.assertIn("layer 5/5", r.err)
        self.assertIn("/data/big", r.err)
        self.assertNothingPublished(pool)

    def test_truncated_compressed_layer_is_corruption(self):
        """A gzip (and a zstd) layer cut short, its digest made to match: the
        decompression fails, Corruption naming the layer, nothing published."""
        z = self.path("zstd-src")
        p = subprocess.run(["skopeo", "copy", "--dest-compress-format", "zstd",
                            f"oci:{self.img}:{TAG}", f"oci:{z}:{TAG}"],
                           capture_output=True, text=True)
        for kind, src in (("gzip", self.img), ("zstd", z if p.returncode == 0 else None)):
            with self.subTest(kind=kind):
                if src is None:
                    self.skipTest("this skopeo cannot write zstd layers: " + p.stderr.strip())
                img = self.copy_image("cut-" + kind) if src == self.img else src
                with open(blob(img, index_manifest(img))) as f:
                    layer = json.load(f)["layers"][0]
                self.assertTrue(layer["mediaType"].endswith(kind), layer["mediaType"])
                with open(blob(img, layer["digest"]), "rb") as f:
                    data = f.read()
                replace_layer(img, 0, data[: len(data) * 2 // 3])
                pool = self.path(f"cut-{kind}.stk")
                r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["corruption"])
                self.assertOneLineError(r, "Corruption")
                self.assertIn("layer 1/4", r.err)
                self.assertNothingPublished(pool)

    def test_tampered_manifest_is_corruption(self):
        img = self.copy_image("badmanifest")
        m = index_manifest(img)
        with open(blob(img, m), "ab") as f:
            f.write(b"\n")
        pool = self.path("p.stk")
        r = self.build(f"oci:{img}:{TAG}", pool, check=EXIT["corruption"])
        self.assertOneLineError(r, "Corruption")
        self.assertIn(m, r.err)
        self.assertFalse(os.path.exists(pool))  # checked before the pool is created

    def test_progress_per_layer_on_a_terminal(self):
        """On a (pseudo) terminal: each layer's first pass, then the write,
        each with a percentage, rate and ETA."""
        pool = self.path("p.stk")
        cmd = (f"{os.environ['STACK_BIN']} build -p {pool} v --from oci:{self.img}:{TAG} "
               f"--size 64M --no-encrypt")
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for i in range(1, 5):
            self.assertRegex(r.stdout, rf"build: reading layer {i}/4: +\d+\.\d% .*/s ETA \d\d:\d\d")
        self.assertRegex(r.stdout, r"build: 4 layers: +\d+\.\d% .*/s ETA \d\d:\d\d")

    def test_spool_is_anonymous_in_tmpdir(self):
        """The first pass spools each layer to a file in $TMPDIR that no name
        reaches; a $TMPDIR that is not there fails the build cleanly."""
        tmp = self.path("tmpdir")
        os.mkdir(tmp)
        pool = self.path("p.stk")
        env = dict(os.environ, TMPDIR=tmp)
        self.build(f"oci:{self.img}:{TAG}", pool, env=env)
        self.assertEqual(os.listdir(tmp), [])
        self.assertTreeIsOracle(self.extract(pool))
        gone = self.path("no-such-dir")
        pool2 = self.path("q.stk")
        r = self.build(f"oci:{self.img}:{TAG}", pool2, env=dict(os.environ, TMPDIR=gone),
                       check=EXIT["notfound"])
        self.assertOneLineError(r, "NotFound")
        self.assertIn(gone, r.err)
        self.assertIn("layer 1/4", r.err)
        self.assertNothingPublished(pool2)

    def test_killed_layered_build_leaves_nothing_visible(self):
        """Killed while reading its last layer, four layer snapshots taken
        under the hidden name: nothing is visible, the pool checks clean,
        and the next writer removes what the build left."""
        img = self.copy_image("killed")
        big = self.path("big.tar")
        with tarfile.open(big, "w") as t:
            add_member(t, "data/big", os.urandom(48 << 20))
        run("umoci", "raw", "add-layer", "--image", f"{img}:{TAG}", big)
        pool = self.path("p.stk")
        stack("pool", "create", pool, "--size", "1G", check=0)
        stack("volume", "create", "-p", pool, "keep", "--size", "1M", check=0)
        # The progress on a (pseudo) terminal says when the last layer starts.
        master, slave = pty.openpty()
        p = subprocess.Popen([os.environ["STACK_BIN"], "build", "-p", pool, "v", "--from",
                              f"oci:{img}:{TAG}", "--size", "128M", "--no-encrypt",
                              "--layer-snapshots"],
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        seen = b""
        try:
            while b"reading layer 5/5" not in seen:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                seen += chunk
        except OSError:
            pass
        finally:
            landed = p.poll() is None
            p.kill()
            p.wait()
            os.close(master)
        self.assertIn(b"reading layer 5/5", seen)
        self.assertTrue(landed, "the build ended before the kill: the test did not run")
        names = [e["name"] for e in stack("--json", "volume", "list", "-p", pool, "--all",
                                          check=0).json()]
        self.assertEqual(names, ["keep"])
        self.assertEqual(stack("--json", "snapshot", "list", "-p", pool, check=0).json(), [])
        rep = stack("--json", "pool", "check", pool, check=0).json()
        self.assertTrue(rep["ok"], rep)
        self.assertGreater(rep["entries"], 1, "the hidden volume and its layer snapshots")
        stack("snapshot", "create", "-p", pool, "keep@after", check=0)  # a writer cleans up
        rep = stack("--json", "pool", "check", pool, check=0).json()
        self.assertTrue(rep["ok"], rep)
        self.assertEqual(rep["entries"], 2)

    def test_layer_snapshots_reused_by_an_image_sharing_two_layers(self):
        img = self.copy_image("second")
        other = self.path("other.tar")
        with tarfile.open(other, "w") as t:
            add_member(t, "etc/other", b"only in the second image\n")
            add_member(t, "opt/keep/.wh.b", b"")
        run("umoci", "raw", "add-layer", "--image", f"{img}:base2", other)
        oracle = self.path("second-oracle")
        run("umoci", "unpack", "--rootless", "--image", f"{img}:base2", oracle)
        key = self.path("key")
        with open(key, "w") as f:
            f.write("layers")
        pool = self.path("p.stk")

        def build(vol, src, k=key):
            return stack("--json", "build", "-p", pool, vol, "--from", src, "--size", "64M",
                         "--layer-snapshots", "-k", k, *FAST_KDF, check=0).json()

        first = build("first", f"oci:{self.img}:{TAG}")
        self.assertEqual(first["image"]["reused_layers"], 0)
        snaps = [e for e in stack("--json", "snapshot", "list", "-p", pool, check=0).json()
                 if e["name"].startswith("first@oci-")]
        self.assertEqual(len(snaps), 4)  # one per layer, tagged by chain id
        self.assertTrue(all(any(t.startswith("oci.chain-id=sha256:") for t in e["tags"])
                            for e in snaps))
        second = build("second", f"oci:{img}:base2")
        self.assertEqual(second["image"]["reused_layers"], 2)
        self.assertEqual(second["image"]["layers"], 3)
        # Each is exactly its own image.
        for vol, want in (("second", tree(os.path.join(oracle, "rootfs"))),
                          ("first", dict(self.want))):
            out = self.path(vol + "-out")
            stack("fs", "extract", "-p", pool, vol + "@golden", "--to", out, "-k", key, check=0)
            got = tree(out)
            got.pop("dev/null", None)
            self.assertEqual(got, want, vol)
        stack("pool", "check", "-p", pool, check=0)
        if HAVE["e2fsck"]:
            plain = self.path("second.img")
            stack("export", "-p", pool, "second@golden", plain, "--format", "plain", "-k", key,
                  check=0)
            fsck = subprocess.run(["e2fsck", "-fn", plain], capture_output=True, text=True)
            self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
        r = stack("build", "-p", pool, "x", "--from", f"oci:{img}:base2", "--size", "64M",
                  "--layer-snapshots", "--manifest", self.path("m"), "-k", key, *FAST_KDF,
                  check=EXIT["usage"])
        self.assertIn("--layer-snapshots", r.err)
        # Another passphrase cannot open the layer snapshots: nothing reused.
        key2 = self.path("key2")
        with open(key2, "w") as f:
            f.write("another")
        third = build("third", f"oci:{img}:base2", k=key2)
        self.assertEqual(third["image"]["reused_layers"], 0)


    # Files of a layout (spec/oci.md "Files read", security.md A): opened
    # beneath the layout directory, only when regular, never blocking.

    def build_at_once(self, src, pool, code, env=None):
        """A build refused within 60 s (a hang fails the test), nothing
        published, the pool (if the refusal came after it) clean."""
        r = stack("--json", "build", "-p", pool, "v", "--from", src, "--size", "64M",
                  "--no-encrypt", check=code, env=env, timeout=60)
        self.assertNothingPublished(pool)
        return r

    def layer_blob(self, img, i=0):
        with open(blob(img, index_manifest(img))) as f:
            return blob(img, json.load(f)["layers"][i]["digest"])

    def test_blob_symlinked_out_of_the_layout_is_refused_unread(self):
        secret = self.path("host-secret")
        with open(secret, "wb") as f:
            f.write(b"a host file the image must not read\n")
        with open(secret, "rb") as f:
            secret_digest = hashlib.sha256(f.read()).hexdigest()
        for how, target in (("absolute", secret), ("relative", "../../../host-secret"),
                            ("dev-zero", "/dev/zero")):
            with self.subTest(how=how):
                img = self.copy_image("out-" + how)
                path = self.layer_blob(img)
                os.remove(path)
                os.symlink(target, path)
                pool = self.path(f"out-{how}.stk")
                r = self.build_at_once(f"oci:{img}:{TAG}", pool, EXIT["corruption"])
                self.assertOneLineError(r, "Corruption")
                self.assertIn("leads outside the image", r.err)
                self.assertIn(os.path.basename(path), r.err)
                self.assertNotIn(secret_digest, r.err)
                self.assertNotIn("hashes to", r.err)

    def test_dev_zero_blob_without_a_size_is_refused_and_spools_nothing(self):
        """The layer blob is /dev/zero (a symlink), its descriptor without a
        size: refused before anything is read, $TMPDIR left empty."""
        img = self.copy_image("zero")
        with open(blob(img, index_manifest(img))) as f:
            m = json.load(f)
        path = blob(img, m["layers"][0]["digest"])
        del m["layers"][0]["size"]
        d, n = write_blob(img, json.dumps(m).encode())
        set_index(img, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
                        "size": n, "annotations": {"org.opencontainers.image.ref.name": TAG}})
        os.remove(path)
        os.symlink("/dev/zero", path)
        tmp = self.path("tmpdir")
        os.mkdir(tmp)
        r = self.build_at_once(f"oci:{img}:{TAG}", self.path("p.stk"), EXIT["corruption"],
                               env={"TMPDIR": tmp})
        self.assertOneLineError(r, "Corruption")
        self.assertEqual(os.listdir(tmp), [])

    def test_symlink_inside_the_layout_is_followed(self):
        """A blob that is a symlink to another file of the layout is read:
        it stays inside the place the user named."""
        img = self.copy_image("inside")
        path = self.layer_blob(img, 1)
        os.makedirs(os.path.join(img, "shared"))
        os.rename(path, os.path.join(img, "shared", "layer"))
        os.symlink("../../shared/layer", path)
        pool = self.path("p.stk")
        self.build(f"oci:{img}:{TAG}", pool)
        self.assertTreeIsOracle(self.extract(pool))

    def test_fifo_or_directory_in_a_layout_is_refused_at_once(self):
        for what in ("fifo-blob", "fifo-index", "dir-blob"):
            with self.subTest(what=what):
                img = self.copy_image(what)
                path = (os.path.join(img, "index.json") if what == "fifo-index"
                        else self.layer_blob(img))
                os.remove(path)
                if what.startswith("fifo"):
                    os.mkfifo(path)
                else:
                    os.mkdir(path)
                pool = self.path(what + ".stk")
                r = self.build_at_once(f"oci:{img}:{TAG}", pool, EXIT["corruption"])
                self.assertOneLineError(r, "Corruption")
                self.assertIn(os.path.relpath(path, img), r.err)
                self.assertIn("a FIFO" if what.startswith("fifo") else "a directory", r.err)
                if what == "fifo-index":
                    self.assertFalse(os.path.exists(pool))  # refused before the pool

    def test_layout_of_several_images_needs_a_tag(self):
        """Two images (tags t and base2) with the same platform in
        index.json: without a TAG, InvalidArgument naming both; with one,
        that image."""
        img = self.copy_image("two")
        with open(os.path.join(img, "index.json")) as f:
            index = json.load(f)
        self.assertEqual(len(index["manifests"]), 2)
        for m in index["manifests"]:
            m["platform"] = {"os": "linux", "architecture": "amd64"}
        with open(os.path.join(img, "index.json"), "w") as f:
            json.dump(index, f)
        pool = self.path("p.stk")
        r = self.build_at_once(f"oci:{img}", pool, EXIT["usage"])
        self.assertOneLineError(r, "InvalidArgument")
        self.assertIn("oci:DIR:TAG", r.err)
        self.assertIn(f"{TAG}", r.err)
        self.assertIn("base2", r.err)
        self.assertFalse(os.path.exists(pool))
        got = self.build(f"oci:{img}:base2", pool).json()
        self.assertEqual(got["image"]["digest"], index_manifest(img, "base2"))

    def test_wrong_kind_of_reference_says_which_to_use(self):
        archive = self.path("img.tar")
        run("skopeo", "copy", f"oci:{self.img}:{TAG}", f"oci-archive:{archive}:{TAG}")
        for src, want in ((f"oci-archive:{self.img}:{TAG}", f"is a directory: use oci:{self.img}"),
                          (f"oci:{archive}:{TAG}", f"is a file: use oci-archive:{archive}")):
            with self.subTest(src=src):
                pool = self.path("p.stk")
                r = self.build_at_once(src, pool, EXIT["usage"])
                self.assertOneLineError(r, "InvalidArgument")
                self.assertIn(want, r.err)
                self.assertFalse(os.path.exists(pool))

if __name__ == "__main__":
    main()

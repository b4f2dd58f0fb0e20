#!/usr/bin/python3
"""bench_rbd: stack on Ceph RBD (issue 17) against the routes Ceph users take today, on a
throwaway cluster this script starts (scripts/ceph-test-cluster: one monitor, one OSD,
loopback) and stops. Without the Ceph packages or a cluster that starts, each metric is
printed as SKIPPED with the reason (ratio null), never measured.

Protocol as every bench_<area> (bench/common/bench_util.h):
  bench_rbd --list | --run NAME [--reps N] [--quick]

  rbd.build_encrypted  `stack build -p rbd:...` of a /usr/share-like tree (fs.build_tree's
                       shape: 65,000 files; --quick 2,000), LUKS2, vs `mke2fs -d` +
                       `qemu-img convert -O luks` + `rbd import` of the same tree.
                       Seconds, lower is better (goal <= 0.2).
  rbd.clone_edit       `stack clone` of a golden snapshot + `stack fs put` of one file vs
                       `rbd clone` + the same edit through `rbd export`, debugfs and
                       `rbd import` (plain ext4 both sides). Seconds (goal <= 0.2).
  rbd.seq_write        a 256 MiB file written through our fde layer into an encrypted RBD
                       volume (`stack fs put`; --quick 64 MiB) vs `rbd bench --io-type write`
                       (4 MiB sequential) of as many bytes on the same cluster. MB/s, higher
                       is better (goal >= 0.7).
Full runs use a BlueStore OSD (a sparse file under $STACK_BENCH_DIR or /var/tmp); --quick a
memstore one.
"""
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
import bench_protocol  # noqa: E402  (bench/common, copied beside us)
BUILD = os.path.dirname(os.path.dirname(HERE))
SOURCE = "@STACK_SOURCE_DIR@"
STACK = os.environ.get("STACK_BIN", os.path.join(BUILD, "cli", "stack"))
TOOL = os.path.join(SOURCE, "scripts", "ceph-test-cluster")
METRICS = ["rbd.build_encrypted", "rbd.clone_edit", "rbd.seq_write"]
MiB = 1 << 20
FAST_KDF = ["--kdf", "pbkdf2", "--pbkdf2-iterations", "1000"]


def sh(*cmd, **kw):
    r = subprocess.run(list(map(str, cmd)), capture_output=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: {r.stderr.decode(errors='replace')[-400:]}")
    return r


def timed(*cmd):
    t = time.monotonic()
    sh(*cmd)
    return time.monotonic() - t


def emit(name, ours, anchor, unit, better, anchor_desc, reps, notes):
    print(json.dumps({"name": name, "ours": ours, "anchor": anchor,
                      "ratio": ours / anchor if anchor else None, "unit": unit,
                      "anchor_desc": anchor_desc, "better": better, "reps": reps,
                      "notes": notes}), flush=True)


def skip(name, reason):
    unit = "MB/s" if name == "rbd.seq_write" else "s"
    print(json.dumps({"name": name, "ours": 0, "anchor": 0, "ratio": None, "unit": unit,
                      "anchor_desc": "SKIPPED: " + reason, "better": "n/a", "reps": 0,
                      "skipped": reason}), flush=True)


def make_tree(root, files, seed=7):
    """A /usr/share-like tree: nested package directories, sizes around 13.6 KB on
    average (many small, a few large), ~6 % symlinks; deterministic."""
    rng = random.Random(seed)
    made = []
    for i in range(files):
        d = os.path.join(root, f"pkg{i // 200:03d}", f"sub{(i // 20) % 10}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, f"f{i}.txt")
        if made and rng.random() < 0.06:
            os.symlink(os.path.relpath(rng.choice(made), d), p)
            continue
        size = int(rng.expovariate(1 / 13600))
        with open(p, "wb") as f:
            f.write(rng.randbytes(size // 2) + bytes(size - size // 2))
        made.append(p)


class Cluster:
    def __init__(self, base, quick):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.dir = os.path.join(base, "ceph")
        env = dict(os.environ, CEPH_MON_PORT=str(port),
                   CEPH_MEMSTORE_BYTES=str(1536 * MiB), CEPH_BLUESTORE_SIZE="16G",
                   # A throwaway monitor: a nearly full host disk (shared with other
                   # work) must not stop it.
                   CEPH_EXTRA_CONF="mon_data_avail_crit = 0")
        args = [TOOL, "start"] + ([] if quick else ["--bluestore"]) + [self.dir]
        r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        if r.returncode != 0:
            subprocess.run([TOOL, "stop", self.dir], capture_output=True)
            raise RuntimeError("the Ceph test cluster did not start: " +
                               (r.stderr.strip().splitlines() or ["?"])[-1])
        os.environ["CEPH_CONF"] = os.path.join(self.dir, "ceph.conf")

    def stop(self):
        subprocess.run([TOOL, "stop", self.dir], capture_output=True, timeout=300)


def rbd_rm(spec):
    subprocess.run(["rbd", "rm", "--no-progress", spec], capture_output=True)


def build_encrypted(tmp, reps, quick):
    tree = os.path.join(tmp, "tree")
    files = 2000 if quick else 65000
    make_tree(tree, files)
    size = "256M" if quick else "2G"
    key = os.path.join(tmp, "pass")
    pool = "rbd:stack"
    t_ours, t_anchor = [], []
    for r in range(reps):
        t_ours.append(timed(STACK, "build", "-p", pool, f"b{r}", "--from", tree, "--size", size,
                            "-k", key, *FAST_KDF))
        img, luks = os.path.join(tmp, "a.ext4"), os.path.join(tmp, "a.luks")
        t = time.monotonic()
        sh("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, img, size)
        sh("qemu-img", "convert", "--object", f"secret,id=sec0,file={key}", "-O", "luks",
           "-o", "key-secret=sec0,iter-time=10", img, luks)
        sh("rbd", "import", "--no-progress", luks, f"stack/a{r}")
        t_anchor.append(time.monotonic() - t)
        for p in (img, luks):
            os.unlink(p)
        sh(STACK, "volume", "rm", "-p", pool, f"b{r}")
        rbd_rm(f"stack/a{r}")
    o, a = statistics.median(t_ours), statistics.median(t_anchor)
    emit("rbd.build_encrypted", o, a, "s", "lower",
         "mke2fs -t ext4 -d + qemu-img convert -O luks + rbd import, same tree", reps,
         f"goal ratio <= 0.2; {files} files, {size} volume, LUKS2 (pbkdf2 1000 iterations; "
         f"qemu-img iter-time=10 ms)")


def clone_edit(tmp, reps, quick):
    tree = os.path.join(tmp, "tree")
    make_tree(tree, 500 if quick else 5000)
    pool = "rbd:stack"
    sh(STACK, "build", "-p", pool, "g", "--from", tree, "--size", "256M" if quick else "1G",
       "--no-encrypt", "--snapshot", "v1")
    edit = os.path.join(tmp, "edit.txt")
    with open(edit, "wb") as f:
        f.write(os.urandom(64 << 10))
    img = os.path.join(tmp, "x.img")
    t_ours, t_anchor = [], []
    for r in range(reps):
        t = time.monotonic()
        sh(STACK, "clone", "-p", pool, "g@v1", f"c{r}")
        sh(STACK, "fs", "put", "-p", pool, f"c{r}", edit, "/edit.txt")
        t_ours.append(time.monotonic() - t)
        t = time.monotonic()
        sh("rbd", "clone", "--rbd-default-clone-format", "2", "stack/g@v1", f"stack/a{r}")
        sh("rbd", "export", "--no-progress", f"stack/a{r}", img)
        sh("debugfs", "-w", "-R", f"write {edit} /edit.txt", img)
        rbd_rm(f"stack/a{r}")
        sh("rbd", "import", "--no-progress", img, f"stack/a{r}")
        t_anchor.append(time.monotonic() - t)
        os.unlink(img)
    o, a = statistics.median(t_ours), statistics.median(t_anchor)
    emit("rbd.clone_edit", o, a, "s", "lower",
         "rbd clone + rbd export + debugfs write + rbd import (the edited image back)", reps,
         "goal ratio <= 0.2; plain ext4 both sides, one 64 KiB file")


def seq_write(tmp, reps, quick):
    size = (64 if quick else 256) * MiB
    pool = "rbd:stack"
    key = os.path.join(tmp, "pass")
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    big = os.path.join(tmp, "big")
    with open(big, "wb") as f:
        f.write(os.urandom(size))
    t_ours, t_anchor = [], []
    for r in range(reps):
        sh(STACK, "build", "-p", pool, f"w{r}", "--from", empty, "--size",
           f"{size // MiB * 2 + 64}M", "-k", key, *FAST_KDF)
        t_ours.append(timed(STACK, "fs", "put", "-p", pool, f"w{r}", big, "/big", "-k", key))
        sh(STACK, "volume", "rm", "-p", pool, f"w{r}")
        sh("rbd", "create", "--size", f"{size // MiB}M", f"stack/a{r}")
        t_anchor.append(timed("rbd", "bench", "--io-type", "write", "--io-size", "4M",
                              "--io-threads", "16", "--io-pattern", "seq", "--io-total",
                              str(size), f"stack/a{r}"))
        rbd_rm(f"stack/a{r}")
    mbps = lambda t: size / 1e6 / statistics.median(t)
    o, a = mbps(t_ours), mbps(t_anchor)
    emit("rbd.seq_write", o, a, "MB/s", "higher",
         "rbd bench --io-type write --io-size 4M --io-pattern seq, same bytes, same cluster",
         reps, f"goal ratio >= 0.7; ours: stack fs put of {size // MiB} MiB of random data "
               "into an encrypted volume's ext4 (process start, unlock, ext4 and AES-XTS "
               "included)")


def main(argv):
    parsed = bench_protocol.parse(argv, METRICS, __doc__, "bench_rbd")
    if isinstance(parsed, int):
        return parsed
    name, reps, quick = parsed
    missing = [t for t in ("ceph-mon", "ceph-osd", "rbd", "mke2fs", "qemu-img", "debugfs")
               if shutil.which(t) is None]
    if missing:
        skip(name, "needs " + ", ".join(missing) + " (scripts/setup.sh installs them)")
        return 0
    base = os.environ.get("STACK_BENCH_DIR", "/var/tmp/stack-bench")
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="rbd-", dir=base)
    try:
        try:
            cluster = Cluster(tmp, quick)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skip(name, str(e))
            return 0
        try:
            with open(os.path.join(tmp, "pass"), "wb") as f:
                f.write(b"bench passphrase")
            {"rbd.build_encrypted": build_encrypted, "rbd.clone_edit": clone_edit,
             "rbd.seq_write": seq_write}[name](tmp, reps, quick)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

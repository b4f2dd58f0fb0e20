#!/usr/bin/python3
"""bench_nbd: NBD serving, ours against nbdkit's own `file` plugin (Debian's python3:
its python3-libnbd drives the random writers).

Protocol as every bench_<area> (bench/common/bench_util.h):
  bench_nbd --list | --run NAME [--reps N] [--quick]

  nbd.seq_write  nbdcopy of 1 GiB of random data into a served volume
                 (plain view, LUKS2-encrypted, in a pool) vs into a plain file
                 of the same size served by `nbdkit file`, same unix socket
                 kind, same client, same run. MB/s, higher is better.
  nbd.seq_read   nbdcopy of the same 1 GiB back out to null:.
  nbd.rand_write_4k
                 2 clients (processes, libnbd), each 4 KiB writes at random
                 aligned offsets of the 1 GiB device with a flush every 256;
                 writes/s of both together, ours vs the file plugin (goal >=
                 0.5).
  nbd.snapshot_while_serving
                 `stack snapshot create` of the volume while it is served and
                 2 clients write to it (forwarded to the server) vs the same
                 snapshot of the unserved pool; seconds, lower is better (goal:
                 ratio <= 3).
--quick uses 64 MiB (and fewer writes). The ratio is ours / anchor (goal >= 0.7
for the sequential ones: we encrypt and checksum, the anchor does neither).
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
import bench_protocol  # noqa: E402  (bench/common, copied beside us)
BUILD = os.path.dirname(os.path.dirname(HERE))
STACK = os.environ.get("STACK_BIN", os.path.join(BUILD, "cli", "stack"))
METRICS = ["nbd.seq_read", "nbd.seq_write", "nbd.rand_write_4k", "nbd.snapshot_while_serving"]
MiB = 1 << 20


def sh(*cmd, **kw):
    return subprocess.run(list(map(str, cmd)), check=True, capture_output=True, **kw)


def wait_socket(path, proc):
    for _ in range(600):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()}")
        time.sleep(0.05)
    raise RuntimeError("server did not start")


class Ours:
    def __init__(self, tmp, size):
        self.pool = os.path.join(tmp, "bench.stk")
        key = os.path.join(tmp, "pass")
        with open(key, "wb") as f:
            f.write(b"bench passphrase")
        sh(STACK, "pool", "create", self.pool, "--size", "64M")
        sh(STACK, "volume", "create", "-p", self.pool, "v", "--size", f"{size // MiB + 16}M")
        sh(STACK, "luks", "format", "-p", self.pool, "v", "--new-key-file", key,
           "--kdf", "pbkdf2", "--pbkdf2-iterations", "1000")
        self.proc = subprocess.Popen([STACK, "serve", "-p", self.pool, "v", "-k", key],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stack serve failed: {self.proc.stderr.read()}")
        self.uri = line.split()[-1]
        self.key = key

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=300)


class Anchor:
    def __init__(self, tmp, size):
        self.file = os.path.join(tmp, "anchor.img")
        with open(self.file, "wb") as f:
            f.truncate(size)
        self.sock = os.path.join(tmp, "anchor.sock")
        self.proc = subprocess.Popen(["nbdkit", "--foreground", "--exit-with-parent", "--unix",
                                      self.sock, "file", self.file],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_socket(self.sock, self.proc)
        self.uri = f"nbd+unix:///?socket={self.sock}"

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=300)


def timed(cmd):
    t0 = time.monotonic()
    sh(*cmd)
    return time.monotonic() - t0


def rand_writer(uri, size, writes, seed, stop=None):
    """One client: `writes` 4 KiB writes at random aligned offsets, a flush
    every 256 (runs until stop is set when given). Returns writes done."""
    import random
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    rnd = random.Random(seed)
    buf = os.urandom(4096)
    done = 0
    while (stop is None and done < writes) or (stop is not None and not stop.is_set()):
        h.pwrite(buf, rnd.randrange(size // 4096) * 4096)
        done += 1
        if done % 256 == 0:
            h.flush()
    h.flush()
    h.shutdown()
    return done


def rand_writes_per_s(uri, size, writes):
    """Two writer processes at once; total writes per second."""
    import multiprocessing
    with multiprocessing.Pool(2) as p:
        t0 = time.monotonic()
        n = sum(p.starmap(rand_writer, [(uri, size, writes, 1, None), (uri, size, writes, 2, None)]))
        return n / (time.monotonic() - t0)


def _load(uri, size, stop, seed):
    rand_writer(uri, size, 0, seed, stop)


def snapshot_times(ours, size, reps):
    """Seconds per `stack snapshot create` of v: served under a 2-client
    random-write load, then unserved."""
    import multiprocessing
    served, unserved = [], []
    stop = multiprocessing.Event()
    load = [multiprocessing.Process(target=_load, args=(ours.uri, size, stop, s)) for s in (3, 4)]
    for p in load:
        p.start()
    time.sleep(1)  # the load is running
    try:
        for i in range(reps):
            served.append(timed([STACK, "snapshot", "create", "-p", ours.pool, f"v@served{i}"]))
    finally:
        stop.set()
        for p in load:
            p.join()
    ours.close()
    for i in range(reps):
        unserved.append(timed([STACK, "snapshot", "create", "-p", ours.pool, f"v@direct{i}"]))
    return served, unserved


def run(name, reps, quick):
    size = (64 if quick else 1024) * MiB
    base = os.environ.get("STACK_BENCH_TMP") or os.path.join(BUILD, "bench-tmp")
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="nbd-", dir=base)
    try:
        src = os.path.join(tmp, "src.img")
        with open(src, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        if name == "nbd.snapshot_while_serving":
            ours = Ours(tmp, size)
            try:
                sh("nbdcopy", "--flush", src, ours.uri)  # a full volume to snapshot
                served, unserved = snapshot_times(ours, size, reps)
            finally:
                if ours.proc.poll() is None:
                    ours.close()
            o, a = statistics.median(served), statistics.median(unserved)
            print(json.dumps({
                "name": name, "ours": o, "anchor": a, "ratio": o / a, "unit": "s",
                "anchor_desc": "the same snapshot of the unserved pool (stack snapshot create)",
                "better": "lower", "reps": reps,
                "notes": f"served: forwarded to stack serve while 2 clients write 4 KiB at "
                         f"random with a flush every 256 ({size // MiB} MiB volume, full)"}))
            return
        ours, anchor = Ours(tmp, size), Anchor(tmp, size)
        try:
            if name == "nbd.rand_write_4k":
                writes = 2048 if quick else 16384
                t_ours, t_anchor = [], []
                for _ in range(reps):
                    t_ours.append(rand_writes_per_s(ours.uri, size, writes))
                    t_anchor.append(rand_writes_per_s(anchor.uri, size, writes))
                o, a = statistics.median(t_ours), statistics.median(t_anchor)
                print(json.dumps({
                    "name": name, "ours": o, "anchor": a, "ratio": o / a, "unit": "writes/s",
                    "anchor_desc": f"the same 2 libnbd clients against nbdkit file plugin "
                                   f"({size // MiB} MiB, unix socket)",
                    "better": "higher", "reps": reps,
                    "notes": "4 KiB random writes, flush every 256, 2 clients; ours: plain view "
                             "of a LUKS2 volume in a pool (CoW allocation, encrypt, checksum)"}))
                return
            t_ours, t_anchor = [], []
            if name == "nbd.seq_read":  # both targets hold the data before reads are timed
                sh("nbdcopy", "--flush", src, ours.uri)
                sh("nbdcopy", "--flush", src, anchor.uri)
            for _ in range(reps):
                for target, times in ((ours.uri, t_ours), (anchor.uri, t_anchor)):
                    if name == "nbd.seq_write":
                        times.append(timed(["nbdcopy", "--flush", src, target]))
                    else:
                        times.append(timed(["nbdcopy", target, "null:"]))
        finally:
            ours.close()
            anchor.close()
        mbps = lambda t: size / 1e6 / statistics.median(t)
        o, a = mbps(t_ours), mbps(t_anchor)
        print(json.dumps({
            "name": name, "ours": o, "anchor": a, "ratio": o / a, "unit": "MB/s",
            "anchor_desc": f"nbdcopy {'to' if name.endswith('write') else 'from'} nbdkit file "
                           f"plugin ({size // MiB} MiB, unix socket)",
            "better": "higher", "reps": len(t_ours),
            "notes": "ours: plain view of a LUKS2 volume in a pool (encrypt + checksum)"}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    parsed = bench_protocol.parse(argv, METRICS, __doc__, "bench_nbd")
    if isinstance(parsed, int):
        return parsed
    name, reps, quick = parsed
    for tool in ("nbdkit", "nbdcopy"):
        if shutil.which(tool) is None:
            print(f"bench_nbd: {tool} is not installed (scripts/setup.sh)", file=sys.stderr)
            return 1
    run(name, reps, quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

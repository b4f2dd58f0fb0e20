#!/usr/bin/env python3
"""bench_nbd: NBD serving throughput, ours against nbdkit's own `file` plugin.

Protocol as every bench_<area> (bench/common/bench_util.h):
  bench_nbd --list | --run NAME [--reps N] [--quick]

  nbd.seq_write  nbdcopy of 1 GiB of random data into a served volume
                 (plain view, LUKS2-encrypted, in a pool) vs into a plain file
                 of the same size served by `nbdkit file`, same unix socket
                 kind, same client, same run. MB/s, higher is better.
  nbd.seq_read   nbdcopy of the same 1 GiB back out to null:.
--quick uses 64 MiB. The ratio is ours / anchor (goal >= 0.7: we encrypt and
checksum, the anchor does neither).
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
BUILD = os.path.dirname(os.path.dirname(HERE))
STACK = os.environ.get("STACK_BIN", os.path.join(BUILD, "cli", "stack"))
METRICS = ["nbd.seq_read", "nbd.seq_write"]
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
        ours, anchor = Ours(tmp, size), Anchor(tmp, size)
        try:
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
    if "--list" in argv:
        print("\n".join(METRICS))
        return 0
    if "--run" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    name = argv[argv.index("--run") + 1]
    if name not in METRICS:
        print(f"bench_nbd: unknown metric {name}", file=sys.stderr)
        return 2
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 5
    for tool in ("nbdkit", "nbdcopy"):
        if shutil.which(tool) is None:
            print(f"bench_nbd: {tool} is not installed (scripts/setup.sh)", file=sys.stderr)
            return 1
    run(name, reps, "--quick" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Writes requests sent by the real `stack` client to a pool's control
socket (spec/control.md "Protocol") into DIR (default: the seeds directory
next to this script), one file per command: the bytes as the holder reads
them. A listener stands in for the holder at POOL.ctl, keeps what the client
sends and closes without 'A', so the client then runs the command itself.
The client runs with a small fixed environment, so no host's variables end
up in the seeds.
    STACK_BIN=build/cli/stack fuzz/stack/make_control_seeds.py [DIR]
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds", "control_wire_fuzzer")
STACK = os.path.abspath(
    os.environ.get("STACK_BIN", os.path.join(HERE, "..", "..", "build", "cli", "stack")))
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": "/nonexistent"}
COMMANDS = {
    "volume-list": ["volume", "list"],
    "pool-info-json": ["--json", "pool", "info"],
    "fs-ls": ["fs", "ls", "vm@s1", "/etc", "-k", "-"],
    "export": ["export", "vm@s1", "out.img", "--format", "raw", "-k", "pass.txt", "--force"],
    "snapshot-create": ["snapshot", "create", "vm@s2", "--note", "a note\twith a tab"],
}


def recv_request(conn):
    """The header and the payload it announces (the descriptors are closed)."""
    data = b""
    need = 12
    while len(data) < need:
        msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 5))
        for level, kind, fds in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for i in range(0, len(fds) - len(fds) % 4, 4):
                    os.close(int.from_bytes(fds[i:i + 4], "little"))
        if not msg:
            break
        data += msg
        if len(data) >= 12:
            need = 12 + int.from_bytes(data[8:12], "little")
    return data


def capture(workdir, pool, argv):
    path = os.path.realpath(os.path.join(workdir, pool)) + ".ctl"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(60)
    got = {}

    def serve():
        conn, _ = srv.accept()
        got["data"] = recv_request(conn)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    # argv[0] is "stack", as from PATH, not this build's path.
    subprocess.run(["stack"] + argv + ["-p", pool], executable=STACK, cwd=workdir, env=ENV,
                   input=b"",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    t.join(timeout=10)
    srv.close()
    os.unlink(path)
    if "data" not in got:
        sys.exit("make_control_seeds: the client sent nothing for: " + " ".join(argv))
    return got["data"]


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        subprocess.run([STACK, "pool", "create", "p.stk", "--size", "8M"], cwd=t, env=ENV,
                       check=True, stdout=subprocess.DEVNULL)
        for name, argv in COMMANDS.items():
            data = capture(t, "p.stk", argv)
            if data[:8] != b"STKCTL1\n":
                sys.exit("make_control_seeds: unexpected bytes for " + name)
            with open(os.path.join(OUT, name + ".req"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()

"""The control socket (spec/control.md): while a process holds a pool
writable, other `stack` commands on it are forwarded to that process and
answered exactly as a direct run would answer them; writable ones get Busy
naming the holder. Holders here are kept running deterministically: a
`fs populate --from -` or `build --from -` whose stdin (a tar stream) the
test keeps open until it has checked everything."""
import io
import os
import pty
import shutil
import signal
import socket
import stat
import subprocess
import tarfile
import time

from images import FAST_KDF, PASS, make_tree, sha256, write_pass
from stacktest import EXIT, STACK, StackTestCase, main, stack


def tar_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def wait_for_state(pid, state):
    """Until /proc/PID/stat shows `state` (a signal is delivered asynchronously)."""
    deadline = time.monotonic() + 60  # a guard against hanging, not a timing threshold
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == state:
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never reached state {state}")


def run(args, cwd=None):
    """(exit status, stdout bytes, stderr bytes) of `stack args`."""
    p = subprocess.run([STACK, *map(str, args)], capture_output=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


class Holder:
    """A `stack` process holding `pool` writable until finish() feeds its stdin."""

    def __init__(self, test, pool, args, cwd=None):
        self.test = test
        self.sock = os.path.realpath(os.path.join(cwd or ".", pool)) + ".ctl"
        # A session of its own: the holder has no controlling terminal.
        self.proc = subprocess.Popen([STACK, *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, cwd=cwd)
        test.addCleanup(self.kill)  # a failed test leaves no holder behind
        # Not a timing threshold: a guard against hanging forever if the
        # holder never serves (it fails the test with the holder's stderr).
        deadline = time.monotonic() + 300
        while not self.answers():
            if self.proc.poll() is not None:
                test.fail(f"holder exited {self.proc.returncode}: {self.proc.stderr.read()!r}")
            if time.monotonic() > deadline:
                self.kill()
                test.fail("holder never listened on " + self.sock)
            time.sleep(0.02)

    def answers(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock_address())
            return True
        except OSError:
            return False
        finally:
            s.close()

    def sock_address(self):
        if len(self.sock) < 108:
            return self.sock
        if not hasattr(self, "_dir"):
            self._dir = os.open(os.path.dirname(self.sock), os.O_PATH)
            self.test.addCleanup(os.close, self._dir)
        return f"/proc/self/fd/{self._dir}/{os.path.basename(self.sock)}"

    def finish(self, data):
        out, err = self.proc.communicate(data)
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f and not f.closed:
                f.close()


class Control(StackTestCase):
    def setUp(self):
        super().setUp()
        # A pool path longer than sun_path (108 bytes): the socket is
        # reached through /proc/self/fd.
        self.dir = os.path.join(self.tmp, "d" * 60, "e" * 60)
        os.makedirs(self.dir)
        self.pool = os.path.join(self.dir, "p.stk")
        self.assertGreater(len(self.pool), 108)
        self.key = write_pass(self.path("k"))
        stack("build", "-p", self.pool, "base", "--from", make_tree(self.path("t")), "--size",
              "64M", "--snapshot", "v1", "-k", self.key, *FAST_KDF, check=0)
        stack("build", "-p", self.pool, "work", "--size", "64M", "--snapshot", "", "-k",
              self.key, *FAST_KDF, check=0)

    def populate_holder(self):
        return Holder(self, self.pool, ["fs", "populate", "-p", self.pool, "work", "--from", "-",
                                        "-k", self.key])

    def cat_in_holder(self):
        """(client, read end): a forwarded `fs cat` of a 3 MiB file into a pipe,
        once the holder has started writing to it (it blocks when the pipe is
        full until the test reads)."""
        r, w = os.pipe()
        client = subprocess.Popen([STACK, "fs", "cat", "-p", self.pool, "base@v1",
                                   "/usr/share/doc/blob.bin", "-k", self.key], stdout=w,
                                  stderr=subprocess.DEVNULL)
        os.close(w)
        self.assertEqual(len(os.read(r, 1)), 1)
        return client, r

    def read_commands(self):
        p, k = self.pool, self.key
        return {
            "volume list": ["--json", "volume", "list", "-p", p, "--all"],
            "snapshot list": ["snapshot", "list", "-p", p],
            "pool info": ["--json", "pool", "info", p],
            "pool check": ["pool", "check", p],
            "fs ls": ["fs", "ls", "-l", "-p", p, "base@v1", "/etc", "-k", k],
            "fs cat": ["fs", "cat", "-p", p, "base@v1", "/etc/app/config.toml", "-k", k],
            "unknown entry": ["fs", "cat", "-p", p, "nosuch@v1", "/etc/hostname", "-k", k],
            "unknown path": ["fs", "cat", "-p", p, "base@v1", "/nope", "-k", k],
            "diff": ["--json", "diff", "-p", p, "base@v1", "base"],
            "diff unknown entry": ["diff", "-p", p, "base@v1", "nosuch"],
            # --json errors and "what I did" objects (issue 16) come from RunCli,
            # so the holder prints them as a direct run does.
            "json error": ["--json", "fs", "cat", "-p", p, "base@v1", "/nope", "-k", k],
            "json missing list": ["--json", "snapshot", "list", "-p", p, "missing"],
            "json luks backup": ["--json", "luks", "backup", "-p", p, "base@v1",
                                 "/dev/null/not-a-dir"],
        }

    def test_forwarded_answers_equal_direct_runs(self):
        cmds = self.read_commands()
        direct = {n: run(c) for n, c in cmds.items()}
        self.assertEqual(direct["unknown entry"][0], EXIT["notfound"])
        for d in ("direct", "fwd"):
            os.makedirs(self.path(d))
        export = ["export", "-p", self.pool, "base@v1", "out.img", "-k", self.key]
        self.assertEqual(run(export, cwd=self.path("direct"))[0], 0)

        h = self.populate_holder()
        st = os.lstat(h.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        # Without the holder's answer these would fail: the pool is locked.
        for name, c in cmds.items():
            with self.subTest(name):
                self.assertEqual(run(c), direct[name])
        # export to a path relative to the client's cwd, not the holder's.
        r = run(export, cwd=self.path("fwd"))
        self.assertEqual(r[0], 0, r)
        self.assertEqual(sha256(self.path("fwd/out.img")), sha256(self.path("direct/out.img")))
        # STACK_POOL comes from the client's environment.
        p = subprocess.run([STACK, "snapshot", "list"], capture_output=True,
                           env={**os.environ, "STACK_POOL": self.pool})
        self.assertEqual((p.returncode, p.stdout, p.stderr), direct["snapshot list"])
        # A writable command is refused, naming the holder.
        r = stack("snapshot", "create", "-p", self.pool, "base@new", check=EXIT["busy"])
        self.assertOneLineError(r, "Busy")
        self.assertIn("fs populate (pid %d)" % h.proc.pid, r.err)
        self.assertIn("only read-only commands", r.err)
        # The entry the holder writes is refused even to readers.
        r = stack("fs", "ls", "-p", self.pool, "work", "-k", self.key, check=EXIT["busy"])
        self.assertOneLineError(r, "Busy")
        self.assertIn("work", r.err)

        rc, out, err = h.finish(tar_bytes({"hello.txt": b"hi\n"}))
        self.assertEqual(rc, 0, err)
        self.assertIn(b"1 file", out)  # its own report, on its own stdout
        self.assertNotIn(b"port = 8080", out)
        self.assertFalse(os.path.exists(h.sock))
        self.assertEqual(stack("fs", "cat", "-p", self.pool, "work", "/hello.txt", "-k", self.key,
                               check=0).out, "hi\n")
        # Entries the holder did not touch answer as they did while it ran.
        for name in ("snapshot list", "fs ls", "fs cat", "unknown entry", "unknown path"):
            with self.subTest("after " + name):
                self.assertEqual(run(cmds[name]), direct[name])

    def test_build_answers_readers_and_refuses_writers(self):
        tree = make_tree(self.path("t2"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(tree, arcname=".")
        cmds = self.read_commands()
        direct = {n: run(cmds[n]) for n in ("volume list", "snapshot list", "fs cat")}
        h = Holder(self, self.pool, ["build", "-p", self.pool, "b2", "--from", "-", "--size",
                                     "64M", "-k", self.key, *FAST_KDF])
        for name, want in direct.items():
            with self.subTest(name):
                self.assertEqual(run(cmds[name]), want)  # the hidden build is not listed
        r = stack("volume", "rm", "-p", self.pool, "base", check=EXIT["busy"])
        self.assertOneLineError(r, "Busy")
        self.assertIn("build (pid %d)" % h.proc.pid, r.err)
        rc, out, err = h.finish(buf.getvalue())
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith(b"built b2"), out)
        stack("pool", "check", self.pool, check=0)
        names = [e["name"] for e in stack("--json", "volume", "list", "-p", self.pool, "--all",
                                          check=0).json()]
        self.assertEqual(sorted(names), ["b2", "b2@golden", "base", "base@v1", "work"])

    def test_holder_with_a_relative_pool_path(self):
        # The holder names the pool relative to its cwd; the client's cwd is
        # elsewhere: a stored export (which copies from the pool file by
        # name) must still find the pool's file.
        os.makedirs(self.path("out"))
        export = ["export", "-p", self.pool, "base@v1", "ref.img"]
        self.assertEqual(run(export, cwd=self.path("out"))[0], 0)
        os.rename(self.path("out/ref.img"), self.path("ref.img"))
        h = Holder(self, "p.stk", ["fs", "populate", "-p", "p.stk", "work", "--from", "-",
                                   "-k", self.key], cwd=self.dir)
        r = run(export, cwd=self.path("out"))
        self.assertEqual(r[0], 0, r)
        self.assertEqual(sha256(self.path("out/ref.img")), sha256(self.path("ref.img")))
        rc, _, err = h.finish(tar_bytes({"a": b"a"}))
        self.assertEqual(rc, 0, err)

    def test_stale_socket_of_a_killed_holder(self):
        want = run(self.read_commands()["volume list"])
        h = self.populate_holder()
        h.kill()  # SIGKILL
        self.assertTrue(os.path.exists(h.sock))  # left behind
        self.assertEqual(run(self.read_commands()["volume list"]), want)  # run locally
        h2 = self.populate_holder()  # replaces it
        self.assertEqual(run(self.read_commands()["volume list"]), want)
        rc, _, err = h2.finish(tar_bytes({"a": b"a"}))
        self.assertEqual(rc, 0, err)
        stack("pool", "check", self.pool, check=0)

    def test_client_killed_mid_command(self):
        h = self.populate_holder()
        client, r = self.cat_in_holder()
        client.kill()
        client.wait()
        os.close(r)  # the holder's next write fails (EPIPE), the command ends
        cmds = self.read_commands()
        self.assertEqual(run(cmds["snapshot list"])[0], 0)
        rc, out, err = h.finish(tar_bytes({"x": b"x"}))
        self.assertEqual(rc, 0, err)
        self.assertIn(b"1 file", out)
        stack("pool", "check", self.pool, check=0)

    def test_stopped_holder_is_named_not_waited_for(self):
        # Ctrl-Z on a holder: its socket still accepts connections, but it
        # takes nothing until it is resumed. A client says so at once.
        want = run(self.read_commands()["volume list"])
        h = self.populate_holder()
        os.kill(h.proc.pid, signal.SIGSTOP)
        wait_for_state(h.proc.pid, "T")
        r = stack(*self.read_commands()["volume list"], check=EXIT["busy"])
        self.assertOneLineError(r, "Busy")
        self.assertIn("held by process %d, which is stopped: resume it (fg, or kill -CONT %d)"
                      % (h.proc.pid, h.proc.pid), r.err)
        os.kill(h.proc.pid, signal.SIGCONT)
        self.assertEqual(run(self.read_commands()["volume list"]), want)  # forwarded again
        rc, _, err = h.finish(tar_bytes({"a": b"a"}))
        self.assertEqual(rc, 0, err)

    def test_client_interrupted_while_queued_runs_nothing(self):
        # The holder runs one forwarded command at a time. A client queued
        # behind a busy one says it waits; interrupted then, its command is
        # not run when its turn comes (an export would have written a file).
        h = self.populate_holder()
        busy, r = self.cat_in_holder()  # blocked on our pipe until we read it
        out = self.path("queued.img")
        queued = subprocess.Popen([STACK, "export", "-p", self.pool, "base@v1", out],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = queued.stderr.readline()  # after 2 s of waiting
        self.assertIn(b"busy with another command; waiting for it", line)
        self.assertIn(b"held by process %d" % h.proc.pid, line)
        queued.send_signal(signal.SIGINT)
        self.assertNotEqual(queued.wait(), 0)
        queued.stderr.close()
        with os.fdopen(r, "rb") as f:
            self.assertEqual(len(f.read()) + 1, 3 << 20)  # the busy command ends
        self.assertEqual(busy.wait(), 0)
        # The worker has passed the interrupted request once this is answered.
        self.assertEqual(run(self.read_commands()["snapshot list"])[0], 0)
        self.assertEqual([n for n in os.listdir(self.tmp) if "queued" in n], [])
        rc, _, err = h.finish(tar_bytes({"a": b"a"}))
        self.assertEqual(rc, 0, err)

    def test_prompt_on_the_clients_terminal(self):
        # The holder has no terminal (its /dev/tty cannot be opened): a
        # passphrase prompt answered here came through the client's.
        h = self.populate_holder()
        pid, master = pty.fork()
        if pid == 0:
            try:
                os.execv(STACK, [STACK, "fs", "cat", "-p", self.pool, "base@v1", "/etc/hostname"])
            finally:
                os._exit(127)
        seen = b""
        while b"Passphrase: " not in seen:
            chunk = os.read(master, 1024)
            self.assertTrue(chunk, seen)
            seen += chunk
        os.write(master, PASS + b"\n")
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: the client exited and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, seen)
        self.assertIn(b"golden", seen)
        self.assertNotIn(PASS, seen)  # echo was off
        rc, _, err = h.finish(tar_bytes({"a": b"a"}))
        self.assertEqual(rc, 0, err)

    def test_other_uid_is_not_answered(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to run a client as another uid")
        os.chmod(self.tmp, 0o755)
        for d in (os.path.dirname(self.dir), self.dir):
            os.chmod(d, 0o755)
        os.chmod(self.pool, 0o644)  # readable: a local run meets the lock (Busy)
        h = self.populate_holder()
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        # 0600: nobody cannot connect; the command runs locally and meets the lock.
        p = subprocess.run(nobody + [STACK, "volume", "list", "-p", self.pool],
                           capture_output=True)
        self.assertEqual(p.returncode, EXIT["busy"], p.stderr)
        # Even with the socket opened to everyone, the client does not send
        # its descriptors to another uid's process ...
        os.chmod(h.sock, 0o666)
        p = subprocess.run(nobody + [STACK, "volume", "list", "-p", self.pool],
                           capture_output=True)
        self.assertEqual(p.returncode, EXIT["busy"], p.stderr)
        # ... and the holder does not run a request from another uid.
        probe = (
            "import os, socket, struct, sys\n"
            "d = os.open(os.path.dirname(sys.argv[1]), os.O_PATH)\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect('/proc/self/fd/%d/%s' % (d, os.path.basename(sys.argv[1])))\n"
            "def pack(v):\n"
            "    return struct.pack('<I', len(v)) + b''.join(struct.pack('<I', len(x)) + x for x in v)\n"
            "body = pack([b'stack', b'volume', b'list', b'-p', sys.argv[2].encode()]) + pack([])\n"
            "body += struct.pack('<I', 0o22)\n"
            "msg = b'STKCTL1\\n' + struct.pack('<I', len(body)) + body\n"
            "try:\n"
            "    socket.send_fds(s, [msg], [os.open('.', os.O_PATH), 0, 1, 2])\n"
            "    print(repr(s.recv(1)))\n"
            "except (BrokenPipeError, ConnectionResetError):\n"
            "    print(repr(b''))\n")
        p = subprocess.run(nobody + ["/usr/bin/python3", "-c", probe, h.sock, self.pool],
                           capture_output=True, cwd="/")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), b"b''")  # closed without an answer
        rc, _, err = h.finish(tar_bytes({"a": b"a"}))
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    main()

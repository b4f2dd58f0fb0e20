"""Sample trees and oracle helpers shared by the end-to-end tests."""
import hashlib
import os
import subprocess

from stacktest import sh, stack

PASS = b"correct horse battery staple"
# Cheap keyslots for tests (the KDF cost is not what is under test here).
FAST_KDF = ["--kdf", "pbkdf2", "--pbkdf2-iterations", "1000"]


def write_pass(path, data=PASS):
    with open(path, "wb") as f:
        f.write(data)
    return path


def make_tree(root):
    """A small tree with every kind of entry an image carries."""
    os.makedirs(os.path.join(root, "etc", "app"), exist_ok=True)
    os.makedirs(os.path.join(root, "usr", "share", "doc"), exist_ok=True)
    os.makedirs(os.path.join(root, "var", "empty"), exist_ok=True)
    with open(os.path.join(root, "etc", "hostname"), "w") as f:
        f.write("golden\n")
    with open(os.path.join(root, "etc", "app", "config.toml"), "w") as f:
        f.write("[server]\nport = 8080\n" * 50)
    big = os.urandom(3 << 20)
    with open(os.path.join(root, "usr", "share", "doc", "blob.bin"), "wb") as f:
        f.write(big)
    for i in range(200):
        with open(os.path.join(root, "usr", "share", "doc", f"f{i:03}.txt"), "w") as f:
            f.write(f"file {i}\n" * (i + 1))
    # sparse file: 8 MiB apparent, two small data runs
    with open(os.path.join(root, "var", "sparse.img"), "wb") as f:
        f.seek(1 << 20)
        f.write(b"A" * 4096)
        f.seek((8 << 20) - 4096)
        f.write(b"Z" * 4096)
    os.symlink("../etc/hostname", os.path.join(root, "usr", "hostname-link"))
    os.link(os.path.join(root, "etc", "hostname"), os.path.join(root, "etc", "hostname.hard"))
    os.chmod(os.path.join(root, "etc", "app", "config.toml"), 0o640)
    return root


def sha256(path):
    """Hash of a (possibly huge, sparse) file: its size and its data extents."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        fd = f.fileno()
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # no more data
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            h.update(f"@{data}".encode())
            f.seek(data)
            left = hole - data
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            pos = hole
    return h.hexdigest()


def e2fsck_clean(img):
    r = subprocess.run(["e2fsck", "-fn", img], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def debugfs_cat(img, path):
    r = subprocess.run(["debugfs", "-R", f"cat {path}", img], capture_output=True)
    return r.stdout


def allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def export(pool, entry, out, fmt, keyfile=None, extra=()):
    args = ["--json", "export", "-p", pool, entry, out, "--format", fmt, *extra]
    if keyfile:
        args += ["-k", keyfile]
    return stack(*args, check=0).json()


def plain_fingerprint(tmp, pool, entry, keyfile):
    """sha256 of the decrypted export of an entry (content identity)."""
    out = os.path.join(tmp, f"fp-{entry.replace('@', '_')}.img")
    if os.path.exists(out):
        os.unlink(out)
    export(pool, entry, out, "plain", keyfile)
    h = sha256(out)
    os.unlink(out)
    return h

"""Crafted ext4 images with hostile directory entries, for the reader tests
and the fuzz seeds (spec/fsbridge.md "Hostile images").

An image is made by mke2fs -d from a tree whose entries carry placeholder
names of the right length; the placeholders are then overwritten in the raw
directory blocks (linear directories, no metadata_csum, so nothing else needs
fixing). Entry names are bytes: e2fsck is not what stands between such an
image and a reader.

    python3 hostile_images.py IMAGE CASE      # writes one case
    python3 hostile_images.py --list          # the case names
"""
import os
import shutil
import subprocess
import sys
import tempfile

MKE2FS = ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "16", "-m", "0",
          "-O", "^metadata_csum,^has_journal,^dir_index,^resize_inode", "-E", "root_owner=0:0"]


def _placeholder(i, n):
    """A unique placeholder of n bytes (n >= 1)."""
    alphabet = "QWXZJK"
    if n == 1:
        return alphabet[i].encode()
    return ("Q" + str(i).rjust(n - 1, "0")[-(n - 1):]).encode()


def patch_name(image, old, new):
    """Overwrites the one directory entry named `old` with `new` (same length)."""
    assert len(old) == len(new), (old, new)
    with open(image, "rb") as f:
        data = bytearray(f.read())
    hits = []
    start = 0
    while True:
        i = data.find(old, start)
        if i < 0:
            break
        start = i + 1
        # struct ext4_dir_entry_2: inode u32, rec_len u16, name_len u8, type u8, name
        if i >= 8 and data[i - 2] == len(old) and 1 <= data[i - 1] <= 7:
            hits.append(i)
    if len(hits) != 1:
        raise RuntimeError(f"{image}: {len(hits)} entries named {old!r}")
    data[hits[0]:hits[0] + len(old)] = new
    with open(image, "wb") as f:
        f.write(data)


def set_entry_inode(image, name, ino):
    """Points the one directory entry named `name` at inode `ino`."""
    with open(image, "rb") as f:
        data = bytearray(f.read())
    i = data.find(name)
    while i >= 0 and not (data[i - 2] == len(name) and 1 <= data[i - 1] <= 7):
        i = data.find(name, i + 1)
    if i < 0:
        raise RuntimeError(f"{image}: no entry named {name!r}")
    data[i - 8:i - 4] = ino.to_bytes(4, "little")
    with open(image, "wb") as f:
        f.write(data)


def _build(image, tree, renames, size_kib=64):
    """tree: fn(root) making the source; renames: [(placeholder, hostile)]."""
    # Sized first: mke2fs -d leaves a new file short of its last blocks.
    with open(image, "wb") as f:
        f.truncate(size_kib * 1024)
    with tempfile.TemporaryDirectory() as t:
        src = os.path.join(t, "src")
        os.mkdir(src)
        tree(src)
        subprocess.run([*MKE2FS, "-d", src, image, f"{size_kib}K"], check=True, capture_output=True)
    for old, new in renames:
        patch_name(image, old, new)


def _write(path, data=b"data\n"):
    with open(path, "wb") as f:
        f.write(data)


# Hostile names put in the root directory next to an ordinary file "ok".
UNSAFE_NAMES = {
    "dotdot": b"../x",
    "dotdot_deep": b"../../../tmp/x",
    "dot": b".",
    "dotdot_only": b"..",
    "slash": b"a/b",
    "abs": b"/etc/x",
    "nul": b"a\x00b",
}
# Names that are safe to create but must be escaped when printed.
ODD_NAMES = {
    "newline": b"a\nb",
    "control": b"\x1b[31mred",
}


def case_unsafe(image, hostile, as_dir=False):
    ph = _placeholder(0, len(hostile))
    def tree(src):
        _write(os.path.join(src, "ok"), b"fine\n")
        if as_dir:
            os.mkdir(os.path.join(src, ph.decode()))
            _write(os.path.join(src, ph.decode(), "inside"), b"evil\n")
        else:
            _write(os.path.join(src, ph.decode()), b"evil\n")
    _build(image, tree, [(ph, hostile)])


def case_duplicate(image, link_target="/tmp/stack-hostile-outside"):
    """Root holds "evil" twice: a symlink to a host path and a directory
    holding "pwn" (extracting both would write pwn through the link)."""
    def tree(src):
        _write(os.path.join(src, "ok"), b"fine\n")
        os.symlink(link_target, os.path.join(src, "evil"))
        os.mkdir(os.path.join(src, "evjl"))
        _write(os.path.join(src, "evjl", "pwn"), b"pwned\n")
    _build(image, tree, [(b"evjl", b"evil")])


def case_loop(image):
    """Directory "loop" is an entry pointing back at the root (inode 2)."""
    def tree(src):
        _write(os.path.join(src, "ok"), b"fine\n")
        os.mkdir(os.path.join(src, "loop"))
    _build(image, tree, [])
    set_entry_inode(image, b"loop", 2)


def case_plain_dir(image):
    """Directory "d" holding "f" (for extracting over a planted symlink)."""
    def tree(src):
        os.mkdir(os.path.join(src, "d"))
        _write(os.path.join(src, "d", "f"), b"inside\n")
        _write(os.path.join(src, "ok"), b"fine\n")
        os.link(os.path.join(src, "ok"), os.path.join(src, "d", "hard"))
    _build(image, tree, [])


CASES = {}
for _k, _v in UNSAFE_NAMES.items():
    CASES[_k] = (lambda v: lambda img: case_unsafe(img, v))(_v)
    CASES[_k + "_dir"] = (lambda v: lambda img: case_unsafe(img, v, as_dir=True))(_v)
for _k, _v in ODD_NAMES.items():
    CASES[_k] = (lambda v: lambda img: case_unsafe(img, v))(_v)
CASES["duplicate"] = case_duplicate
CASES["loop"] = case_loop
CASES["plain_dir"] = case_plain_dir


def make(image, case):
    CASES[case](image)


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        print("\n".join(CASES))
    elif len(sys.argv) == 3:
        make(sys.argv[1], sys.argv[2])
    else:
        sys.exit(__doc__)

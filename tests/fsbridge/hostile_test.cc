// Hostile input to the readers and the tar importer (issue 12): crafted ext4
// images (tests/lib/hostile_images.py patches names in raw directory
// blocks), destinations holding symlinks, and compressed tarballs whose
// stream fails its check. See spec/fsbridge.md "Hostile images".
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "block/file_device.h"
#include "block/mem_device.h"
#include "block/unique_fd.h"
#include "fsbridge/filesystem.h"
#include "fs_test_util.h"
#include "fsbridge/names.h"
#include "host_tree.h"
#include "test_util.h"

using namespace stack;
using namespace stack::testing;
using stack::fsbridge::Filesystem;
namespace sfs = std::filesystem;

namespace {

// Makes one case of hostile_images.py into `img`.
void Craft(const std::string& img, const std::string& kase) {
  std::string out;
  const int rc = RunCommand("python3 " HOSTILE_IMAGES_PY " " + img + " " + kase, &out);
  INFO(out);
  REQUIRE(rc == 0);
}

struct Opened {
  std::unique_ptr<Filesystem> fs;
  std::vector<std::string> warnings;
};

std::unique_ptr<Opened> Open(const std::string& img) {
  auto dev = FileDevice::Open(img, FileDeviceOptions{});
  REQUIRE_OK(dev);
  auto fs = Filesystem::Open(std::move(dev).value(), false);
  REQUIRE_OK(fs);
  auto o = std::make_unique<Opened>();
  o->fs = std::move(fs).value();
  o->fs->SetWarningSink([p = o.get()](const std::string& w) { p->warnings.push_back(w); });
  return o;
}

// Every path below root, without following symlinks.
std::set<std::string> Tree(const std::string& root) {
  std::set<std::string> out;
  for (auto it = sfs::recursive_directory_iterator(root); it != sfs::recursive_directory_iterator(); ++it)
    out.insert(sfs::relative(it->path(), root).string());
  return out;
}

// A 4 MiB image of `kind` (mke2fs -d, 1 KiB blocks) holding /f = "data".
std::string OneFileImage(const TempDir& t, const std::string& kind, int block_size = 1024) {
  const std::string src = t.file("src-" + kind);
  sfs::create_directories(src);
  { std::ofstream(src + "/f") << "data"; }
  const std::string img = t.file(kind + ".img");
  std::string out;
  REQUIRE(RunCommand("mke2fs -q -t " + kind + " -b " + std::to_string(block_size) + " -d " + src +
                         " " + img + " 4M",
                     &out) == 0);
  return img;
}

}  // namespace

TEST_CASE("entry names: what is safe, and how any name is printed", "[fsbridge][hostile]") {
  using stack::EscapeText;
  using fsbridge::IsSafeEntryName;
  for (const char* ok : {"a", "...", ".a", "a.", "a b", "\xc3\xa9t\xc3\xa9", "a\nb", "-rf"})
    CHECK(IsSafeEntryName(ok));
  for (std::string bad : {"", ".", "..", "../x", "a/b", "/", "a/"}) CHECK_FALSE(IsSafeEntryName(bad));
  CHECK_FALSE(IsSafeEntryName(std::string("a\0b", 3)));
  CHECK(IsSafeEntryName(std::string(255, 'n')));
  CHECK_FALSE(IsSafeEntryName(std::string(256, 'n')));
  CHECK(EscapeText("plain") == "plain");
  CHECK(EscapeText("a\nb\tc\\d") == "a\\x0ab\\x09c\\d");  // backslash kept
  CHECK(EscapeText("caf\xe9") == "caf\\xe9");                      // not UTF-8
  for (std::string once : {std::string("a\nb"), std::string("\x1b\0\xff\\", 4)})
    CHECK(EscapeText(EscapeText(once)) == EscapeText(once));        // idempotent
  CHECK(EscapeText(std::string("\x1b[0m\x7f\0", 6)) == "\\x1b[0m\\x7f\\x00");
  CHECK(EscapeText("\xc3\xa9") == "\xc3\xa9");  // UTF-8 kept
}

TEST_CASE("crafted images: unsafe and duplicate names, loops, every reader skips them",
          "[fsbridge][hostile]") {
  TempDir t;
  const std::string box = t.file("box");
  sfs::create_directories(box + "/outside");
  for (const char* kase : {"dotdot", "dotdot_dir", "dot_dir", "dotdot_only", "slash", "slash_dir",
                           "abs_dir", "nul", "nul_dir", "duplicate", "loop"}) {
    SECTION(kase) {
      const std::string img = t.file(std::string(kase) + ".img");
      Craft(img, kase);
      auto o = Open(img);
      auto ls = o->fs->List("/");
      REQUIRE_OK(ls);
      std::vector<std::string> names;
      for (auto& e : *ls) {
        CHECK(fsbridge::IsSafeEntryName(e.name));
        names.push_back(e.name);
      }
      const std::string k = kase;
      if (k == "duplicate")
        CHECK(names == std::vector<std::string>{"evil", "lost+found", "ok"});
      else if (k == "loop")
        CHECK(names == std::vector<std::string>{"loop", "lost+found", "ok"});
      else
        CHECK(names == std::vector<std::string>{"lost+found", "ok"});
      if (k != "loop") CHECK(o->warnings.size() == 1);
      for (auto& w : o->warnings) CHECK(w.find('\n') == std::string::npos);

      const std::string dest = box + "/dest";
      const auto before = Tree(box);
      Status s = o->fs->ExtractToDirectory("/", dest);
      CHECK(s.code() == Code::kCorruption);
      CHECK(s.message().find("hostile") != std::string::npos);
      // Only dest/ and what is in it is new; outside stays empty.
      for (const auto& p : Tree(box))
        if (!before.count(p)) CHECK(p.rfind("dest", 0) == 0);
      CHECK(sfs::is_empty(box + "/outside"));
      CHECK(Slurp(dest + "/ok") == "fine\n");

      const std::string tar = t.file("out.tar");
      s = o->fs->ExtractToTar("/", tar);
      CHECK(s.code() == Code::kCorruption);
      std::string members;
      REQUIRE(RunCommand("tar -tf " + tar, &members) == 0);
      INFO(members);
      CHECK(members.find("./ok") != std::string::npos);
      std::istringstream in(members);
      for (std::string m; std::getline(in, m);) {
        CHECK(m.rfind("/", 0) != 0);
        CHECK(("/" + m + "/").find("/../") == std::string::npos);
      }
    }
  }
}

TEST_CASE("a duplicate name never lets a file be written through a symlink", "[fsbridge][hostile]") {
  // The image's "evil" is a symlink to outside/ and (second entry) a
  // directory holding pwn; before the fix pwn landed in outside/.
  TempDir t;
  const std::string img = t.file("dup.img");
  std::string out;
  const std::string outside = t.file("outside");
  sfs::create_directories(outside);
  REQUIRE(RunCommand("python3 -c 'import sys; sys.path.insert(0, \"" HOSTILE_IMAGES_DIR
                     "\"); import hostile_images as h; h.case_duplicate(\"" + img + "\", \"" +
                         outside + "\")'",
                     &out) == 0);
  auto o = Open(img);
  CHECK(o->fs->ExtractToDirectory("/", t.file("dest")).code() == Code::kCorruption);
  CHECK(sfs::is_empty(outside));
  CHECK(sfs::is_symlink(t.file("dest/evil")));
}

TEST_CASE("extracting over a destination that holds symlinks replaces them", "[fsbridge][hostile]") {
  TempDir t;
  const std::string img = t.file("plain.img");
  Craft(img, "plain_dir");
  const std::string outside = t.file("outside"), dest = t.file("dest");
  sfs::create_directories(outside);
  sfs::create_directories(dest);
  sfs::create_directory_symlink(outside, dest + "/d");           // where the image has a dir
  sfs::create_symlink(outside + "/victim", dest + "/ok");        // where it has a file
  auto o = Open(img);
  REQUIRE_OK(o->fs->ExtractToDirectory("/", dest));
  CHECK(sfs::is_empty(outside));
  CHECK_FALSE(sfs::is_symlink(dest + "/d"));
  CHECK(Slurp(dest + "/d/f") == "inside\n");
  CHECK_FALSE(sfs::is_symlink(dest + "/ok"));
  struct stat a, b;
  REQUIRE(::stat((dest + "/ok").c_str(), &a) == 0);
  REQUIRE(::stat((dest + "/d/hard").c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);  // hard link made inside, from the first name
}

TEST_CASE("HostDir: one name at a time, beneath its fd", "[fsbridge][hostile]") {
  TempDir t;
  const std::string outside = t.file("outside");
  sfs::create_directories(outside);
  auto root = fsbridge::HostDir::OpenRoot(t.file("root"));
  REQUIRE_OK(root);
  sfs::create_directory_symlink(outside, t.file("root/sub"));
  auto sub = root->Descend("sub");
  REQUIRE_OK(sub);
  CHECK_FALSE(sfs::is_symlink(t.file("root/sub")));
  auto f = sub->CreateFile("x");
  REQUIRE_OK(f);
  CHECK(sfs::exists(t.file("root/sub/x")));
  CHECK(sfs::is_empty(outside));
  // A non-empty directory where a file goes is refused, not emptied.
  sfs::create_directories(t.file("root/full/keep"));
  CHECK(root->CreateFile("full").status().code() == Code::kAlreadyExists);
  CHECK(sfs::exists(t.file("root/full/keep")));
  // Walk refuses a symlink on the way.
  sfs::create_directory_symlink(outside, t.file("root/link"));
  CHECK_FALSE(root->Walk({"link"}).ok());
}

TEST_CASE("corrupt compressed tarballs are Corruption naming the archive", "[fsbridge][hostile]") {
  TempDir t;
  const std::string src = t.file("src");
  sfs::create_directories(src);
  {
    std::ofstream f(src + "/f", std::ios::binary);
    for (int i = 0; i < 40000; ++i) f << i * 7919 << "\n";  // ~270 kB, compressible
  }
  std::string out;
  REQUIRE(RunCommand("tar -C " + src + " -cf " + t.file("t.tar") + " .", &out) == 0);
  struct Case {
    const char* tool;
    const char* ext;
    long trailer;  // offset from the end of a byte of the final check
  };
  for (const Case& c : {Case{"gzip", ".gz", 8}, Case{"zstd", ".zst", 2}, Case{"xz", ".xz", 14}}) {
    const std::string good = t.file(std::string("t.tar") + c.ext);
    REQUIRE(RunCommand(std::string(c.tool) + " -k -f -c " + t.file("t.tar") + " > " + good, &out) == 0);
    std::string bytes = Slurp(good);
    for (const char* where : {"intact", "trailer", "middle"}) {
      DYNAMIC_SECTION(c.tool << " " << where) {
        std::string b = bytes;
        const std::string w = where;
        if (w == "trailer") b[b.size() - size_t(c.trailer)] ^= 0x01;
        if (w == "middle") b[b.size() / 2] ^= 0x01;
        const std::string path = t.file(std::string("x.tar") + c.ext);
        std::ofstream(path, std::ios::binary) << b;
        auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 2048), {});
        REQUIRE_OK(fs);
        auto st = (*fs)->PopulateFromTar(path, "/", {});
        if (w == "intact") {
          REQUIRE_OK(st);
          std::ostringstream o;
          REQUIRE_OK((*fs)->ReadFile("/f", o));
          CHECK(o.str() == Slurp(src + "/f"));
        } else {
          REQUIRE_FALSE(st.ok());
          CHECK(st.status().code() == Code::kCorruption);
          CHECK(st.status().message().find(path) != std::string::npos);
        }
        REQUIRE_OK((*fs)->Close());
      }
    }
  }
  SECTION("several gzip members and zero padding are one valid stream") {
    const std::string a = t.file("a.tar.gz");
    REQUIRE(RunCommand("head -c 100000 " + t.file("t.tar") + " | gzip -c > " + a + "; "
                       "tail -c +100001 " + t.file("t.tar") + " | gzip -c >> " + a + "; "
                       "head -c 512 /dev/zero >> " + a,
                       &out) == 0);
    auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 2048), {});
    REQUIRE_OK(fs);
    REQUIRE_OK((*fs)->PopulateFromTar(a, "/", {}));
    std::ostringstream o;
    REQUIRE_OK((*fs)->ReadFile("/f", o));
    CHECK(o.str() == Slurp(src + "/f"));
  }
}

// Found by the fuzz soak: a root inode that is a regular file of size
// ~2^63 made extract stream exabytes of zeros into a tar.
TEST_CASE("a root that is not a directory, a file larger than ext4 allows: Corruption",
          "[fsbridge][hostile]") {
  TempDir t;
  const std::string img = OneFileImage(t, "ext4");
  std::string out;
  const std::string big = t.file("big.img");
  sfs::copy_file(img, big);
  // debugfs (the e2fsprogs oracle) makes the damage.
  REQUIRE(RunCommand("debugfs -w -R 'sif /f size 0x7000000000000000' " + big, &out) == 0);
  {
    auto o = Open(big);
    auto st = o->fs->ReadFile("/f", [](std::span<const uint8_t>) { return Status::Ok(); });
    CHECK(st.code() == Code::kCorruption);
    CHECK(st.message().find("larger than a file of this file system can be") != std::string::npos);
    CHECK(o->fs->ExtractToTar("/", t.file("out.tar")).code() == Code::kCorruption);
  }
  REQUIRE(RunCommand("debugfs -w -R 'sif <2> mode 0100644' " + img, &out) == 0);
  auto dev = FileDevice::Open(img, FileDeviceOptions{});
  REQUIRE_OK(dev);
  auto fs = Filesystem::Open(std::move(dev).value(), false);
  CHECK(fs.status().code() == Code::kCorruption);
  CHECK(fs.status().message().find("root inode (2) is not a directory") != std::string::npos);
}

// Found in sitting 17: a plain tarball's sparse member may claim any size.
// One of 2^50 bytes used to wrap its block numbers: exit 0, and an image
// e2fsck calls broken. Now OutOfRange before the file is made.
TEST_CASE("a tar member larger than an ext4 file holds is OutOfRange and the image stays sound",
          "[fsbridge][hostile]") {
  TempDir t;
  const std::string tar = t.file("huge.tar");
  // A GNU PAX 1.0 sparse member: 2 data bytes at the end of 2^50.
  const std::string py =
      "import io, sys, tarfile\n"
      "real = int(sys.argv[2])\n"
      "m = b'1\\n%d\\n2\\n' % (real - 2)\n"
      "d = m + b'\\0' * (-len(m) % 512) + b'hi'\n"
      "with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:\n"
      "    for name, data, pax in (('GNUSparseFile.0/big', d, {'GNU.sparse.major': '1',\n"
      "            'GNU.sparse.minor': '0', 'GNU.sparse.name': 'big',\n"
      "            'GNU.sparse.realsize': str(real)}), ('small', b'ok', {})):\n"
      "        ti = tarfile.TarInfo(name); ti.size = len(data); ti.pax_headers = pax\n"
      "        t.addfile(ti, io.BytesIO(data))\n";
  WriteHostFile(t.file("mk.py"), std::vector<uint8_t>(py.begin(), py.end()));
  std::string out;
  for (const uint64_t real : {uint64_t(1) << 50, uint64_t(1) << 32}) {
    DYNAMIC_SECTION("size " << real) {
      REQUIRE(RunCommand("python3 " + t.file("mk.py") + " " + tar + " " + std::to_string(real),
                         &out) == 0);
      auto fs = Filesystem::Mkfs(MakeDevice(DevKind::kMem, 16 << 20, t, "fs"), {});
      REQUIRE_OK(fs);
      auto st = (*fs)->PopulateFromTar(tar, "/", {});
      if (real > (uint64_t(1) << 44)) {  // beyond (2^32 - 1) 4 KiB blocks
        REQUIRE_FALSE(st.ok());
        CHECK(st.status().code() == Code::kOutOfRange);
        CHECK(st.status().message().find("/big: 1125899906842624 bytes, more than an ext4 "
                                         "file holds") != std::string::npos);
        CHECK((*fs)->Stat("/big").status().code() == Code::kNotFound);
      } else {  // 4 GiB: fine, and sparse
        REQUIRE_OK(st);
        auto big = (*fs)->Stat("/big");
        REQUIRE_OK(big);
        CHECK(big->size == real);
        CHECK(ReadAll(**fs, "/small") == "ok");
      }
      REQUIRE_OK((*fs)->Close());
      auto dev = (*fs)->Release();
      const int rc = E2fsck(DumpImage(*dev, t, "check.img"), &out);
      INFO(out);
      CHECK(rc == 0);
    }
  }
}

// Found by the fuzz soak in sitting 17: a tar export trusted i_blocks to
// decide whether a file has holes. An inode claiming as many blocks as its
// (crafted, huge) size made the tar hold every byte of it, zeros and all:
// a 40 KiB image wrote a 24 GB tar. The sparse map now comes from the
// block map itself.
TEST_CASE("a tar export writes holes as holes whatever i_blocks claims", "[fsbridge][hostile]") {
  TempDir t;
  std::string out;
  for (const char* kind : {"ext4", "ext2"}) {  // extent-mapped, block-mapped
    DYNAMIC_SECTION(kind) {
      const std::string img = OneFileImage(t, kind);
      REQUIRE(RunCommand("debugfs -w -R 'sif /f size 0x40000000' " + img, &out) == 0);
      REQUIRE(RunCommand("debugfs -w -R 'sif /f blocks 0x7fffffff' " + img, &out) == 0);
      auto o = Open(img);
      const std::string tar = t.file("out.tar");
      REQUIRE_OK(o->fs->ExtractToTar("/", tar));
      CHECK(sfs::file_size(tar) < (1u << 20));
      REQUIRE(RunCommand("tar -tvf " + tar + " ./f", &out) == 0);
      CHECK(out.find(" 1073741824 ") != std::string::npos);
      INFO(out);
      std::string head;
      REQUIRE(RunCommand("tar -xOf " + tar + " ./f 2>/dev/null | head -c 4", &head) == 0);
      CHECK(head == "data");
    }
  }
}

// A tar export reads a file's data by its map, holes included: a block-
// mapped (ext2/ext3) file was read through ext2fs_file_read, block by block,
// so a crafted i_size of terabytes over one mapped block took hours of
// reading zeros (the tar stayed small). Both kinds now find their holes in
// the map; without that this case does not end within ctest's timeout.
TEST_CASE("a tar export of a huge sparse file reads its map and not its size", "[fsbridge][hostile]") {
  TempDir t;
  std::string out;
  for (const char* kind : {"ext4", "ext2"}) {  // extent-mapped, block-mapped
    DYNAMIC_SECTION(kind) {
      const std::string img = OneFileImage(t, kind, 4096);  // ext2: a map of 4 TiB at most
      REQUIRE(RunCommand("debugfs -w -R 'sif /f size 0x20000000000' " + img, &out) == 0);  // 2 TiB
      auto o = Open(img);
      const std::string tar = t.file("out.tar");
      REQUIRE_OK(o->fs->ExtractToTar("/", tar));
      CHECK(sfs::file_size(tar) < (1u << 20));
      REQUIRE(RunCommand("tar -tvf " + tar + " ./f", &out) == 0);
      INFO(out);
      CHECK(out.find(" 2199023255552 ") != std::string::npos);
    }
  }
  SECTION("past what a block map addresses: Corruption") {
    const std::string img = OneFileImage(t, "ext2");  // 1 KiB blocks: about 16 GiB
    REQUIRE(RunCommand("debugfs -w -R 'sif /f size 0x20000000000' " + img, &out) == 0);
    auto o = Open(img);
    auto st = o->fs->ReadFile("/f", [](std::span<const uint8_t>) { return Status::Ok(); });
    CHECK(st.code() == Code::kCorruption);
    CHECK(st.message().find("larger than its block map can address (17247252480)") !=
          std::string::npos);
  }
}

// Found in sitting 19: a map the readers did not follow (an extent at block
// 0, out of order, outside the file system) sent them to ext2fs_file_read,
// which reads a file block by block, holes too: an 8 MiB image whose file
// claimed 2 TiB over such a map kept `fs get` busy for hours. Every reader
// now refuses a damaged map at once (it did not end within ctest's timeout).
TEST_CASE("a damaged map is Corruption at once whatever size the file claims",
          "[fsbridge][hostile]") {
  TempDir t;
  std::string out;
  struct Case {
    const char* name;
    const char* kind;
    std::vector<std::string> edits;  // debugfs commands
    const char* why;
  };
  // An extent-mapped /f's i_block: [0..2] the header, then 3 words per
  // extent (first logical block, length, physical block).
  const std::vector<Case> cases = {
      {"extent at block 0", "ext4", {"sif /f block[5] 0"}, "points outside the file system"},
      {"extent past the end of the file system", "ext4", {"sif /f block[5] 0x7fffffff"},
       "points outside the file system"},
      {"extents out of order", "ext4", {"sif /f block[3] 9", "sif /f block[6] 0"},
       "is out of order or overlaps itself"},
      {"block map outside the file system", "ext2", {"sif /f block[0] 0x7fffffff"},
       "points outside the file system"},
  };
  for (const Case& k : cases) {
    DYNAMIC_SECTION(k.name) {
      const std::string src = t.file("src");
      sfs::create_directories(src);
      {  // data at block 0 and at block 9: two extents (ext4)
        std::ofstream f(src + "/f");
        f << "data";
        f.seekp(9 * 1024);
        f << "more";
      }
      const std::string img = t.file("img");
      REQUIRE(RunCommand(std::string("mke2fs -q -t ") + k.kind + " -b 1024 -d " + src + " " + img +
                             " 4M",
                         &out) == 0);
      for (const std::string& e : k.edits)
        REQUIRE(RunCommand("debugfs -w -R '" + e + "' " + img, &out) == 0);
      // 2 TiB for ext4; ext2's 1 KiB block map addresses about 16 GiB.
      const char* size = std::string(k.kind) == "ext4" ? "0x20000000000" : "0x3c0000000";
      REQUIRE(RunCommand(std::string("debugfs -w -R 'sif /f size ") + size + "' " + img, &out) == 0);
      auto o = Open(img);
      uint64_t passed = 0;
      auto st = o->fs->ReadFile("/f", [&](std::span<const uint8_t> d) {
        passed += d.size();
        return Status::Ok();
      });
      CHECK(st.code() == Code::kCorruption);
      CHECK(st.message() == std::string("/f: its block map ") + k.why + ": run e2fsck");
      CHECK(passed == 0);  // refused before a byte
      const std::string host = t.file("got");
      UniqueFd fd(::open(host.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600));
      CHECK(o->fs->ReadFileTo("/f", fd.get(), host).code() == Code::kCorruption);
      CHECK(o->fs->ExtractToTar("/", t.file("out.tar")).code() == Code::kCorruption);
      sfs::create_directories(t.file("x"));
      CHECK(o->fs->ExtractToDirectory("/", t.file("x")).code() == Code::kCorruption);
      sfs::remove_all(src);
      sfs::remove_all(t.file("x"));
    }
  }
}

// Found by the fuzz soak in sitting 19 (a 40 KiB image, a 2 GiB tar): maps
// that reuse the file system's blocks, within one file or across files,
// repeat a few MiB into any amount of output. ext4 shares no block, so a
// file, and all files of one extract, hold at most the file system's size.
TEST_CASE("maps that reuse blocks cannot make more data than the file system holds",
          "[fsbridge][hostile]") {
  TempDir t;
  std::string out;
  const std::string src = t.file("src");
  sfs::create_directories(src);
  for (const char* n : {"a", "b"}) std::ofstream(src + "/" + n) << "data";
  const std::string img = t.file("img");
  REQUIRE(RunCommand("mke2fs -q -t ext4 -b 1024 -d " + src + " " + img + " 4M", &out) == 0);
  // i_block of an inode holding `n` extents of `len` blocks, all at block 300.
  auto set_extents = [&](const std::string& file, int n, int len) {
    std::vector<std::string> cmds = {
        "sif " + file + " block[0] " + std::to_string((n << 16) | 0xf30a),
        "sif " + file + " block[1] 4", "sif " + file + " block[2] 0",
        "sif " + file + " size " + std::to_string(uint64_t(n) * len * 1024)};
    for (int k = 0; k < n; ++k) {
      cmds.push_back("sif " + file + " block[" + std::to_string(3 + 3 * k) + "] " +
                     std::to_string(k * len));
      cmds.push_back("sif " + file + " block[" + std::to_string(4 + 3 * k) + "] " +
                     std::to_string(len));
      cmds.push_back("sif " + file + " block[" + std::to_string(5 + 3 * k) + "] 300");
    }
    for (const std::string& c : cmds) REQUIRE(RunCommand("debugfs -w -R '" + c + "' " + img, &out) == 0);
  };
  SECTION("one file") {
    set_extents("/a", 4, 1500);  // 6000 KiB of data in a 4 MiB file system
    auto o = Open(img);
    auto st = o->fs->ReadFile("/a", [](std::span<const uint8_t>) { return Status::Ok(); });
    CHECK(st.code() == Code::kCorruption);
    CHECK(st.message() == "/a: its block map maps more data than the file system holds: run e2fsck");
    CHECK(o->fs->ExtractToTar("/", t.file("out.tar")).code() == Code::kCorruption);
  }
  SECTION("two files") {
    set_extents("/a", 1, 3000);  // each fits, both do not
    set_extents("/b", 1, 3000);
    auto o = Open(img);
    uint64_t got = 0;
    REQUIRE_OK(o->fs->ReadFile("/b", [&](std::span<const uint8_t> d) {
      got += d.size();
      return Status::Ok();
    }));
    CHECK(got == 3000 * 1024);
    auto st = o->fs->ExtractToTar("/", t.file("out.tar"));
    CHECK(st.code() == Code::kCorruption);
    CHECK(st.message().find("hold more data than the file system does") != std::string::npos);
    CHECK(sfs::file_size(t.file("out.tar")) < (4u << 20));
    sfs::create_directories(t.file("x"));
    st = o->fs->ExtractToDirectory("/", t.file("x"));
    CHECK(st.code() == Code::kCorruption);
    CHECK(st.message().find("hold more data than the file system does") != std::string::npos);
  }
}

// Extents preallocated past i_size (fallocate --keep-size) are part of a
// sound map: more leaves than the file has blocks sent such a file to the
// slow fallback before. It reads by its map, and a tar holds it whole.
TEST_CASE("extents preallocated past the end of a file are skipped and not refused",
          "[fsbridge][hostile]") {
  TempDir t;
  std::string out;
  const std::string img = OneFileImage(t, "ext4");
  for (int a : {10, 20, 30, 40, 50})  // five unwritten extents past the 4-byte file
    REQUIRE(RunCommand("debugfs -w -R 'fallocate /f " + std::to_string(a) + " " +
                           std::to_string(a + 1) + "' " + img,
                       &out) == 0);
  REQUIRE(E2fsck(img, &out) == 0);
  auto o = Open(img);
  CHECK(ReadAll(*o->fs, "/f") == "data");
  const std::string tar = t.file("out.tar");
  REQUIRE_OK(o->fs->ExtractToTar("/", tar));
  std::string head;
  REQUIRE(RunCommand("tar -xOf " + tar + " ./f", &head) == 0);
  CHECK(head == "data");
}

// A hole is skipped when a file is written out to the host, never made as
// zeros: a 16 TiB sparse file (the most 4 KiB blocks address) comes out at
// its size, sparse, with its last bytes.
TEST_CASE("fs get of the largest sparse file ext4 holds writes only its data",
          "[fsbridge][hostile]") {
  TempDir t;
  std::string out;
  const std::string src = t.file("src");
  sfs::create_directories(src);
  const uint64_t size = (uint64_t(1) << 44) - 4096;  // ext4's limit with 4 KiB blocks
  {
    std::ofstream f(src + "/big");
    f << "head";
  }
  REQUIRE(::truncate((src + "/big").c_str(), off_t(size)) == 0);
  {
    std::fstream f(src + "/big", std::ios::in | std::ios::out);
    f.seekp(std::streamoff(size - 4));
    f << "tail";
  }
  const std::string img = t.file("img");
  REQUIRE(RunCommand("mke2fs -q -t ext4 -b 4096 -d " + src + " " + img + " 16M", &out) == 0);
  auto o = Open(img);
  const std::string host = t.file("got");
  {
    UniqueFd fd(::open(host.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600));
    REQUIRE_OK(o->fs->ReadFileTo("/big", fd.get(), host));
  }
  struct stat st {};
  REQUIRE(::stat(host.c_str(), &st) == 0);
  CHECK(uint64_t(st.st_size) == size);
  CHECK(uint64_t(st.st_blocks) * 512 < (1u << 20));
  std::ifstream in(host);
  char b[4];
  in.read(b, 4);
  CHECK(std::string(b, 4) == "head");
  in.seekg(std::streamoff(size - 4));
  in.read(b, 4);
  CHECK(std::string(b, 4) == "tail");
}

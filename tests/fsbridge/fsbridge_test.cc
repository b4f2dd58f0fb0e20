// fsbridge tests: mkfs, populate (directory and tar), read, edit, extract,
// reproducibility and bad input, every image checked by e2fsck -fn and a
// sample read back with debugfs (independent readers).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "block/fault_device.h"
#include "block/file_device.h"
#include "block/mem_device.h"
#include "fs_test_util.h"
#include "fsbridge/filesystem.h"
#include "tree_compare.h"

using namespace stack;
using namespace stack::testing;
using stack::fsbridge::Filesystem;
using stack::fsbridge::MkfsOptions;
using stack::fsbridge::PopulateOptions;

namespace {

// Closes fs, dumps the device to an image and runs e2fsck -fn on it.
std::string CloseAndCheck(std::unique_ptr<Filesystem> fs, const TempDir& t, const std::string& name,
                          std::unique_ptr<BlockDevice>* dev_out = nullptr) {
  REQUIRE_OK(fs->Close());
  auto dev = fs->Release();
  const std::string img = DumpImage(*dev, t, name);
  std::string out;
  int rc = E2fsck(img, &out);
  INFO(out);
  REQUIRE(rc == 0);
  if (dev_out) *dev_out = std::move(dev);
  return img;
}

MkfsOptions Repro() {
  MkfsOptions o;
  o.uuid = std::array<uint8_t, 16>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  o.timestamp = 1700000000;
  o.label = "repro";
  return o;
}

}  // namespace

TEST_CASE("mkfs gives a clean ext4 with the Debian profile", "[fsbridge]") {
  for (DevKind k : DevicesUnderTest()) {
    SECTION(DevName(k)) {
      TempDir t;
      MkfsOptions o;
      o.label = "golden";
      auto fs = Filesystem::Mkfs(MakeDevice(k, 64 * kMiB, t, "a"), o);
      REQUIRE_OK(fs);
      auto df = (*fs)->Df();
      REQUIRE_OK(df);
      CHECK(df->block_size == 4096);
      CHECK(df->blocks_total == 64 * kMiB / 4096);
      CHECK(df->label == "golden");
      CHECK(df->inodes_total == 64 * kMiB / 16384);
      const std::string img = CloseAndCheck(std::move(*fs), t, "a");
      std::string out;
      REQUIRE(RunCommand("dumpe2fs -h " + img, &out) == 0);
      for (const char* f : {"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype",
                            "extent", "64bit", "flex_bg", "sparse_super", "large_file",
                            "huge_file", "dir_nlink", "extra_isize", "metadata_csum"})
        CHECK(out.find(f) != std::string::npos);
      CHECK(out.find("Total journal size:") != std::string::npos);
      CHECK(out.find("Inode size:\t          256") != std::string::npos);
    }
  }
}

TEST_CASE("block size follows the device", "[fsbridge]") {
  TempDir t;
  auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(512, 32 * kMiB / 512), {});
  REQUIRE_OK(fs);
  CHECK((*fs)->Df()->block_size == 4096);
  MkfsOptions small;
  small.block_size = 1024;
  CHECK(CodeOf(Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 32 * kMiB / 4096), small)) ==
        Code::kInvalidArgument);
  auto fs2 = Filesystem::Mkfs(std::make_unique<MemDevice>(1024, 32 * kMiB / 1024), small);
  REQUIRE_OK(fs2);
  CHECK((*fs2)->Df()->block_size == 1024);
  CloseAndCheck(std::move(*fs2), t, "bs1k");
  CHECK(CodeOf(Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 256), {})) == Code::kInvalidArgument);
}

TEST_CASE("round trip: directory -> image -> extract, with debugfs as second reader", "[fsbridge]") {
  for (DevKind k : DevicesUnderTest()) {
    SECTION(DevName(k)) {
      TempDir t;
      const std::string src = t.file("src");
      MakeRichTree(src);
      auto fs = Filesystem::Mkfs(MakeDevice(k, 128 * kMiB, t, "img"), {});
      REQUIRE_OK(fs);
      auto st = (*fs)->PopulateFromDirectory(src, "/", {});
      REQUIRE_OK(st);
      CHECK(st->hardlinks == 2);
      CHECK(st->symlinks == 2);
      std::unique_ptr<BlockDevice> dev;
      const std::string img = CloseAndCheck(std::move(*fs), t, "img", &dev);

      // debugfs, an independent reader.
      std::string out;
      REQUIRE(RunCommand("debugfs -R 'cat /dir/random.bin' " + img + " 2>/dev/null", &out) == 0);
      CHECK(out.find(Slurp(src + "/dir/random.bin")) != std::string::npos);
      REQUIRE(RunCommand("debugfs -R 'stat /sparse.img' " + img, &out) == 0);
      CHECK(out.find("Size: 12582912") != std::string::npos);
      CHECK(out.find("Blockcount: 48") != std::string::npos);  // 2 x 3 blocks of 4 KiB
      REQUIRE(RunCommand("debugfs -R 'stat /small.txt' " + img, &out) == 0);
      CHECK(out.find("Links: 3") != std::string::npos);
      CHECK(out.find("crtime:") != std::string::npos);
      CHECK(out.find("user.note") != std::string::npos);

      auto ro = Filesystem::Open(std::move(dev), false);
      REQUIRE_OK(ro);
      auto info = (*ro)->Stat("/sparse.img");
      REQUIRE_OK(info);
      CHECK(info->size == 12 * kMiB);
      CHECK(info->allocated_bytes == 6 * 4096);
      CHECK(info->mtime.nsec == 123456800);  // as MakeRichTree set it
      auto ls = (*ro)->List("/");
      REQUIRE_OK(ls);
      size_t n_src = 0;
      for (auto& e : std::filesystem::directory_iterator(src)) n_src += !e.path().empty();
      CHECK(ls->size() == n_src + 1);  // + lost+found
      auto sl = (*ro)->Stat("slow_link");
      REQUIRE_OK(sl);
      CHECK(sl->symlink_target == std::string(200, 'x') + "/target");
      CHECK(ReadAll(**ro, "/dir/sub/deeper/leaf") == Slurp(src + "/dir/sub/deeper/leaf"));
      CHECK(ReadAll(**ro, "/islands") == Slurp(src + "/islands"));

      const std::string out_dir = t.file("out");
      REQUIRE_OK((*ro)->ExtractToDirectory("/", out_dir));
      std::filesystem::remove_all(out_dir + "/lost+found");
      auto root = (*ro)->Stat("/");
      REQUIRE_OK(root);
      struct timespec ts[2] = {{time_t(root->atime.sec), long(root->atime.nsec)},
                               {time_t(root->mtime.sec), long(root->mtime.nsec)}};
      REQUIRE(::utimensat(AT_FDCWD, out_dir.c_str(), ts, 0) == 0);  // undo the rm above
      CHECK(CompareTrees(src, out_dir) == "");
      // Sparse files stay sparse on extraction.
      struct stat sb;
      REQUIRE(::stat((out_dir + "/sparse.img").c_str(), &sb) == 0);
      CHECK(uint64_t(sb.st_blocks) * 512 < 1 * kMiB);
    }
  }
}

TEST_CASE("tar import: GNU tar (sparse, long names, hard links) and bsdtar, compressed", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  MakeRichTree(src);
  const std::string longdir = src + "/" + std::string(120, 'd');
  std::filesystem::create_directories(longdir);
  std::ofstream(longdir + "/" + std::string(150, 'f')) << "long name content";
  struct Case {
    std::string name, cmd;
  };
  const std::vector<Case> cases = {
      {"gnu.tar.gz", "tar --format=gnu --sparse --xattrs -czf %o -C %s ."},
      {"pax.tar.xz", "tar --format=pax --sparse --xattrs -cJf %o -C %s ."},
      {"bsd.tar.zst", "bsdtar --zstd -cf %o -C %s ."},
      {"ustar.tar", "bsdtar --format=ustar -cf %o -C %s small.txt dir"},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      std::string cmd = c.cmd;
      cmd.replace(cmd.find("%o"), 2, t.file(c.name));
      cmd.replace(cmd.find("%s"), 2, src);
      std::string out;
      REQUIRE(RunCommand(cmd, &out) == 0);
      auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 128 * kMiB / 4096), {});
      REQUIRE_OK(fs);
      auto st = (*fs)->PopulateFromTar(t.file(c.name), "/imported", {});
      REQUIRE_OK(st);
      CHECK(ReadAll(**fs, "/imported/small.txt") == "hello\n");
      auto info = (*fs)->Stat("/imported/small.txt");
      REQUIRE_OK(info);
      CHECK(info->mode == (S_IFREG | 0604));
      if (c.name != "ustar.tar") {
        CHECK(info->nlink == 3);
        CHECK(ReadAll(**fs, "/imported/" + std::string(120, 'd') + "/" + std::string(150, 'f')) ==
              "long name content");
        auto sp = (*fs)->Stat("/imported/sparse.img");
        REQUIRE_OK(sp);
        CHECK(sp->size == 12 * kMiB);
        CHECK(sp->allocated_bytes < 1 * kMiB);
        CHECK(ReadAll(**fs, "/imported/sparse.img") == Slurp(src + "/sparse.img"));
        auto sl = (*fs)->Stat("/imported/slow_link");
        REQUIRE_OK(sl);
        CHECK(sl->symlink_target == std::string(200, 'x') + "/target");
        auto fifo = (*fs)->Stat("/imported/fifo");
        REQUIRE_OK(fifo);
        CHECK(fifo->type == fsbridge::FileType::kFifo);
        if (c.name != "bsd.tar.zst") CHECK(info->xattrs.size() == 1);
      }
      auto ri = (*fs)->Stat("/imported/dir/random.bin");
      REQUIRE_OK(ri);
      CHECK(ReadAll(**fs, "/imported/dir/random.bin") == Slurp(src + "/dir/random.bin"));
      if (geteuid() == 0) CHECK(ri->uid == 1234);
      CloseAndCheck(std::move(*fs), t, "tar");
    }
  }
}

TEST_CASE("export to tar and back is identical", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  MakeRichTree(src);
  std::filesystem::remove(src + "/sock");  // sockets are not archived (as GNU tar)
  struct timespec keep[2] = {{1500000000, 0}, {1500000007, 987654332}};
  ::utimensat(AT_FDCWD, src.c_str(), keep, 0);
  auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 128 * kMiB / 4096), {});
  REQUIRE_OK(fs);
  REQUIRE_OK((*fs)->PopulateFromDirectory(src, "/a", {}));
  REQUIRE_OK((*fs)->ExtractToTar("/a", t.file("a.tar")));
  REQUIRE_OK((*fs)->PopulateFromTar(t.file("a.tar"), "/b", {}));
  REQUIRE_OK((*fs)->ExtractToDirectory("/b", t.file("b")));
  CHECK(CompareTrees(src, t.file("b")) == "");
  // Holes stay holes through the tar (pax sparse entries).
  auto sp = (*fs)->Stat("/b/sparse.img");
  REQUIRE_OK(sp);
  CHECK(sp->allocated_bytes < 1 * kMiB);
  CHECK(std::filesystem::file_size(t.file("a.tar")) < 4 * kMiB);
  CHECK(ReadAll(**fs, "/b/islands") == Slurp(src + "/islands"));
  std::string out;
  REQUIRE(RunCommand("mkdir " + t.file("gnu") + " && tar -xf " + t.file("a.tar") + " -C " + t.file("gnu"), &out) == 0);
  CHECK(Slurp(t.file("gnu") + "/sparse.img") == Slurp(src + "/sparse.img"));
  CloseAndCheck(std::move(*fs), t, "exp");
}

TEST_CASE("reproducible mode gives bit-identical images", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  MakeRichTree(src);
  PopulateOptions po;
  po.timestamp = 1700000000;
  std::unique_ptr<BlockDevice> devs[2];
  for (int i = 0; i < 2; ++i) {
    auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 64 * kMiB / 4096), Repro());
    REQUIRE_OK(fs);
    REQUIRE_OK((*fs)->PopulateFromDirectory(src, "/", po));
    REQUIRE_OK((*fs)->Close());
    devs[i] = (*fs)->Release();
    if (i == 0) sleep(1);  // a leaked clock would show
  }
  CHECK(SameContent(*devs[0], *devs[1]));
  // Tar import is reproducible too, on file devices.
  REQUIRE(RunCommand("tar --format=pax -cf " + t.file("r.tar") + " -C " + src + " .", nullptr) == 0);
  std::unique_ptr<BlockDevice> tdevs[2];
  for (int i = 0; i < 2; ++i) {
    auto fs = Filesystem::Mkfs(MakeDevice(DevKind::kFile, 64 * kMiB, t, "rt" + std::to_string(i)), Repro());
    REQUIRE_OK(fs);
    REQUIRE_OK((*fs)->PopulateFromTar(t.file("r.tar"), "/", po));
    REQUIRE_OK((*fs)->Close());
    tdevs[i] = (*fs)->Release();
  }
  CHECK(SameContent(*tdevs[0], *tdevs[1]));
  CHECK(!SameContent(*tdevs[0], *devs[1]));
  auto fs = Filesystem::Open(std::move(devs[0]), false);
  REQUIRE_OK(fs);
  auto df = (*fs)->Df();
  CHECK(df->uuid == "01020304-0506-0708-090a-0b0c0d0e0f10");
  std::string img = CloseAndCheck(std::move(*fs), t, "r");
  std::string out;
  REQUIRE(RunCommand("dumpe2fs -h " + img, &out) == 0);
  CHECK(out.find("Filesystem created:       Tue Nov 14 22:13:20 2023") != std::string::npos);
}

TEST_CASE("edits keep the image clean", "[fsbridge]") {
  for (DevKind k : DevicesUnderTest()) {
    SECTION(DevName(k)) {
      TempDir t;
      const std::string src = t.file("src");
      MakeRichTree(src);
      auto mk = Filesystem::Mkfs(MakeDevice(k, 64 * kMiB, t, "e"), {});
      REQUIRE_OK(mk);
      REQUIRE_OK((*mk)->PopulateFromDirectory(src, "/", {}));
      std::unique_ptr<BlockDevice> dev;
      CloseAndCheck(std::move(*mk), t, "e0", &dev);
      int step = 0;
      auto edit = [&](const std::function<void(Filesystem&)>& f) {
        auto fs = Filesystem::Open(std::move(dev), true);
        REQUIRE_OK(fs);
        f(**fs);
        CloseAndCheck(std::move(*fs), t, "e" + std::to_string(++step), &dev);
      };
      edit([](Filesystem& fs) { REQUIRE_OK(fs.Mkdir("/a/b/c", true, 0700)); });
      edit([&](Filesystem& fs) {
        REQUIRE_OK(fs.PutFile(src + "/dir/random.bin", "/a/b/c/copy.bin"));
        REQUIRE_OK(fs.PutFile(src + "/dir", "/a/tree"));
      });
      edit([&](Filesystem& fs) {
        CHECK(ReadAll(fs, "/a/b/c/copy.bin") == Slurp(src + "/dir/random.bin"));
        CHECK(fs.Stat("/a/tree/sub/deeper/leaf").ok());
        CHECK(CodeOf(fs.Mkdir("/a", false)) == Code::kAlreadyExists);
        CHECK(CodeOf(fs.Remove("/a", false)) == Code::kInvalidArgument);
        REQUIRE_OK(fs.Remove("/dir", true));
        REQUIRE_OK(fs.Remove("/small.txt", false));  // hard links remain
        CHECK(CodeOf(fs.Stat("/dir")) == Code::kNotFound);
      });
      edit([](Filesystem& fs) {
        auto h = fs.Stat("/hardlink2");
        REQUIRE_OK(h);
        CHECK(h->nlink == 1);
        REQUIRE_OK(fs.Chmod("/hardlink2", 0600));
        REQUIRE_OK(fs.Chown("/hardlink2", 100000, 7));
        REQUIRE_OK(fs.Symlink("/some/where", "/a/link"));
        CHECK(CodeOf(fs.Symlink("x", "/a/link")) == Code::kAlreadyExists);
        REQUIRE_OK(fs.Remove("/a/tree", true));
      });
      edit([&](Filesystem& fs) {
        auto h = fs.Stat("/hardlink2");
        REQUIRE_OK(h);
        CHECK(h->mode == (S_IFREG | 0600));
        CHECK(h->uid == 100000);
        CHECK(h->gid == 7);
        CHECK(fs.Stat("/a/link")->symlink_target == "/some/where");
        auto df = fs.Df();
        REQUIRE_OK(df);
        CHECK(df->blocks_free < df->blocks_total);
        // One file out, to a directory and to a tar.
        REQUIRE_OK(fs.ExtractToDirectory("/hardlink2", t.file("one")));
        CHECK(Slurp(t.file("one") + "/hardlink2") == "hello\n");
        REQUIRE_OK(fs.ExtractToTar("/hardlink2", t.file("one.tar")));
        std::string out;
        REQUIRE(RunCommand("tar -tvf " + t.file("one.tar"), &out) == 0);
        CHECK(out.find("100000/7") != std::string::npos);
        CHECK(out.find("hardlink2") != std::string::npos);
      });
    }
  }
}

TEST_CASE("large directory: 20000 entries, htree, e2fsck clean", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("flat");
  std::filesystem::create_directories(src);
  for (int i = 0; i < 20000; ++i) std::ofstream(src + "/file_" + std::to_string(i * 7919 % 100003)) << i;
  MkfsOptions mo;
  mo.inode_ratio = 4096;
  uint32_t bs = 4096;
  SECTION("4 KiB blocks: one index level") {}
  SECTION("1 KiB blocks: two index levels") {
    bs = 1024;
    mo.block_size = 1024;
  }
  auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(bs, 256 * kMiB / bs), mo);
  REQUIRE_OK(fs);
  REQUIRE_OK((*fs)->PopulateFromDirectory(src, "/big", {}));
  auto ls = (*fs)->List("/big");
  REQUIRE_OK(ls);
  CHECK(ls->size() == 20000);
  CHECK(ReadAll(**fs, "/big/file_" + std::to_string(12345 * 7919 % 100003)) == "12345");
  // Editing the indexed directory keeps it indexed and clean.
  REQUIRE_OK((*fs)->Remove("/big/file_0", false));
  REQUIRE_OK((*fs)->Symlink("t", "/big/zz_new_link"));
  const std::string img = CloseAndCheck(std::move(*fs), t, "big");
  std::string out;
  REQUIRE(RunCommand("debugfs -R 'htree /big' " + img + " 2>&1 | head -5", &out) == 0);
  CHECK(out.find("Root node dump") != std::string::npos);
  REQUIRE(RunCommand("debugfs -R 'htree /big' " + img + " 2>&1 | grep -m1 'Indirect levels'", &out) == 0);
  CHECK(out.find(bs == 1024 ? "Indirect levels: 1" : "Indirect levels: 0") != std::string::npos);
  REQUIRE(RunCommand("debugfs -R 'stat /big' " + img, &out) == 0);
  CHECK(out.find("Flags: 0x81000") != std::string::npos);  // INDEX_FL | EXTENTS_FL
}

TEST_CASE("manifest overrides owner, mode and mtime", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  MakeRichTree(src);
  std::ofstream(t.file("m.txt")) << "# test manifest\n*  uid=0 gid=0\n. mode=0711\n"
                                    "dir/random.bin uid=33 gid=44 mode=4755 mtime=1234.5\n"
                                    "emp\\164y mode=0400\n"
                                    "small.txt mode=0440 uid=7\n";
  auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 64 * kMiB / 4096), {});
  REQUIRE_OK(fs);
  PopulateOptions po;
  po.manifest_path = t.file("m.txt");
  REQUIRE_OK((*fs)->PopulateFromDirectory(src, "/", po));
  auto r = (*fs)->Stat("/dir/random.bin");
  CHECK(r->uid == 33);
  CHECK(r->gid == 44);
  CHECK(r->mode == (S_IFREG | 04755));
  CHECK(r->mtime == fsbridge::Timespec{1234, 500000000});
  CHECK((*fs)->Stat("/")->mode == (S_IFDIR | 0711));
  CHECK((*fs)->Stat("/empty")->mode == (S_IFREG | 0400));
  // small.txt is a later name of a hard-linked inode: its entry applies.
  CHECK((*fs)->Stat("/small.txt")->mode == (S_IFREG | 0440));
  CHECK((*fs)->Stat("/dir/hardlink_to_small")->uid == 7);
  CHECK((*fs)->Stat("/fifo")->uid == 0);
  std::ofstream(t.file("bad.txt")) << "x owner=root\n";
  po.manifest_path = t.file("bad.txt");
  CHECK(CodeOf((*fs)->PopulateFromDirectory(src, "/", po)) == Code::kInvalidArgument);
  CloseAndCheck(std::move(*fs), t, "m");
}

TEST_CASE("bad input is refused and leaves the image clean", "[fsbridge]") {
  TempDir t;
  auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 32 * kMiB / 4096), {});
  REQUIRE_OK(fs);
  Filesystem& f = **fs;
  // A file larger than the filesystem.
  {
    int fd = ::open(t.file("huge").c_str(), O_WRONLY | O_CREAT, 0644);
    auto d = RandomBytes(1 << 20, 3);
    for (int i = 0; i < 40; ++i) REQUIRE(::write(fd, d.data(), d.size()) == ssize_t(d.size()));
    ::close(fd);
  }
  auto s = f.PutFile(t.file("huge"), "/huge");
  CHECK(CodeOf(s) == Code::kNoSpace);
  CHECK(s.message().find("/huge") != std::string::npos);
  CHECK(CodeOf(f.Stat("/huge")) == Code::kNotFound);
  // Space was given back: a small file still fits.
  std::ofstream(t.file("smallfile")) << "ok";
  REQUIRE_OK(f.PutFile(t.file("smallfile"), "/smallfile"));
  // Names over 255 bytes, missing sources.
  std::ofstream(t.file(std::string(255, 'n'))) << "x";
  CHECK(CodeOf(f.Mkdir("/" + std::string(256, 'a'), false)) == Code::kInvalidArgument);
  CHECK(CodeOf(f.PutFile(t.file("nope"), "/x")) == Code::kNotFound);
  CHECK(CodeOf(f.PopulateFromDirectory(t.file("nope"), "/", {})) == Code::kNotFound);
  CHECK(CodeOf(f.PopulateFromTar(t.file("nope.tar"), "/", {})) == Code::kNotFound);
  // Tar with "..": rejected; absolute names: confined under the destination.
  std::string out;
  REQUIRE(RunCommand("/usr/bin/python3 -c \"import tarfile,io\n"
                     "t=tarfile.open('" + t.file("evil.tar") + "','w')\n"
                     "i=tarfile.TarInfo('a/../../escape'); d=b'x'; i.size=1; t.addfile(i, io.BytesIO(d))\n"
                     "t.close()\n"
                     "t=tarfile.open('" + t.file("abs.tar") + "','w')\n"
                     "i=tarfile.TarInfo('/etc/abs'); i.size=1; t.addfile(i, io.BytesIO(b'y'))\n"
                     "t.close()\"", &out) == 0);
  CHECK(CodeOf(f.PopulateFromTar(t.file("evil.tar"), "/t", {})) == Code::kInvalidArgument);
  REQUIRE(RunCommand("/usr/bin/python3 -c \"import tarfile,io\n"
                     "t=tarfile.open('" + t.file("long.tar") + "','w',format=tarfile.PAX_FORMAT)\n"
                     "i=tarfile.TarInfo('d/' + 'n'*256); i.size=1; t.addfile(i, io.BytesIO(b'z'))\n"
                     "t.close()\"", &out) == 0);
  auto lt = f.PopulateFromTar(t.file("long.tar"), "/l", {});
  CHECK(CodeOf(lt) == Code::kInvalidArgument);
  CHECK(lt.status().message().find("255") != std::string::npos);
  REQUIRE_OK(f.PopulateFromTar(t.file("abs.tar"), "/t", {}));
  CHECK(ReadAll(f, "/t/etc/abs") == "y");
  // Truncated and corrupt tars.
  REQUIRE(RunCommand("tar -cf " + t.file("ok.tar") + " -C " + t.path().string() + " huge", &out) == 0);
  std::filesystem::resize_file(t.file("ok.tar"), 3 * kMiB + 100);
  CHECK(CodeOf(f.PopulateFromTar(t.file("ok.tar"), "/trunc", {})) == Code::kCorruption);
  std::ofstream(t.file("garbage.tar")) << std::string(10000, 'Z');
  CHECK(!f.PopulateFromTar(t.file("garbage.tar"), "/g", {}).ok());
  CloseAndCheck(std::move(*fs), t, "bad");
  // Not an ext4 image.
  auto dev = std::make_unique<MemDevice>(4096, 1024);
  REQUIRE_OK(dev->Write(0, RandomBytes(4096 * 4, 5)));
  CHECK(CodeOf(Filesystem::Open(std::move(dev), false)) == Code::kCorruption);
}

TEST_CASE("two images open at once", "[fsbridge]") {
  TempDir t;
  auto a = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 32 * kMiB / 4096), {});
  auto b = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 32 * kMiB / 4096), {});
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  REQUIRE_OK((*a)->Mkdir("/only_a", false));
  REQUIRE_OK((*b)->Mkdir("/only_b", false));
  CHECK(CodeOf((*a)->Stat("/only_b")) == Code::kNotFound);
  CHECK((*b)->Stat("/only_b").ok());
  CloseAndCheck(std::move(*a), t, "a");
  CloseAndCheck(std::move(*b), t, "b");
}

TEST_CASE("device errors come back with the device's code", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  MakeRichTree(src);
  for (Code code : {Code::kIoError, Code::kNoSpace}) {
    auto ctl = std::make_shared<FaultController>();
    auto dev = std::make_unique<FaultDevice>(std::make_unique<MemDevice>(4096, 8192), ctl);
    auto fs = Filesystem::Mkfs(std::move(dev), {});
    REQUIRE_OK(fs);
    ctl->FailOperation(ctl->ops() + 3, code, true);
    auto st = (*fs)->PopulateFromDirectory(src, "/", {});
    Status close = (*fs)->Close();
    CHECK((CodeOf(st) == code || CodeOf(close) == code));
    CHECK(!close.ok());
  }
}

// A tar export stopped by an error ends where the error came: the archive
// used to be finished on the way out, its open entry padded with zeros to
// the size its header declared (a hostile size made that gigabytes).
TEST_CASE("a tar export that fails is not padded out to its entry's size", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  std::filesystem::create_directories(src);
  {
    std::ofstream f(src + "/big");
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 48; ++i) f << chunk;
  }
  const std::string img = t.file("img");
  std::string out;
  REQUIRE(RunCommand("mke2fs -q -t ext4 -b 4096 -d " + src + " " + img + " 64M", &out) == 0);
  auto file = FileDevice::Open(img, FileDeviceOptions{});
  REQUIRE_OK(file);
  auto ctl = std::make_shared<FaultController>();
  auto fs = Filesystem::Open(std::make_unique<FaultDevice>(std::move(file).value(), ctl), false);
  REQUIRE_OK(fs);
  ctl->FailOperation(ctl->ops() + 8, Code::kIoError, true);  // inside /big's data
  const std::string tar = t.file("out.tar");
  CHECK(CodeOf((*fs)->ExtractToTar("/", tar)) == Code::kIoError);
  CHECK(std::filesystem::file_size(tar) < (40u << 20));
}

TEST_CASE("images made by mke2fs -d open, read and edit", "[fsbridge]") {
  TempDir t;
  const std::string src = t.file("src");
  MakeRichTree(src);
  std::string out;
  for (const char* bs : {"1024", "4096"}) {
    SECTION(std::string("block size ") + bs) {
      const std::string img = t.file("m.img");
      REQUIRE(RunCommand("mke2fs -q -F -t ext4 -b " + std::string(bs) + " -d " + src + " " + img + " 64M",
                         &out) == 0);
      FileDeviceOptions o;
      o.block_size = 4096;  // with 1 KiB fs blocks every write is read-modify-write
      auto dev = FileDevice::Open(img, o);
      REQUIRE_OK(dev);
      auto fs = Filesystem::Open(std::move(dev).value(), true);
      REQUIRE_OK(fs);
      CHECK(ReadAll(**fs, "/dir/random.bin") == Slurp(src + "/dir/random.bin"));
      REQUIRE_OK((*fs)->ExtractToDirectory("/", t.file("x")));
      std::filesystem::remove_all(t.file("x") + "/lost+found");
      REQUIRE_OK((*fs)->Mkdir("/new", false));
      REQUIRE_OK((*fs)->PutFile(src + "/dir", "/new/dir"));
      REQUIRE_OK((*fs)->Remove("/empty_dir", false));
      REQUIRE_OK((*fs)->Close());
      CHECK(E2fsck(img, &out) == 0);
      INFO(out);
      // mke2fs -d drops nanoseconds, so compare content, types and modes.
      for (auto& e : std::filesystem::recursive_directory_iterator(src)) {
        const std::string rel = e.path().string().substr(src.size());
        const std::string got = t.file("x") + rel;
        struct stat a, b;
        REQUIRE(::lstat(e.path().c_str(), &a) == 0);
        INFO(rel);
        REQUIRE(::lstat(got.c_str(), &b) == 0);
        CHECK(a.st_mode == b.st_mode);
        if (S_ISREG(a.st_mode)) CHECK(Slurp(e.path()) == Slurp(got));
      }
    }
  }
}

TEST_CASE("running out of inodes is NoSpace and leaves the image clean", "[fsbridge]") {
  TempDir t;
  MkfsOptions o;
  o.inode_ratio = 4 << 20;  // as few inodes as the layout allows
  auto fs = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 32 * kMiB / 4096), o);
  REQUIRE_OK(fs);
  const uint64_t free_inodes = (*fs)->Df()->inodes_free;
  const std::string src = t.file("many");
  std::filesystem::create_directories(src);
  for (uint64_t i = 0; i < free_inodes + 5; ++i) std::ofstream(src + "/f" + std::to_string(i)) << i;
  auto st = (*fs)->PopulateFromDirectory(src, "/d", {});
  CHECK(CodeOf(st) == Code::kNoSpace);
  CHECK(st.status().message().find("creating /d/") != std::string::npos);
  CHECK((*fs)->Df()->inodes_free == 0);
  CloseAndCheck(std::move(*fs), t, "inodes");
}

namespace {
// Block `n` of the image file (4 KiB blocks).
std::string ImageBlock(const std::string& img, uint64_t n) {
  std::ifstream f(img, std::ios::binary);
  f.seekg(std::streamoff(n * 4096));
  std::string b(4096, '\0');
  f.read(b.data(), 4096);
  return b;
}
uint64_t DebugfsNumber(const std::string& img, const std::string& request) {
  std::string out;
  REQUIRE(RunCommand("debugfs -R '" + request + "' " + img, &out) == 0);
  INFO(request << " -> " << out);
  REQUIRE(!out.empty());
  std::istringstream words(out);
  std::string w, last;
  while (words >> w) last = w;  // the number is the last word (after the banner)
  return std::stoull(last);
}
}  // namespace

TEST_CASE("fresh_device leaves the journal unzeroed, and jbd2 replay stops at the noise",
          "[fsbridge]") {
  // Over a device whose unwritten blocks read as noise (as under LUKS).
  TempDir t;
  for (bool fresh : {false, true}) {
    MkfsOptions o;
    o.fresh_device = fresh;
    auto fs = Filesystem::Mkfs(MakeDevice(DevKind::kGarbage, 64 * kMiB, t, "j"), o);
    REQUIRE_OK(fs);
    const std::string img = CloseAndCheck(std::move(*fs), t, fresh ? "fresh" : "zeroed");
    // Journal block 0 is its superblock; the rest is the log.
    const uint64_t phys = DebugfsNumber(img, "bmap <8> 100");
    const bool zero = ImageBlock(img, phys) == std::string(4096, '\0');
    CHECK(zero == !fresh);
    if (!fresh) continue;
    // A transaction written into the unzeroed journal (as after a crash)
    // replays, and the noise after it ends the log.
    const uint64_t target = DebugfsNumber(img, "ffb 1 10000");
    std::string data(4096, 'j');
    std::ofstream(t.path().string() + "/blk", std::ios::binary) << data;
    std::string out;
    REQUIRE(RunCommand("printf 'jo -c\\njw -b " + std::to_string(target) + " " + t.path().string() +
                           "/blk\\njc\\n' | debugfs -w -f - " + img,
                       &out) == 0);
    REQUIRE(RunCommand("debugfs -R logdump " + img, &out) == 0);
    INFO(out);
    CHECK(out.find("Found expected sequence 1, type 2 (commit block)") != std::string::npos);
    CHECK(out.find("end of journal") != std::string::npos);
    RunCommand("e2fsck -fy " + img, &out);
    CHECK(E2fsck(img, &out) == 0);
    CHECK(ImageBlock(img, target) == data);
  }
}

namespace {

uint64_t MemBlocks(BlockDevice& dev) { return static_cast<MemDevice&>(dev).allocated_blocks(); }

}  // namespace

TEST_CASE("blocks an edit frees are discarded at close, blocks reused keep their data",
          "[fsbridge][discard]") {
  TempDir t;
  const auto big = RandomBytes(4 * kMiB, 11), other = RandomBytes(4 * kMiB, 12);
  WriteHostFile(t.file("big"), big);
  WriteHostFile(t.file("other"), other);
  WriteHostFile(t.file("small"), std::vector<uint8_t>(100, 'x'));
  auto mk = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 64 * kMiB / 4096), {});
  REQUIRE_OK(mk);
  std::unique_ptr<BlockDevice> dev;
  CloseAndCheck(std::move(*mk), t, "d0", &dev);
  const uint64_t empty = MemBlocks(*dev);
  auto edit = [&](const std::string& name, const std::function<void(Filesystem&)>& f) {
    auto fs = Filesystem::Open(std::move(dev), true);
    REQUIRE_OK(fs);
    f(**fs);
    CloseAndCheck(std::move(*fs), t, name, &dev);
  };
  edit("d1", [&](Filesystem& fs) { REQUIRE_OK(fs.PutFile(t.file("big"), "/big")); });
  CHECK(MemBlocks(*dev) >= empty + 1024);

  SECTION("rm") {
    edit("d2", [&](Filesystem& fs) { REQUIRE_OK(fs.Remove("/big", false)); });
    CHECK(MemBlocks(*dev) < empty + 8);
  }
  SECTION("overwrite by a smaller file (truncate)") {
    edit("d2", [&](Filesystem& fs) { REQUIRE_OK(fs.PutFile(t.file("small"), "/big")); });
    CHECK(MemBlocks(*dev) < empty + 8);
    edit("d3", [&](Filesystem& fs) { CHECK(ReadAll(fs, "/big") == std::string(100, 'x')); });
  }
  SECTION("freed and allocated again in one session: the new data stays") {
    edit("d2", [&](Filesystem& fs) {
      REQUIRE_OK(fs.Remove("/big", false));
      REQUIRE_OK(fs.PutFile(t.file("other"), "/other"));
      REQUIRE_OK(fs.PutFile(t.file("big"), "/big2"));
    });
    edit("d3", [&](Filesystem& fs) {
      CHECK(ReadAll(fs, "/other") == std::string(other.begin(), other.end()));
      CHECK(ReadAll(fs, "/big2") == std::string(big.begin(), big.end()));
    });
    CHECK(MemBlocks(*dev) >= empty + 2048);
    CHECK(MemBlocks(*dev) < empty + 2048 + 16);
  }
  SECTION("a put that runs out of space frees its partial data") {
    WriteHostFile(t.file("huge"), RandomBytes(80 * kMiB, 13));
    edit("d2", [&](Filesystem& fs) {
      CHECK(CodeOf(fs.PutFile(t.file("huge"), "/huge")) == Code::kNoSpace);
    });
    CHECK(MemBlocks(*dev) < empty + 1024 + 16);
  }
  SECTION("trim discards every free block, data of free blocks included") {
    // Free blocks that hold data (written below the file system, as a
    // killed writer or an older tool would leave them).
    auto fs0 = Filesystem::Open(std::move(dev), false);
    REQUIRE_OK(fs0);
    auto df = (*fs0)->Df();
    REQUIRE_OK(df);
    dev = (*fs0)->Release();
    const uint64_t last = (df->blocks_total - 256) * 4096;
    REQUIRE_OK(dev->Write(last, std::vector<uint8_t>(128 * 4096, 7)));
    const uint64_t before = MemBlocks(*dev);
    edit("d2", [&](Filesystem& fs) {
      auto tr = fs.Trim();
      REQUIRE_OK(tr);
      CHECK(tr->ranges >= 1);
      CHECK(tr->trimmed_bytes >= (df->blocks_free - 1024) * 4096);
      CHECK(ReadAll(fs, "/big") == std::string(big.begin(), big.end()));
    });
    CHECK(MemBlocks(*dev) + 128 <= before);
  }
  SECTION("trim refuses a read-only filesystem") {
    auto fs = Filesystem::Open(std::move(dev), false);
    REQUIRE_OK(fs);
    CHECK(CodeOf((*fs)->Trim()) == Code::kReadOnly);
  }
}

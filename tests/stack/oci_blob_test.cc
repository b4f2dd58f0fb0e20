// Blob stores on the host (stack/src/oci_blob.h, spec/oci.md "Files read"):
// a layout directory's files are opened beneath it and only when regular
// (symlinks out, FIFOs, devices, directories refused at once), reads end at
// the size a file had when opened, and the wrong kind of store is named.
#include "../../stack/src/oci_blob.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace stack::compose::oci {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    std::string t = (fs::temp_directory_path() / "oci-blob-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()));
    path = t;
  }
  ~TempDir() { fs::remove_all(path); }
  void Write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel, std::ios::binary) << text;
  }
  fs::path path;
};

Result<std::string> Read(BlobStore& s, const std::string& p) { return s.ReadAll(p, 1 << 20); }

TEST_CASE("oci store: a layout's files are read from beneath it, when regular, never blocking") {
  TempDir d;
  const fs::path img = d.path / "img";
  d.Write("img/blobs/sha256/good", "good");
  d.Write("outside", "host secret");
  fs::create_symlink(d.path / "outside", img / "blobs/sha256/abs");
  fs::create_symlink("../../../outside", img / "blobs/sha256/rel");
  fs::create_symlink("/dev/zero", img / "blobs/sha256/zero");
  fs::create_symlink("good", img / "blobs/sha256/inside");
  fs::create_symlink("/proc/self/root" + (d.path / "outside").string(), img / "blobs/sha256/proc");
  REQUIRE(::mkfifo((img / "blobs/sha256/fifo").c_str(), 0600) == 0);
  fs::create_directory(img / "blobs/sha256/dir");
  auto store = BlobStore::OpenDirectory(img.string());
  REQUIRE(store.ok());
  CHECK(*Read(**store, "blobs/sha256/good") == "good");
  for (const char* out : {"abs", "rel", "zero", "proc"}) {
    auto r = Read(**store, std::string("blobs/sha256/") + out);
    CHECK(r.status().code() == Code::kCorruption);
    CHECK_THAT(r.status().message(), Catch::Contains(std::string("blobs/sha256/") + out));
  }
  // A symlink that stays inside the layout is followed (openat2).
  CHECK(*Read(**store, "blobs/sha256/inside") == "good");
  auto fifo = Read(**store, "blobs/sha256/fifo");  // opening it would block: it is not opened
  CHECK(fifo.status().code() == Code::kCorruption);
  CHECK_THAT(fifo.status().message(), Catch::Contains("blobs/sha256/fifo is a FIFO"));
  auto dir = Read(**store, "blobs/sha256/dir");
  CHECK(dir.status().code() == Code::kCorruption);
  CHECK_THAT(dir.status().message(), Catch::Contains("is a directory"));
  CHECK(Read(**store, "blobs/sha256/none").status().code() == Code::kNotFound);
  for (const char* bad : {"../outside", "/etc/passwd", "blobs//good", "blobs/./x", "blobs/"})
    CHECK(Read(**store, bad).status().code() == Code::kCorruption);
}

TEST_CASE("oci store: without openat2, the walk refuses every symlink, reads plain files") {
  TempDir d;
  const fs::path img = d.path / "img";
  d.Write("img/blobs/sha256/good", "good");
  d.Write("outside", "host secret");
  fs::create_symlink("good", img / "blobs/sha256/inside");
  fs::create_symlink(d.path / "outside", img / "blobs/sha256/abs");
  fs::create_symlink("blobs", img / "linked");
  REQUIRE(::mkfifo((img / "fifo").c_str(), 0600) == 0);
  UniqueFd dir(::open(img.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(dir.valid());
  auto good = OpenBeneath(dir.get(), "blobs/sha256/good", "img", /*walk=*/true);
  REQUIRE(good.ok());
  char buf[8];
  CHECK(::read(good->get(), buf, sizeof buf) == 4);
  for (const char* p : {"blobs/sha256/inside", "blobs/sha256/abs", "linked/sha256/good"}) {
    auto r = OpenBeneath(dir.get(), p, "img", true);
    CHECK(r.status().code() == Code::kUnsupported);
    CHECK_THAT(r.status().message(), Catch::Contains("symlink"));
  }
  CHECK(OpenBeneath(dir.get(), "fifo", "img", true).status().code() == Code::kCorruption);
  CHECK(OpenBeneath(dir.get(), "none", "img", true).status().code() == Code::kNotFound);
}

TEST_CASE("oci store: a blob's read ends at the size its file had when opened") {
  TempDir d;
  d.Write("img/blob", "1234");
  auto store = BlobStore::OpenDirectory((d.path / "img").string());
  REQUIRE(store.ok());
  auto src = (*store)->Open("blob");
  REQUIRE(src.ok());
  std::ofstream(d.path / "img/blob", std::ios::app) << "grown after the open";
  std::string got;
  while (true) {
    auto chunk = (*src)->Next();
    REQUIRE(chunk.ok());
    if (chunk->empty()) break;
    got.append(reinterpret_cast<const char*>(chunk->data()), chunk->size());
  }
  CHECK(got == "1234");
}

TEST_CASE("oci store: a store of the wrong kind is InvalidArgument naming the reference to use") {
  TempDir d;
  d.Write("image.tar", "not really a tar");
  fs::create_directory(d.path / "layout");
  REQUIRE(::mkfifo((d.path / "fifo").c_str(), 0600) == 0);
  auto file_as_dir = BlobStore::OpenDirectory((d.path / "image.tar").string());
  CHECK(file_as_dir.status().code() == Code::kInvalidArgument);
  CHECK_THAT(file_as_dir.status().message(), Catch::Contains("is a file: use oci-archive:"));
  const std::string layout = (d.path / "layout").string();
  auto dir_as_archive = BlobStore::OpenArchive(layout, "oci:" + layout);
  CHECK(dir_as_archive.status().code() == Code::kInvalidArgument);
  CHECK_THAT(dir_as_archive.status().message(), Catch::Contains("is a directory: use oci:"));
  auto fifo = BlobStore::OpenArchive((d.path / "fifo").string());  // never blocks
  CHECK(fifo.status().code() == Code::kInvalidArgument);
  CHECK_THAT(fifo.status().message(), Catch::Contains("is a FIFO"));
  CHECK(BlobStore::OpenDirectory((d.path / "none").string()).status().code() ==
        Code::kNotFound);
  CHECK(BlobStore::OpenArchive((d.path / "none").string()).status().code() == Code::kNotFound);
}

}  // namespace
}  // namespace stack::compose::oci

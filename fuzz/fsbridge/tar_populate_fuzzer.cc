// Fuzz target: an arbitrary byte string as a tar stream (any format and
// compression libarchive reads), populated into a fresh small ext4 on a
// memory device, then listed back. Hostile member names, links that leave
// the tree, truncated or corrupt compressed streams must end in a Status,
// never a crash, a leak, UB or a write outside the image. What was written
// must read back: a file the populate made that its own reader calls
// Corruption (a sparse member of a size ext4 cannot hold once wrapped its
// block numbers) is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <span>
#include <string>

#include "block/mem_device.h"
#include "fsbridge/filesystem.h"

namespace {

// The input as a file libarchive can open by name, without touching disk.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) : fd_(::memfd_create("tar", MFD_CLOEXEC)) {
    size_t done = 0;
    while (fd_ >= 0 && done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) break;
      done += size_t(n);
    }
  }
  ~MemFile() { if (fd_ >= 0) ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  bool ok() const { return fd_ >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

int Count(stack::fsbridge::Filesystem& fs, const std::string& path, int depth) {
  if (depth > 8) return 0;
  auto ls = fs.List(path);
  if (!ls.ok()) return 0;
  int n = 0;
  for (const auto& e : *ls) {
    ++n;
    const std::string p = (path == "/" ? "" : path) + "/" + e.name;
    if (e.info.type == stack::fsbridge::FileType::kDirectory) n += Count(fs, p, depth + 1);
    if (e.info.type != stack::fsbridge::FileType::kRegular) continue;
    // The first piece is enough: the reader checks the file's size and
    // extent tree before it hands anything over.
    const stack::Status r = fs.ReadFile(p, [](std::span<const uint8_t>) {
      return stack::Status::Busy("enough");
    });
    if (r.code() == stack::Code::kCorruption) __builtin_trap();
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;
  MemFile in(data, size);
  if (!in.ok()) return 0;
  // 16 MiB of 1 KiB blocks: the smallest device Mkfs takes with a journal.
  auto dev = std::make_unique<stack::MemDevice>(1024, 16384);
  stack::fsbridge::MkfsOptions mo;
  mo.uuid = std::array<uint8_t, 16>{1, 2, 3};
  mo.timestamp = 1;
  auto fs = stack::fsbridge::Filesystem::Mkfs(std::move(dev), mo);
  if (!fs.ok()) __builtin_trap();  // a fresh device must always format
  stack::fsbridge::PopulateOptions po;
  po.timestamp = 1;
  (void)(*fs)->PopulateFromTar(in.path(), "/", po);
  (void)Count(**fs, "/", 0);
  (void)(*fs)->Close();
  return 0;
}

// Fuzz target: an arbitrary byte string as a disk image, opened read-only
// through the fsbridge io_manager and read the ways an attacker's image is
// read: ls of every directory, stat, read of files, the entry-name checks,
// and extraction into a scratch directory (to a host tree and to a tar)
// that is then checked to hold nothing outside itself. Any crash, leak or
// UB is a finding; errors are fine; an escape aborts.
//
// Seeds: fuzz/fsbridge/seeds/ (make_seeds.sh), small mke2fs images with
// hostile names among them.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "block/mem_device.h"
#include "fsbridge/filesystem.h"
#include "fsbridge/names.h"

namespace {

namespace fs = std::filesystem;

// Lists and reads (bounded by *budget); sums the sizes in *bytes so the
// caller can skip extracting an image that promises too much data.
void Walk(stack::fsbridge::Filesystem& f, const std::string& path, int depth, int* budget,
          uint64_t* bytes) {
  if (depth > 6 || *budget <= 0) return;
  auto ls = f.List(path);
  if (!ls.ok()) return;
  for (const auto& e : *ls) {
    if (--*budget <= 0) return;
    // Readers hand out only safe names.
    if (!stack::fsbridge::IsSafeEntryName(e.name)) std::abort();
    const std::string shown = stack::EscapeText(e.name);
    for (char ch : shown)
      if (ch == '\n' || ch == '\0') std::abort();
    const std::string child = (path == "/" ? "" : path) + "/" + e.name;
    (void)f.Stat(child);
    *bytes += e.info.size;
    if (e.info.type == stack::fsbridge::FileType::kDirectory) {
      Walk(f, child, depth + 1, budget, bytes);
    } else if (e.info.type == stack::fsbridge::FileType::kRegular && e.info.size < (1 << 20)) {
      (void)f.ReadFile(child, [](std::span<const uint8_t>) { return stack::Status::Ok(); });
    }
  }
}

// A per-process scratch box: box/dest is the destination; box must hold
// nothing else afterwards. Removed at exit.
struct ScratchBox {
  fs::path path = fs::temp_directory_path() / ("fuzz_fsbridge." + std::to_string(::getpid()));
  ScratchBox() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchBox() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const fs::path& Box() {
  static const ScratchBox box;
  return box.path;
}

// What an extraction may allocate on the host: the data of the (at most
// 4 MiB) image, each block once (the readers' data bound), plus the blocks
// of the entries themselves. Apparent sizes do not count: a sparse file of
// terabytes, holes and all, is faithful output and takes no space.
constexpr uint64_t kMaxAllocated = 64u << 20;

uint64_t Allocated(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 0;
  uint64_t n = uint64_t(st.st_blocks) * 512;
  if (S_ISDIR(st.st_mode)) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(p, ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
      n += Allocated(it->path());
  }
  return n;
}

void CheckBeneath() {
  for (const auto& e : fs::directory_iterator(Box())) {
    const std::string n = e.path().filename().string();
    if (n != "dest" && n != "out.tar") std::abort();  // created outside the destination
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A soak caps the size of the files a process writes (ulimit -f), so that
  // output without bound is caught before it fills the machine. The cap
  // then fails such a write with EFBIG, and the allocation check below
  // makes it a finding: a sparse file's apparent size past the cap (an
  // ftruncate) is not one. Set here: libFuzzer installs its own SIGXFSZ
  // handler after LLVMFuzzerInitialize.
  static const bool xfsz_ignored = [] {
    std::signal(SIGXFSZ, SIG_IGN);
    return true;
  }();
  (void)xfsz_ignored;
  // Images up to 4 MiB of 1 KiB blocks; the input is the first bytes.
  const uint32_t bs = 1024;
  const uint64_t blocks = std::max<uint64_t>(64, std::min<uint64_t>(4096, (size + bs - 1) / bs));
  auto dev = std::make_unique<stack::MemDevice>(bs, blocks);
  std::vector<uint8_t> img(blocks * bs, 0);
  std::memcpy(img.data(), data, std::min<size_t>(size, img.size()));
  if (!dev->Write(0, img).ok()) return 0;
  auto opened = stack::fsbridge::Filesystem::Open(std::move(dev), false);
  if (!opened.ok()) return 0;
  auto& f = **opened;
  f.SetWarningSink([](const std::string& w) {
    if (w.find('\n') != std::string::npos) std::abort();  // names must be escaped
  });
  int budget = 200;
  uint64_t bytes = 0;
  Walk(f, "/", 0, &budget, &bytes);
  (void)f.Df();
  if (budget > 0 && bytes < (8u << 20)) {
    const fs::path dest = Box() / "dest";
    (void)f.ExtractToDirectory("/", dest.string());
    CheckBeneath();
    if (Allocated(dest) > kMaxAllocated) std::abort();  // output not bounded by the input
    (void)f.ExtractToTar("/", (Box() / "out.tar").string());
    CheckBeneath();
    if (Allocated(Box() / "out.tar") > kMaxAllocated) std::abort();
    std::error_code ec;
    fs::remove_all(dest, ec);  // never follows symlinks
    fs::remove(Box() / "out.tar", ec);
  }
  (void)f.Close();
  return 0;
}

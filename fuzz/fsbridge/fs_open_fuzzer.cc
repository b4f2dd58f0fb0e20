// Fuzz target: an arbitrary byte string as a disk image, opened read-only
// through the fsbridge io_manager and walked (list, stat, read), with a
// bound on the work. Any crash, leak or UB is a finding; errors are fine.
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "block/mem_device.h"
#include "fsbridge/filesystem.h"

namespace {

void Walk(stack::fsbridge::Filesystem& fs, const std::string& path, int depth, int* budget) {
  if (depth > 6 || *budget <= 0) return;
  auto ls = fs.List(path);
  if (!ls.ok()) return;
  for (const auto& e : *ls) {
    if (--*budget <= 0) return;
    const std::string child = (path == "/" ? "" : path) + "/" + e.name;
    (void)fs.Stat(child);
    if (e.info.type == stack::fsbridge::FileType::kDirectory) {
      Walk(fs, child, depth + 1, budget);
    } else if (e.info.type == stack::fsbridge::FileType::kRegular && e.info.size < (1 << 20)) {
      (void)fs.ReadFile(child, [](std::span<const uint8_t>) { return stack::Status::Ok(); });
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Images up to 4 MiB of 1 KiB blocks; the input is the first bytes.
  const uint32_t bs = 1024;
  const uint64_t blocks = std::max<uint64_t>(64, std::min<uint64_t>(4096, (size + bs - 1) / bs));
  auto dev = std::make_unique<stack::MemDevice>(bs, blocks);
  std::vector<uint8_t> img(blocks * bs, 0);
  std::memcpy(img.data(), data, std::min<size_t>(size, img.size()));
  if (!dev->Write(0, img).ok()) return 0;
  auto fs = stack::fsbridge::Filesystem::Open(std::move(dev), false);
  if (!fs.ok()) return 0;
  int budget = 200;
  Walk(**fs, "/", 0, &budget);
  (void)(*fs)->Df();
  (void)(*fs)->Close();
  return 0;
}

// Fuzzes the pool's on-disk parsers: the superblock and entry-record
// decoders directly, then a whole pool image built from the input (every
// block that carries the metadata magic gets a correct checksum, so the
// fuzzer reaches the structural checks behind it) opened read-only, listed,
// read, checked and verified. Any crash, hang or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "block/endian.h"
#include "block/mem_device.h"
#include "format.h"
#include "pool/pool.h"
#include "superblock.h"
#include "entry_record.h"

using namespace stack;
using namespace stack::pool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (size >= kSuperSize) {
    for (uint64_t block = 0; block < kSuperCopies; ++block) {
      (void)DecodeSuperblock(in.subspan(0, kSuperSize), block);
    }
  }
  (void)DecodeRecord(in, 64);

  constexpr uint32_t kBs = 4096;
  // Blocks past the input read as zeros (the seed is a 128-block format-3
  // pool whose used blocks all lie in the first 41).
  constexpr uint64_t kBlocks = 128;
  if (size == 0 || size > kBs * kBlocks) return 0;
  auto storage = std::make_shared<MemStorage>();
  storage->block_size = kBs;
  storage->block_count = kBlocks;
  for (uint64_t b = 0; b * kBs < size; ++b) {
    std::vector<uint8_t> blk(kBs, 0);
    size_t n = std::min<size_t>(kBs, size - b * kBs);
    std::copy(data + b * kBs, data + b * kBs + n, blk.begin());
    if (GetLE32(blk.data() + 8) == kMetaMagic) {
      auto type = static_cast<BlockType>(GetLE16(blk.data() + 12));
      uint64_t loc = GetLE64(blk.data() + 16);
      std::span<uint8_t> s(blk);
      if (type == BlockType::kSuper) s = s.subspan(0, kSuperSize);
      SealBlock(s, type, loc, GetLE64(blk.data() + 24));
    }
    storage->blocks[b] = std::move(blk);
  }
  PoolOpenOptions o;
  o.read_only = true;
  o.cache_bytes = 0;
  auto p = Pool::Open(MakeDeviceStore(std::make_unique<MemDevice>(storage)), o);
  if (!p.ok()) return 0;
  auto list = (*p)->List();
  if (list.ok()) {
    for (const auto& e : *list) {
      auto d = (*p)->OpenVolume(e.name, true);
      if (!d.ok()) continue;
      uint64_t len = std::min<uint64_t>((*d)->size_bytes(), 64 * kBs);
      std::vector<uint8_t> buf(len);
      (void)(*d)->Read(0, buf);
      (void)(*d)->AllocatedExtents(0, (*d)->size_bytes());
    }
  }
  (void)(*p)->Check();
  (void)(*p)->Verify();
  (void)(*p)->Info();
  return 0;
}

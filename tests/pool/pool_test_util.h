// Helpers for the pool tests: pools over in-memory storage (optionally
// through a FaultDevice), a device that owns its pool, and a volume model.
#pragma once

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "block/endian.h"
#include "block/fault_device.h"
#include "block/mem_device.h"
#include "block/passthrough_device.h"
#include "pool/pool.h"
#include "test_util.h"

namespace stack::pool::testing {

// A pool on a MemStorage; Reopen() "reboots" it (the old Pool is destroyed
// first; it commits on destruction unless the power was cut).
struct MemPool {
  std::shared_ptr<MemStorage> storage;
  std::shared_ptr<FaultController> ctl;  // non-null: a FaultDevice sits below
  std::unique_ptr<Pool> pool;

  static std::unique_ptr<Store> StoreOver(std::shared_ptr<MemStorage> s,
                                          std::shared_ptr<FaultController> ctl) {
    std::unique_ptr<BlockDevice> d = std::make_unique<MemDevice>(std::move(s));
    if (ctl) d = std::make_unique<FaultDevice>(std::move(d), ctl);
    return MakeDeviceStore(std::move(d));
  }

  Status Create(uint64_t blocks, uint32_t bs = 4096, size_t cache = 1 << 20,
                bool faulty = false) {
    storage = std::make_shared<MemStorage>();
    storage->block_size = 4096;
    storage->block_count = blocks * (bs / 4096);
    if (faulty) ctl = std::make_shared<FaultController>();
    PoolCreateOptions o;
    o.block_size = bs;
    o.size_bytes = blocks * bs;
    o.cache_bytes = cache;
    auto p = Pool::Create(StoreOver(storage, ctl), o);
    if (!p.ok()) return p.status();
    pool = std::move(p).value();
    return Status::Ok();
  }

  Status Reopen(bool read_only = false, size_t cache = 1 << 20) {
    pool.reset();
    if (ctl) ctl = std::make_shared<FaultController>();
    PoolOpenOptions o;
    o.read_only = read_only;
    o.cache_bytes = cache;
    auto p = Pool::Open(StoreOver(storage, ctl), o);
    if (!p.ok()) return p.status();
    pool = std::move(p).value();
    return Status::Ok();
  }
};

// A BlockDevice that keeps its pool alive (for the contract suite).
class OwningVolume : public PassthroughDevice {
 public:
  OwningVolume(std::unique_ptr<Pool> pool, std::unique_ptr<BlockDevice> vol)
      : PassthroughDevice(std::move(vol)), pool_(std::move(pool)) {}
  ~OwningVolume() override {
    ReleaseInner().reset();
    pool_.reset();
  }

 private:
  std::unique_ptr<Pool> pool_;
};

inline std::vector<uint8_t> ReadAll(BlockDevice& d) {
  std::vector<uint8_t> buf(d.size_bytes());
  Status st = d.Read(0, buf);
  if (!st.ok()) throw std::runtime_error(st.ToString());
  return buf;
}

inline std::vector<uint8_t> ReadEntry(Pool& p, const std::string& name) {
  auto d = p.OpenVolume(name, true);
  if (!d.ok()) throw std::runtime_error(d.status().ToString());
  return ReadAll(**d);
}

// The first byte offset where entry `name` differs from `want` (its size
// when only the sizes differ), or -1 when they are equal. Reads in 256 KiB
// pieces into one buffer: a whole-entry vector per check was most of a
// model test's time under ASan (a fresh mmap'd, zeroed allocation each).
inline int64_t FirstDifference(Pool& p, const std::string& name, std::span<const uint8_t> want) {
  auto d = p.OpenVolume(name, true);
  if (!d.ok()) throw std::runtime_error(d.status().ToString());
  const uint64_t size = (*d)->size_bytes();
  if (size != want.size()) return int64_t(std::min<uint64_t>(size, want.size()));
  std::vector<uint8_t> buf(std::min<uint64_t>(size, 256 << 10));
  for (uint64_t off = 0; off < size; off += buf.size()) {
    const std::span<uint8_t> piece(buf.data(), std::min<uint64_t>(buf.size(), size - off));
    Status st = (*d)->Read(off, piece);
    if (!st.ok()) throw std::runtime_error(st.ToString());
    if (std::memcmp(piece.data(), want.data() + off, piece.size()) == 0) continue;
    auto m = std::mismatch(piece.begin(), piece.end(), want.begin() + off);
    return int64_t(off + (m.first - piece.begin()));
  }
  return -1;
}

// A pool block's type by its metadata header (spec/pool-format.md; the
// magic is format.h's kMetaMagic, "SPMD"), 0 for a data block.
inline uint16_t TypeOf(const std::vector<uint8_t>& b) {
  if (GetLE32(b.data() + 8) != 0x444d5053) return 0;
  return GetLE16(b.data() + 12);
}

inline bool Contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace stack::pool::testing

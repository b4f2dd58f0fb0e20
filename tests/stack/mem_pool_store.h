// A VolumeStore over a fresh 8 MiB pool in memory (4 KiB blocks), for the
// composition tests that need a pool but not a file. REQUIREs the create.
#pragma once

#include <catch2/catch.hpp>

#include <memory>

#include "block/mem_device.h"
#include "pool/pool.h"
#include "stack/volume_store.h"

namespace stack::testing {

inline std::unique_ptr<VolumeStore> MemPool() {
  auto storage = std::make_shared<MemStorage>();
  storage->block_size = 4096;
  storage->block_count = 2048;
  pool::PoolCreateOptions o;
  o.size_bytes = 2048 * 4096;
  auto p = pool::Pool::Create(pool::MakeDeviceStore(std::make_unique<MemDevice>(storage)), o);
  REQUIRE(p.ok());
  return std::make_unique<PoolVolumeStore>(std::shared_ptr<pool::Pool>(std::move(p).value()));
}

}  // namespace stack::testing

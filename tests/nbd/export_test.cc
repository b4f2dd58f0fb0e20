// Export (nbd/export.h): request semantics against a byte-array model, over
// MemDevices sharing one storage (the factory's further devices see the same
// blocks, as pool volume devices of one entry do).
#include "export.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "block/mem_device.h"

namespace stack::nbd {
namespace {

struct Fixture {
  std::shared_ptr<MemStorage> storage;
  std::unique_ptr<Export> ex;
  int made = 0;

  Fixture(uint32_t bs, uint64_t blocks, bool read_only = false, uint32_t lower = 0) {
    storage = std::make_shared<MemStorage>();
    storage->block_size = bs;
    storage->block_count = blocks;
    ExportParams p;
    p.name = "v";
    p.read_only = read_only;
    p.can_trim = true;
    p.lower_block_size = lower;
    auto s = storage;
    ex = std::make_unique<Export>(p, std::make_unique<MemDevice>(storage),
                                  [this, s]() -> Result<std::unique_ptr<BlockDevice>> {
                                    ++made;
                                    return std::unique_ptr<BlockDevice>(
                                        std::make_unique<MemDevice>(s));
                                  });
  }
};

TEST_CASE("Export: unaligned reads, writes and zeroes match a byte model") {
  Fixture f(4096, 64);
  std::vector<uint8_t> model(f.ex->size(), 0);
  std::mt19937_64 rng(14);
  for (int i = 0; i < 400; ++i) {
    const uint64_t off = rng() % model.size();
    const uint64_t len = 1 + rng() % std::min<uint64_t>(model.size() - off, 3 * 4096 + 17);
    switch (rng() % 4) {
      case 0: {
        std::vector<uint8_t> data(len);
        for (auto& b : data) b = static_cast<uint8_t>(rng());
        REQUIRE(f.ex->Write(off, data, rng() % 8 == 0).ok());
        std::memcpy(model.data() + off, data.data(), len);
        break;
      }
      case 1:
        REQUIRE(f.ex->Zero(off, len, false).ok());
        std::memset(model.data() + off, 0, len);
        break;
      case 2: {
        std::vector<uint8_t> out(len);
        REQUIRE(f.ex->Read(off, out).ok());
        REQUIRE(std::memcmp(out.data(), model.data() + off, len) == 0);
        break;
      }
      default:
        // Trim is a hint: MemDevice reads discarded blocks as zeros, and
        // only whole blocks inside the range are discarded.
        REQUIRE(f.ex->Trim(off, len, false).ok());
        for (uint64_t b = (off + 4095) / 4096 * 4096; b + 4096 <= off + len; b += 4096) {
          std::memset(model.data() + b, 0, 4096);
        }
        break;
    }
  }
  std::vector<uint8_t> all(model.size());
  REQUIRE(f.ex->Read(0, all).ok());
  REQUIRE(all == model);
}

TEST_CASE("Export: bounds, read-only and allocation widening") {
  Fixture f(4096, 16);
  std::vector<uint8_t> buf(4096, 7);
  CHECK(f.ex->Write(f.ex->size() - 100, buf, false).code() == Code::kOutOfRange);
  CHECK(f.ex->Read(f.ex->size(), std::span(buf).first(1)).code() == Code::kOutOfRange);
  REQUIRE(f.ex->Write(5 * 4096 + 10, std::span(buf).first(20), false).ok());
  auto ext = f.ex->Allocated(5 * 4096 + 100, 10);
  REQUIRE(ext.ok());
  REQUIRE(ext->size() == 1);
  CHECK((*ext)[0] == Extent{5 * 4096, 4096});
  CHECK(f.ex->write_unit() == 4096);

  Fixture ro(4096, 16, true);
  CHECK(ro.ex->read_only());
  CHECK(ro.ex->Write(0, buf, false).code() == Code::kReadOnly);
  CHECK(ro.ex->Zero(0, 4096, false).code() == Code::kReadOnly);
  CHECK(ro.ex->Trim(0, 4096, false).code() == Code::kReadOnly);
  CHECK(!ro.ex->can_trim());
}

TEST_CASE("Export: a device below with larger blocks raises the write unit") {
  Fixture f(4096, 16, false, 16384);
  CHECK(f.ex->unit() == 4096);
  CHECK(f.ex->write_unit() == 16384);
  // Trim only discards whole lower blocks.
  std::vector<uint8_t> buf(16384, 9);
  REQUIRE(f.ex->Write(0, buf, false).ok());
  REQUIRE(f.ex->Trim(4096, 16384, false).ok());  // no whole 16 KiB block inside
  std::vector<uint8_t> out(16384);
  REQUIRE(f.ex->Read(0, out).ok());
  CHECK(out == buf);
}

}  // namespace
}  // namespace stack::nbd

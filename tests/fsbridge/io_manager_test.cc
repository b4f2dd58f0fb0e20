// The io_manager under libext2fs (IoBinding), driven through libext2fs'
// own io_channel calls: every mix of cached, gathered (sequential whole
// blocks) and direct I/O reads back what was written, and reaches the
// device by the flush; a sequential stream reaches it as one write.
#include <ext2fs/ext2fs.h>

#include <catch2/catch.hpp>
#include <random>

#include "block/mem_device.h"
#include "block/passthrough_device.h"
#include "block_io_manager.h"
#include "test_util.h"

using namespace stack;
using namespace stack::testing;
using stack::fsbridge::IoBinding;

namespace {

// Counts the writes that reach the device.
class CountingDevice : public PassthroughDevice {
 public:
  using PassthroughDevice::PassthroughDevice;
  int writes = 0;

 protected:
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    ++writes;
    return PassthroughDevice::DoWrite(offset, data);
  }
};

struct Channel {
  io_channel ch = nullptr;
  explicit Channel(IoBinding& b) {
    REQUIRE(IoBinding::manager()->open(b.name().c_str(), IO_FLAG_RW, &ch) == 0);
    REQUIRE(io_channel_set_blksize(ch, int(kBs)) == 0);
  }
  ~Channel() {
    if (ch) io_channel_close(ch);
  }
};

}  // namespace

TEST_CASE("io_manager: cached, gathered and direct I/O against a model", "[fsbridge]") {
  constexpr uint64_t kBlocks = 512;
  auto mem = std::make_unique<MemDevice>(kBs, kBlocks);
  auto storage = mem->storage();
  std::vector<uint8_t> model(kBlocks * kBs, 0);
  {
    IoBinding b(mem.get(), 16 * kBs);  // a tiny cache: write-backs happen often
    Channel c(b);
    std::mt19937_64 rng(11);
    uint64_t next_seq = 0;  // where the sequential stream goes on
    for (int op = 0; op < 20000; ++op) {
      const int kind = int(rng() % 8);
      uint64_t first = rng() % kBlocks;
      uint64_t n = 1 + rng() % std::min<uint64_t>(4, kBlocks - first);
      if (kind <= 1) {  // sequential whole blocks (file data)
        first = next_seq % kBlocks;
        n = std::min<uint64_t>(n, kBlocks - first);
        next_seq = first + n;
      }
      if (kind == 2) n = std::min<uint64_t>(20, kBlocks - first);  // >= 64 KiB: direct
      if (kind <= 3) {
        auto d = RandomBytes(n * kBs, uint64_t(op));
        REQUIRE(io_channel_write_blk64(c.ch, first, int(n), d.data()) == 0);
        std::copy(d.begin(), d.end(), model.begin() + long(first * kBs));
      } else if (kind == 4) {  // a byte range inside a block
        const uint64_t off = first * kBs + rng() % kBs;
        const uint64_t len = 1 + rng() % std::min<uint64_t>(300, kBlocks * kBs - off);
        auto d = RandomBytes(len, uint64_t(op));
        REQUIRE(io_channel_write_byte(c.ch, off, int(len), d.data()) == 0);
        std::copy(d.begin(), d.end(), model.begin() + long(off));
      } else if (kind == 5) {
        if (rng() % 2) n = std::min<uint64_t>(20, kBlocks - first);
        std::vector<uint8_t> got(n * kBs);
        REQUIRE(io_channel_read_blk64(c.ch, first, int(n), got.data()) == 0);
        REQUIRE(std::equal(got.begin(), got.end(), model.begin() + long(first * kBs)));
      } else if (kind == 6) {
        REQUIRE(io_channel_zeroout(c.ch, first, n) == 0);
        std::fill_n(model.begin() + long(first * kBs), n * kBs, 0);
      } else if (rng() % 8 == 0) {
        REQUIRE(io_channel_flush(c.ch) == 0);
      }
    }
    REQUIRE(io_channel_flush(c.ch) == 0);
    REQUIRE_OK(b.TakeLastError());
  }
  MemDevice below(storage);
  std::vector<uint8_t> all(kBlocks * kBs);
  REQUIRE_OK(below.Read(0, all));
  REQUIRE(all == model);
}

namespace {

// A binding with a 16-block cache over a write-counting in-memory device.
struct CountedBinding {
  CountedBinding() : dev(std::make_unique<MemDevice>(kBs, 1024)), b(&dev, 16 * kBs), c(b) {}
  CountingDevice dev;
  IoBinding b;
  Channel c;
};

}  // namespace

TEST_CASE("io_manager: consecutive whole-block writes reach the device as one write",
          "[fsbridge]") {
  CountedBinding cb;
  auto& dev = cb.dev;
  auto& c = cb.c;
  std::vector<uint8_t> all;
  for (uint64_t blk = 100; blk < 300; blk += 2) {  // 100 writes of two blocks
    auto d = RandomBytes(2 * kBs, blk);
    REQUIRE(io_channel_write_blk64(c.ch, blk, 2, d.data()) == 0);
    all.insert(all.end(), d.begin(), d.end());
  }
  CHECK(dev.writes == 0);  // gathered, not yet written
  // A read of gathered blocks sees them (and writes them out first).
  std::vector<uint8_t> got(4 * kBs);
  REQUIRE(io_channel_read_blk64(c.ch, 150, 4, got.data()) == 0);
  CHECK(std::equal(got.begin(), got.end(), all.begin() + 50 * kBs));
  CHECK(dev.writes == 1);
  REQUIRE(io_channel_flush(c.ch) == 0);
  CHECK(dev.writes == 1);
  std::vector<uint8_t> back(200 * kBs);
  REQUIRE_OK(dev.Read(100 * kBs, back));
  CHECK(back == all);
}

TEST_CASE("io_manager: small adjacent WriteBuffer runs (small files) reach the device as one "
          "write, large ones alone",
          "[fsbridge]") {
  CountedBinding cb;
  auto& dev = cb.dev;
  auto& b = cb.b;
  std::vector<uint8_t> all;
  uint64_t blk = 10;
  for (int i = 0; i < 50; ++i) {  // 50 files of 1 to 3 blocks, back to back
    const uint64_t n = 1 + uint64_t(i) % 3;
    std::vector<uint8_t> d = RandomBytes(n * kBs, uint64_t(i));
    all.insert(all.end(), d.begin(), d.end());
    REQUIRE_OK(b.WriteBuffer(blk * kBs, &d));
    blk += n;
  }
  CHECK(dev.writes == 0);  // gathered
  // A large run goes straight down; the gathered run waits for write-back.
  std::vector<uint8_t> big = RandomBytes(32 * kBs, 99);
  all.insert(all.end(), big.begin(), big.end());
  REQUIRE_OK(b.WriteBuffer(blk * kBs, &big));
  CHECK(dev.writes == 1);
  REQUIRE_OK(b.WriteBack());
  CHECK(dev.writes == 2);
  std::vector<uint8_t> back(all.size());
  REQUIRE_OK(dev.Read(10 * kBs, back));
  CHECK(back == all);
}

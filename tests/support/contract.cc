#include "contract.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "test_util.h"

namespace stack::testing {
namespace {

// Byte-level model of what the device must read back; `known[b]` is false
// for blocks whose content the contract leaves unspecified.
struct Model {
  Model(uint32_t bs, uint64_t count, bool zero_init)
      : bs(bs), data(bs * count, 0), known(count, zero_init) {}
  uint32_t bs;
  std::vector<uint8_t> data;
  std::vector<bool> known;
  void Write(uint64_t off, const std::vector<uint8_t>& d) {
    std::copy(d.begin(), d.end(), data.begin() + off);
    for (uint64_t b = off / bs; b < (off + d.size()) / bs; ++b) known[b] = true;
  }
  void Zero(uint64_t off, uint64_t len, bool zeroes) {
    std::fill(data.begin() + off, data.begin() + off + len, 0);
    for (uint64_t b = off / bs; b < (off + len) / bs; ++b) known[b] = zeroes;
  }
};

void CheckAgainstModel(BlockDevice& dev, const Model& m) {
  const uint32_t bs = dev.block_size();
  std::vector<uint8_t> buf(bs);
  for (uint64_t b = 0; b < dev.block_count(); ++b) {
    if (!m.known[b]) continue;
    REQUIRE_OK(dev.Read(b * bs, buf));
    INFO("block " << b << " of " << dev.describe());
    REQUIRE(std::equal(buf.begin(), buf.end(), m.data.begin() + b * bs));
  }
}

void CheckExtentsCoverData(BlockDevice& dev) {
  const uint64_t size = dev.size_bytes();
  auto ext = dev.AllocatedExtents(0, size);
  REQUIRE_OK(ext);
  uint64_t prev_end = 0;
  for (const Extent& e : *ext) {
    REQUIRE(e.length > 0);
    REQUIRE(e.offset % dev.block_size() == 0);
    REQUIRE(e.length % dev.block_size() == 0);
    REQUIRE(e.offset >= prev_end);
    REQUIRE(e.end() <= size);
    prev_end = e.end();
  }
  if (!dev.capabilities().holes_read_zero) return;
  // Every non-zero block must lie inside a reported extent.
  const uint32_t bs = dev.block_size();
  std::vector<uint8_t> buf(bs);
  size_t ei = 0;
  for (uint64_t b = 0; b < dev.block_count(); ++b) {
    REQUIRE_OK(dev.Read(b * bs, buf));
    bool nonzero = std::any_of(buf.begin(), buf.end(), [](uint8_t x) { return x != 0; });
    while (ei < ext->size() && (*ext)[ei].end() <= b * bs) ++ei;
    bool covered = ei < ext->size() && (*ext)[ei].offset <= b * bs;
    INFO("block " << b << " holds data but the allocation query calls it a hole");
    if (nonzero) REQUIRE(covered);
  }
}

}  // namespace

void RunBlockDeviceContract(const ContractTarget& t) {
  REQUIRE(t.make);

  SECTION("geometry") {
    auto dev = t.make();
    REQUIRE(dev);
    const uint32_t bs = dev->block_size();
    REQUIRE(bs >= 512);
    REQUIRE((bs & (bs - 1)) == 0);
    REQUIRE(dev->block_count() >= 4);
    REQUIRE(dev->size_bytes() == dev->block_count() * bs);
    REQUIRE_FALSE(dev->describe().empty());
  }

  SECTION("misaligned requests are InvalidArgument and change nothing") {
    auto dev = t.make();
    const uint32_t bs = dev->block_size();
    std::vector<uint8_t> buf(bs), odd(bs + 1), pattern = RandomBytes(bs, 1);
    REQUIRE_OK(dev->Write(0, pattern));
    CHECK(CodeOf(dev->Read(1, buf)) == Code::kInvalidArgument);
    CHECK(CodeOf(dev->Read(0, odd)) == Code::kInvalidArgument);
    CHECK(CodeOf(dev->Write(bs / 2, buf)) == Code::kInvalidArgument);
    {
      std::vector<uint8_t> short_buf(bs - 1);
      CHECK(CodeOf(dev->WriteBuffer(0, short_buf)) == Code::kInvalidArgument);
    }
    CHECK(CodeOf(dev->Write(0, std::span<const uint8_t>(odd.data(), bs - 1))) ==
          Code::kInvalidArgument);
    CHECK(CodeOf(dev->Discard(1, bs)) == Code::kInvalidArgument);
    CHECK(CodeOf(dev->WriteZeroes(0, bs + 1)) == Code::kInvalidArgument);
    CHECK(CodeOf(dev->AllocatedExtents(3, bs)) == Code::kInvalidArgument);
    REQUIRE_OK(dev->Read(0, buf));
    REQUIRE(buf == pattern);
  }

  SECTION("out-of-range requests are OutOfRange and change nothing") {
    auto dev = t.make();
    const uint32_t bs = dev->block_size();
    const uint64_t size = dev->size_bytes();
    std::vector<uint8_t> buf(bs), two(2 * bs);
    CHECK(CodeOf(dev->Read(size, buf)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->Read(size - bs, two)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->Write(size, buf)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->Write(size - bs, two)) == Code::kOutOfRange);
    {
      std::vector<uint8_t> owned(2 * bs);
      CHECK(CodeOf(dev->WriteBuffer(size - bs, owned)) == Code::kOutOfRange);
    }
    // Offsets that would overflow offset+length must not wrap around.
    const uint64_t huge = (UINT64_MAX / bs) * bs;
    CHECK(CodeOf(dev->Read(huge, buf)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->Write(huge, buf)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->Discard(size - bs, 2 * bs)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->WriteZeroes(huge, bs)) == Code::kOutOfRange);
    CHECK(CodeOf(dev->AllocatedExtents(0, size + bs)) == Code::kOutOfRange);
    // The last block itself is in range.
    auto last = RandomBytes(bs, 2);
    REQUIRE_OK(dev->Write(size - bs, last));
    REQUIRE_OK(dev->Read(size - bs, buf));
    REQUIRE(buf == last);
  }

  SECTION("zero-length requests succeed") {
    auto dev = t.make();
    std::vector<uint8_t> none;
    REQUIRE_OK(dev->Read(0, none));
    REQUIRE_OK(dev->Write(0, none));
    REQUIRE_OK(dev->Discard(0, 0));
    REQUIRE_OK(dev->WriteZeroes(dev->size_bytes(), 0));
    auto e = dev->AllocatedExtents(0, 0);
    REQUIRE_OK(e);
    REQUIRE(e->empty());
  }

  SECTION("unwritten blocks read as zeros where promised") {
    auto dev = t.make();
    if (dev->capabilities().unwritten_reads_zero) {
      Model m(dev->block_size(), dev->block_count(), true);
      CheckAgainstModel(*dev, m);
    }
  }

  SECTION("read after write, overwrite, multi-block and last block") {
    auto dev = t.make();
    const uint32_t bs = dev->block_size();
    const uint64_t n = dev->block_count();
    Model m(bs, n, dev->capabilities().unwritten_reads_zero);
    auto a = RandomBytes(3 * bs, 10);
    REQUIRE_OK(dev->Write(bs, a));
    m.Write(bs, a);
    auto b = RandomBytes(bs, 11);
    REQUIRE_OK(dev->Write(2 * bs, b));  // overwrite the middle of a
    m.Write(2 * bs, b);
    auto c = RandomBytes(bs, 12);
    REQUIRE_OK(dev->Write((n - 1) * bs, c));
    m.Write((n - 1) * bs, c);
    CheckAgainstModel(*dev, m);
    std::vector<uint8_t> all(3 * bs);
    REQUIRE_OK(dev->Read(bs, all));  // one multi-block read
    REQUIRE(std::equal(all.begin(), all.end(), m.data.begin() + bs));
    REQUIRE_OK(dev->Flush());
    CheckAgainstModel(*dev, m);
  }

  SECTION("discard and write-zeroes") {
    auto dev = t.make();
    const uint32_t bs = dev->block_size();
    const uint64_t n = dev->block_count();
    const auto caps = dev->capabilities();
    Model m(bs, n, caps.unwritten_reads_zero);
    auto a = RandomBytes(4 * bs, 20);
    REQUIRE_OK(dev->Write(0, a));
    m.Write(0, a);
    REQUIRE_OK(dev->Discard(bs, bs));
    m.Zero(bs, bs, caps.discard_zeroes);
    REQUIRE_OK(dev->WriteZeroes(2 * bs, bs));
    m.Zero(2 * bs, bs, true);  // write-zeroes always zeroes
    CheckAgainstModel(*dev, m);
    CheckExtentsCoverData(*dev);
  }

  SECTION("allocation query is well formed and covers all data") {
    auto dev = t.make();
    const uint32_t bs = dev->block_size();
    const uint64_t n = dev->block_count();
    REQUIRE_OK(dev->Write(0, RandomBytes(bs, 30)));
    REQUIRE_OK(dev->Write((n / 2) * bs, RandomBytes(2 * bs, 31)));
    REQUIRE_OK(dev->Write((n - 1) * bs, RandomBytes(bs, 32)));
    CheckExtentsCoverData(*dev);
    // A sub-range query is clipped to the range.
    auto e = dev->AllocatedExtents(bs, (n - 2) * bs);
    REQUIRE_OK(e);
    for (const Extent& x : *e) {
      REQUIRE(x.offset >= bs);
      REQUIRE(x.end() <= (n - 1) * bs);
    }
  }

  SECTION("random mixed workload matches a model") {
    auto dev = t.make();
    const uint32_t bs = dev->block_size();
    const uint64_t n = dev->block_count();
    const auto caps = dev->capabilities();
    Model m(bs, n, caps.unwritten_reads_zero);
    std::mt19937_64 rng(42);
    for (int i = 0; i < t.random_ops; ++i) {
      uint64_t first = rng() % n;
      uint64_t len = 1 + rng() % std::min<uint64_t>(8, n - first);
      switch (rng() % 6) {
        case 0:
        case 1: {
          auto d = RandomBytes(len * bs, rng());
          REQUIRE_OK(dev->Write(first * bs, d));
          m.Write(first * bs, d);
          break;
        }
        case 2: {
          // WriteBuffer may take the buffer: the model gets a copy, and
          // what comes back is scribbled on (the caller owns it now).
          auto d = RandomBytes(len * bs, rng());
          auto owned = d;
          REQUIRE_OK(dev->WriteBuffer(first * bs, owned));
          m.Write(first * bs, d);
          owned.assign(owned.size(), 0xEE);
          break;
        }
        case 3:
          REQUIRE_OK(dev->Discard(first * bs, len * bs));
          m.Zero(first * bs, len * bs, caps.discard_zeroes);
          break;
        case 4:
          REQUIRE_OK(dev->WriteZeroes(first * bs, len * bs));
          m.Zero(first * bs, len * bs, true);
          break;
        case 5:
          REQUIRE_OK(dev->Flush());
          break;
      }
    }
    CheckAgainstModel(*dev, m);
    CheckExtentsCoverData(*dev);
  }

  SECTION("flushed data survives reopen") {
    if (t.reopen) {
      uint32_t bs = 0;
      {
        auto dev = t.make();
        bs = dev->block_size();
        REQUIRE_OK(dev->Write(bs, RandomBytes(2 * bs, 40)));
        REQUIRE_OK(dev->Flush());
      }
      auto again = t.reopen();
      REQUIRE(again);
      std::vector<uint8_t> buf(2 * bs);
      REQUIRE_OK(again->Read(bs, buf));
      REQUIRE(buf == RandomBytes(2 * bs, 40));
    }
  }

  SECTION("a read-only view refuses changes") {
    if (t.reopen_read_only) {
      {
        auto dev = t.make();
        REQUIRE_OK(dev->Write(0, RandomBytes(dev->block_size(), 50)));
        REQUIRE_OK(dev->Flush());
      }
      auto ro = t.reopen_read_only();
      REQUIRE(ro);
      REQUIRE(ro->capabilities().read_only);
      const uint32_t bs = ro->block_size();
      CHECK(CodeOf(ro->Write(0, RandomBytes(bs, 51))) == Code::kReadOnly);
      CHECK(CodeOf(ro->Discard(0, bs)) == Code::kReadOnly);
      CHECK(CodeOf(ro->WriteZeroes(0, bs)) == Code::kReadOnly);
      std::vector<uint8_t> buf(bs);
      REQUIRE_OK(ro->Read(0, buf));
      REQUIRE(buf == RandomBytes(bs, 50));
    }
  }
}

}  // namespace stack::testing

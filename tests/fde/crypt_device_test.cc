// CryptDevice: the BlockDevice contract, one lower write per request, edge
// handling over large lower blocks, discard and write-zeroes semantics.
#include <catch2/catch.hpp>

#include "block/passthrough_device.h"
#include "fde/xts_cipher.h"
#include "contract.h"
#include "fde_test_util.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;

namespace {

using ::stack::testing::kMiB;

// Counts the operations that reach the device below.
class CountingDevice : public PassthroughDevice {
 public:
  using PassthroughDevice::PassthroughDevice;
  int writes = 0, reads = 0, discards = 0, zeroes = 0;

 protected:
  Status DoWrite(uint64_t off, std::span<const uint8_t> d) override {
    ++writes;
    return PassthroughDevice::DoWrite(off, d);
  }
  Status DoRead(uint64_t off, std::span<uint8_t> d) override {
    ++reads;
    return PassthroughDevice::DoRead(off, d);
  }
  Status DoDiscard(uint64_t off, uint64_t len) override {
    ++discards;
    return PassthroughDevice::DoDiscard(off, len);
  }
  Status DoWriteZeroes(uint64_t off, uint64_t len) override {
    ++zeroes;
    return PassthroughDevice::DoWriteZeroes(off, len);
  }
};

}  // namespace

TEST_CASE("CryptDevice meets the BlockDevice contract over MemDevice") {
  for (uint32_t sector : {4096u, 512u}) {
    DYNAMIC_SECTION("sector " << sector) {
      std::shared_ptr<MemStorage> storage;
      stack::testing::ContractTarget t;
      t.make = [&]() -> std::unique_ptr<BlockDevice> {
        auto mem = std::make_unique<MemDevice>(512, (16 * kMiB + 256 * 1024) / 512);
        storage = mem->storage();
        auto d = Format(std::move(mem), Pass("contract"), FastFormat(2, sector));
        REQUIRE_OK(d);
        return std::move(d).value();
      };
      t.reopen = [&]() -> std::unique_ptr<BlockDevice> {
        auto d = Open(std::make_unique<MemDevice>(storage), Pass("contract"));
        REQUIRE_OK(d);
        return std::move(d).value();
      };
      t.reopen_read_only = [&]() -> std::unique_ptr<BlockDevice> {
        OpenOptions o;
        o.read_only = true;
        auto d = Open(std::make_unique<MemDevice>(storage), Pass("contract"), o);
        REQUIRE_OK(d);
        return std::move(d).value();
      };
      stack::testing::RunBlockDeviceContract(t);
    }
  }
}

TEST_CASE("CryptDevice meets the BlockDevice contract over FileDevice") {
  stack::testing::TempDir dir;
  const std::string path = dir.file("c.img");
  stack::testing::ContractTarget t;
  t.make = [&]() -> std::unique_ptr<BlockDevice> {
    auto d = Format(NewFile(path, 16 * kMiB + 256 * 1024), Pass("contract"), FastFormat());
    REQUIRE_OK(d);
    return std::move(d).value();
  };
  t.reopen = [&]() -> std::unique_ptr<BlockDevice> {
    auto d = Open(OpenFile(path), Pass("contract"));
    REQUIRE_OK(d);
    return std::move(d).value();
  };
  t.random_ops = 150;
  stack::testing::RunBlockDeviceContract(t);
}

TEST_CASE("CryptDevice: an aligned request is one lower write, no reads") {
  auto mem = std::make_unique<MemDevice>(4096, (24 * kMiB) / 4096);
  auto storage = mem->storage();
  REQUIRE_OK(Format(std::move(mem), Pass("p"), FastFormat()));
  auto counting = std::make_unique<CountingDevice>(std::make_unique<MemDevice>(storage));
  CountingDevice* c = counting.get();
  auto dev = Open(std::move(counting), Pass("p"));
  REQUIRE_OK(dev);
  c->writes = c->reads = 0;
  auto data = RandomBytes(2 * kMiB, 1);
  REQUIRE_OK((*dev)->Write(4096, data));
  CHECK(c->writes == 1);
  CHECK(c->reads == 0);
  // Larger than one chunk: one write per 4 MiB chunk.
  c->writes = 0;
  auto big = RandomBytes(CryptDevice::kMaxChunk + 8192, 2);
  REQUIRE_OK((*dev)->Write(0, big));
  CHECK(c->writes == 2);
  std::vector<uint8_t> back(big.size());
  REQUIRE_OK((*dev)->Read(0, back));
  CHECK(back == big);
}

TEST_CASE("CryptDevice: lower blocks larger than a sector keep neighbouring sectors") {
  // A 64 KiB-block device below 4096-byte sectors: writes of single sectors
  // merge into the ciphertext of the lower block around them.
  auto mem = std::make_unique<MemDevice>(65536, (20 * kMiB) / 65536);
  auto storage = mem->storage();
  auto dev = Format(std::move(mem), Pass("p"), FastFormat());
  REQUIRE_OK(dev);
  std::vector<uint8_t> model(256 * 1024);
  for (int i = 0; i < 200; ++i) {
    const uint64_t sec = uint64_t(i * 37) % 64;
    const uint64_t n = 1 + uint64_t(i) % 5;
    if (sec + n > 64) continue;
    auto d = RandomBytes(n * 4096, uint64_t(i));
    REQUIRE_OK((*dev)->Write(sec * 4096, d));
    std::copy(d.begin(), d.end(), model.begin() + long(sec * 4096));
  }
  dev.value().reset();
  auto again = Open(std::make_unique<MemDevice>(storage), Pass("p"));
  REQUIRE_OK(again);
  std::vector<uint8_t> back(model.size());
  REQUIRE_OK((*again)->Read(0, back));
  CHECK(back == model);
  // Unaligned single-sector reads too.
  std::vector<uint8_t> one(4096);
  REQUIRE_OK((*again)->Read(5 * 4096, one));
  CHECK(std::equal(one.begin(), one.end(), model.begin() + 5 * 4096));
}

TEST_CASE("CryptDevice: write-zeroes encrypts zeros, discard only when allowed") {
  for (bool allow : {false, true}) {
    DYNAMIC_SECTION("allow_discards " << allow) {
      auto mem = std::make_unique<MemDevice>(4096, (20 * kMiB) / 4096);
      auto storage = mem->storage();
      auto opts = FastFormat();
      opts.allow_discards = allow;
      REQUIRE_OK(Format(std::move(mem), Pass("p"), opts));
      auto counting = std::make_unique<CountingDevice>(std::make_unique<MemDevice>(storage));
      CountingDevice* c = counting.get();
      auto dev = Open(std::move(counting), Pass("p"));
      REQUIRE_OK(dev);
      CHECK((*dev)->allow_discards() == allow);
      auto data = RandomBytes(8 * 4096, 3);
      REQUIRE_OK((*dev)->Write(0, data));
      REQUIRE_OK((*dev)->WriteZeroes(0, 4 * 4096));
      CHECK(c->zeroes == 0);  // never a plaintext-zero shortcut
      std::vector<uint8_t> lower(4096);
      REQUIRE_OK(c->Read(16 * kMiB, lower));
      CHECK(std::any_of(lower.begin(), lower.end(), [](uint8_t b) { return b != 0; }));
      std::vector<uint8_t> back(4 * 4096);
      REQUIRE_OK((*dev)->Read(0, back));
      CHECK(std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0; }));
      REQUIRE_OK((*dev)->Discard(4 * 4096, 4 * 4096));
      CHECK(c->discards == (allow ? 1 : 0));
      CHECK(!(*dev)->capabilities().discard_zeroes);
    }
  }
}

TEST_CASE("CryptDevice: allocation query passes through, mapped to the segment") {
  auto mem = std::make_unique<MemDevice>(4096, (24 * kMiB) / 4096);
  auto dev = Format(std::move(mem), Pass("p"), FastFormat());
  REQUIRE_OK(dev);
  auto d = RandomBytes(3 * 4096, 9);
  REQUIRE_OK((*dev)->Write(10 * 4096, d));
  REQUIRE_OK((*dev)->Write(100 * 4096, d));
  auto ext = (*dev)->AllocatedExtents(0, (*dev)->size_bytes());
  REQUIRE_OK(ext);
  REQUIRE(ext->size() == 2);
  CHECK((*ext)[0] == Extent{10 * 4096, 3 * 4096});
  CHECK((*ext)[1] == Extent{100 * 4096, 3 * 4096});
  auto part = (*dev)->AllocatedExtents(11 * 4096, 4096);
  REQUIRE_OK(part);
  REQUIRE(part->size() == 1);
  CHECK((*part)[0] == Extent{11 * 4096, 4096});
}

TEST_CASE("CryptDevice: never-written sectors read as zeros and are written whole") {
  // 64 KiB lower blocks under 4096-byte sectors: writing one sector writes
  // the whole lower block, its 15 never-written neighbours as encrypted
  // zeros, so dm-crypt (an independent XTS here) reads zeros there too.
  auto mem = std::make_unique<MemDevice>(65536, (20 * kMiB) / 65536);
  auto storage = mem->storage();
  auto dev = Format(std::move(mem), Pass("p"), FastFormat());
  REQUIRE_OK(dev);
  const uint64_t off = (*dev)->data_offset();
  std::vector<uint8_t> sector(4096, 0xee);
  REQUIRE_OK((*dev)->Read(7 * 4096, sector));  // never written: zeros, not noise
  CHECK(std::all_of(sector.begin(), sector.end(), [](uint8_t b) { return b == 0; }));

  auto data = RandomBytes(4096, 11);
  REQUIRE_OK((*dev)->Write(5 * 4096, data));
  auto key = (*dev)->CopyVolumeKey();
  REQUIRE_OK(key);
  auto xts = XtsCipher::Create(key->bytes());
  REQUIRE_OK(xts);
  MemDevice raw(storage);
  std::vector<uint8_t> block(65536);
  REQUIRE_OK(raw.Read(off, block));
  for (uint64_t s = 0; s < 16; ++s) {
    std::span<uint8_t> c(block.data() + s * 4096, 4096);
    INFO("sector " << s);
    CHECK(std::any_of(c.begin(), c.end(), [](uint8_t b) { return b != 0; }));  // written
    std::vector<uint8_t> plain(4096);
    REQUIRE_OK((*xts)->Decrypt(c, plain, 4096, s * 8));
    if (s == 5) CHECK(plain == data);
    else CHECK(std::all_of(plain.begin(), plain.end(), [](uint8_t b) { return b == 0; }));
  }
  // Through us: the same.
  std::vector<uint8_t> back(16 * 4096);
  REQUIRE_OK((*dev)->Read(0, back));
  CHECK(std::equal(data.begin(), data.end(), back.begin() + 5 * 4096));
  CHECK(std::all_of(back.begin(), back.begin() + 5 * 4096, [](uint8_t b) { return b == 0; }));
}

TEST_CASE("CryptDevice: an all-zero ciphertext sector between written ones reads as zeros") {
  for (uint32_t ss : {512u, 4096u}) {
    DYNAMIC_SECTION("sector " << ss) {
      auto mem = std::make_unique<MemDevice>(512, (20 * kMiB) / 512);
      auto storage = mem->storage();
      auto dev = Format(std::move(mem), Pass("p"), FastFormat(2, ss));
      REQUIRE_OK(dev);
      auto data = RandomBytes(3 * ss, 12);
      REQUIRE_OK((*dev)->Write(0, data));
      // A hole punched below the middle sector (what a pool maps as unwritten).
      MemDevice raw(storage);
      REQUIRE_OK(raw.Write((*dev)->data_offset() + ss, std::vector<uint8_t>(ss, 0)));
      std::vector<uint8_t> back(3 * ss);
      REQUIRE_OK((*dev)->Read(0, back));
      CHECK(std::equal(back.begin(), back.begin() + ss, data.begin()));
      CHECK(std::all_of(back.begin() + ss, back.begin() + 2 * ss, [](uint8_t b) { return b == 0; }));
      CHECK(std::equal(back.begin() + 2 * ss, back.end(), data.begin() + 2 * ss));
    }
  }
}

TEST_CASE("CryptDevice: a dynamic LUKS2 segment follows the device below when reopened") {
  auto mem = std::make_unique<MemDevice>(4096, (24 * kMiB) / 4096);
  auto storage = mem->storage();
  auto dev = Format(std::move(mem), Pass("p"), FastFormat());
  REQUIRE_OK(dev);
  const uint64_t offset = (*dev)->data_offset();
  CHECK((*dev)->size_bytes() == 24 * kMiB - offset);
  auto data = RandomBytes(8192, 13);
  REQUIRE_OK((*dev)->Write(4096, data));
  dev.value().reset();
  MemDevice grow(storage);
  REQUIRE_OK(grow.Resize((72 * kMiB) / 4096));
  auto again = Open(std::make_unique<MemDevice>(storage), Pass("p"));
  REQUIRE_OK(again);
  CHECK((*again)->size_bytes() == 72 * kMiB - offset);
  std::vector<uint8_t> back(8192);
  REQUIRE_OK((*again)->Read(4096, back));
  CHECK(back == data);
  // The new tail reads as zeros (never written) and takes writes.
  std::vector<uint8_t> tail(4096, 0xee);
  REQUIRE_OK((*again)->Read((*again)->size_bytes() - 4096, tail));
  CHECK(std::all_of(tail.begin(), tail.end(), [](uint8_t b) { return b == 0; }));
  REQUIRE_OK((*again)->Write((*again)->size_bytes() - 8192, data));
}

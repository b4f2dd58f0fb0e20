// The whole data path against an independent AES-XTS (python3-cryptography):
// many random requests at offsets well beyond the first sector, both sector
// sizes, in both directions.
#include <catch2/catch.hpp>
#include <random>

#include "fde_test_util.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::testing::RandomBytes;

namespace {
using ::stack::testing::kMiB;
constexpr uint64_t kDataBytes = 4 * kMiB;
}  // namespace

TEST_CASE("Differential: our ciphertext decrypts with python's XTS, and back") {
  for (uint32_t sector : {4096u, 512u}) {
    DYNAMIC_SECTION("sector " << sector) {
      auto mem = std::make_unique<MemDevice>(4096, (16 * kMiB + kDataBytes) / 4096);
      auto storage = mem->storage();
      auto dev = Format(std::move(mem), Pass("diff"), FastFormat(2, sector));
      REQUIRE_OK(dev);
      CryptDevice& c = **dev;
      std::vector<uint8_t> model(kDataBytes, 0);
      REQUIRE_OK(c.Write(0, model));  // every sector holds ciphertext of a known plaintext
      std::mt19937_64 rng(sector);
      const uint64_t sectors = kDataBytes / sector;
      for (int i = 0; i < 300; ++i) {
        const uint64_t n = 1 + rng() % 24;
        const uint64_t first = rng() % (sectors - n);
        auto d = RandomBytes(n * sector, rng());
        REQUIRE_OK(c.Write(first * sector, d));
        std::copy(d.begin(), d.end(), model.begin() + long(first * sector));
      }
      auto key = c.CopyVolumeKey();
      REQUIRE_OK(key);
      std::vector<uint8_t> cipher(kDataBytes);
      REQUIRE_OK(c.lower().Read(c.data_offset(), cipher));
      auto plain = PyXts(false, key->bytes(), cipher, sector, 0);
      REQUIRE(plain.size() == model.size());
      CHECK(plain == model);

      // The other way: python encrypts, we decrypt (random windows).
      auto fresh = RandomBytes(kDataBytes, 99 + sector);
      auto enc = PyXts(true, key->bytes(), fresh, sector, 0);
      REQUIRE_OK(c.lower().Write(c.data_offset(), enc));
      for (int i = 0; i < 50; ++i) {
        const uint64_t n = 1 + rng() % 64;
        const uint64_t first = rng() % (sectors - n);
        std::vector<uint8_t> got(n * sector);
        REQUIRE_OK(c.Read(first * sector, got));
        REQUIRE(std::equal(got.begin(), got.end(), fresh.begin() + long(first * sector)));
      }
    }
  }
}

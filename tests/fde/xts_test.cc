// XtsCipher against IEEE 1619-2007 XTS-AES-128/256 test vectors, and the
// properties the data path relies on (IV in 512-byte units, thread split).
#include <catch2/catch.hpp>

#include "fde/xts_cipher.h"
#include "fde_test_util.h"
#include "test_util.h"

using namespace stack::fde;
using namespace stack::fde::testing;

namespace {

// IEEE 1619 Vector 10 (and 11): Key1 = e..., Key2 = pi..., 512-byte data unit
// with bytes 00..ff twice; data unit sequence number 0xff (vector 10).
const char* kKey =
    "2718281828459045235360287471352662497757247093699959574966967627"
    "3141592653589793238462643383279502884197169399375105820974944592";
const char* kCt10 =
    "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
    "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
    "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
    "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
    "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
    "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
    "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
    "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
    "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
    "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
    "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
    "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
    "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
    "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
    "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
    "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";

// IEEE 1619 Vector 4 (XTS-AES-128): Key1 = e..., Key2 = pi..., data unit 0,
// the same 512-byte plaintext.
const char* kKey128 = "2718281828459045235360287471352631415926535897932384626433832795";
const char* kCt4 =
    "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c"
    "c78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412"
    "328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce"
    "93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265"
    "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8"
    "a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434"
    "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c"
    "5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e"
    "94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc"
    "1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3"
    "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344"
    "b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd"
    "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752"
    "afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203e"
    "bb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d"
    "eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568";

std::vector<uint8_t> Pt512() {
  std::vector<uint8_t> pt(512);
  for (size_t i = 0; i < pt.size(); ++i) pt[i] = uint8_t(i);
  return pt;
}

}  // namespace

// One IEEE 1619 vector (512-byte data unit): out of place and in place,
// both directions.
static void CheckVector(const std::string& key_hex, uint64_t unit, const std::string& ct_hex) {
  auto xts = XtsCipher::Create(Unhex(key_hex));
  REQUIRE_OK(xts);
  const auto pt = Pt512();
  std::vector<uint8_t> ct(512), back(512);
  REQUIRE_OK((*xts)->Encrypt(pt, ct, 512, unit));
  CHECK(Hex(ct) == ct_hex);
  REQUIRE_OK((*xts)->Decrypt(ct, back, 512, unit));
  CHECK(back == pt);
  auto inplace = pt;
  REQUIRE_OK((*xts)->Encrypt(inplace, inplace, 512, unit));
  CHECK(Hex(inplace) == ct_hex);
  REQUIRE_OK((*xts)->Decrypt(inplace, inplace, 512, unit));
  CHECK(inplace == pt);
}

TEST_CASE("XTS: IEEE 1619 vector 10 (AES-256, data unit 0xff)") { CheckVector(kKey, 0xff, kCt10); }

TEST_CASE("XTS: IEEE 1619 vector 4 (AES-128, data unit 0)") { CheckVector(kKey128, 0, kCt4); }

TEST_CASE("XTS: a 4096-byte sector is eight 512-byte IV units, not one") {
  auto key = Unhex(kKey);
  auto xts = XtsCipher::Create(key);
  REQUIRE_OK(xts);
  auto data = stack::testing::RandomBytes(3 * 4096, 7);
  std::vector<uint8_t> big(data.size()), small(512);
  REQUIRE_OK((*xts)->Encrypt(data, big, 4096, 800));
  // The first 512 bytes of 4096-sector k use IV 800 + 8k: the same as a
  // 512-byte encryption of that block with that IV (XTS chains the tweak
  // within the sector, so only the first block of each sector is comparable
  // this way).
  for (int k = 0; k < 3; ++k) {
    REQUIRE_OK((*xts)->Encrypt(std::span(data).subspan(k * 4096, 512), small, 512, 800 + 8 * k));
    CHECK(std::equal(small.begin(), small.begin() + 16, big.begin() + k * 4096));
  }
  // Against the independent implementation, whole sectors.
  CHECK(PyXts(true, key, data, 4096, 800) == big);
}

TEST_CASE("XTS: thread split gives identical output") {
  auto key = stack::testing::RandomBytes(64, 3);
  auto a = XtsCipher::Create(key);
  auto b = XtsCipher::Create(key);
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  (*b)->set_threads(3, 4096);
  auto data = stack::testing::RandomBytes(1 << 20, 4);
  std::vector<uint8_t> x(data.size()), y(data.size());
  REQUIRE_OK((*a)->Encrypt(data, x, 4096, 12345));
  REQUIRE_OK((*b)->Encrypt(data, y, 4096, 12345));
  CHECK(x == y);
  REQUIRE_OK((*b)->Decrypt(y, y, 4096, 12345));
  CHECK(y == data);
}

TEST_CASE("XTS: rejects bad keys and geometry") {
  std::vector<uint8_t> same(64, 0x11);
  CHECK(stack::testing::CodeOf(XtsCipher::Create(same)) == stack::Code::kInvalidArgument);
  std::vector<uint8_t> short_key(48, 1);
  CHECK(stack::testing::CodeOf(XtsCipher::Create(short_key)) == stack::Code::kInvalidArgument);
  auto key = stack::testing::RandomBytes(64, 5);
  auto x = XtsCipher::Create(key);
  REQUIRE_OK(x);
  std::vector<uint8_t> buf(1000);
  CHECK(stack::testing::CodeOf((*x)->Encrypt(buf, buf, 512, 0)) == stack::Code::kInvalidArgument);
  std::vector<uint8_t> buf2(8192);
  CHECK(stack::testing::CodeOf((*x)->Encrypt(buf2, buf2, 8192, 0)) ==
        stack::Code::kInvalidArgument);
}

TEST_CASE("XTS: both key sizes and sector sizes match python's XTS, IVs past 2^32") {
  for (size_t key_len : {size_t{32}, size_t{64}}) {
    for (uint32_t sector : {512u, 4096u}) {
      DYNAMIC_SECTION("key " << key_len << " sector " << sector) {
        auto key = stack::testing::RandomBytes(key_len, key_len + sector);
        auto xts = XtsCipher::Create(key);
        REQUIRE_OK(xts);
        // 40 sectors whose IVs run across the 32-bit boundary: the plain64
        // counter must carry into the upper bytes of the tweak.
        const uint64_t iv = 0xffffffffull - 5 * (sector / 512);
        auto data = stack::testing::RandomBytes(40 * sector, sector + 1);
        std::vector<uint8_t> ct(data.size()), back(data.size());
        REQUIRE_OK((*xts)->Encrypt(data, ct, sector, iv));
        CHECK((PyXts(true, key, data, sector, iv) == ct));  // (bool: no 20 KB dump)
        REQUIRE_OK((*xts)->Decrypt(PyXts(true, key, data, sector, iv), back, sector, iv));
        CHECK((back == data));
      }
    }
  }
}

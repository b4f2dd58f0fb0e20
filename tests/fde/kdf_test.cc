// The fde layer's key derivation and hashes (crypto.h) against published
// vectors: the Argon2 reference implementation's known answers (v1.3),
// RFC 6070 for PBKDF2-HMAC-SHA1, FIPS 180 for the SHA-2 family. The Argon2
// cases with parallelism > 1 were computed with Botan 2.19, an independent
// implementation (the backend before libargon2), so they are a differential
// check of the lanes and their synchronisation.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "crypto.h"
#include "fde/sha256.h"

namespace {

using namespace stack::fde::internal;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string HexOf(std::span<const uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

std::string Argon2Hex(const std::string& type, const std::string& pw, const std::string& salt,
                      uint32_t t, uint32_t m, uint32_t p, size_t len) {
  std::vector<uint8_t> out(len);
  const auto st = Argon2(type, Bytes(pw), Bytes(salt), t, m, p, out);
  REQUIRE(st.ok());
  return HexOf(out);
}

std::string Pbkdf2Hex(const std::string& hash, const std::string& pw, const std::string& salt,
                      uint32_t iterations, size_t len) {
  std::vector<uint8_t> out(len);
  const auto st = Pbkdf2(hash, Bytes(pw), Bytes(salt), iterations, out);
  REQUIRE(st.ok());
  return HexOf(out);
}

}  // namespace

TEST_CASE("Argon2 gives the reference implementation's known answers", "[fde][kdf]") {
  CHECK(Argon2Hex("argon2i", "password", "somesalt", 2, 1 << 16, 1, 32) ==
        "c1628832147d9720c5bd1cfd61367078729f6dfb6f8fea9ff98158e0d7816ed0");
  CHECK(Argon2Hex("argon2id", "password", "somesalt", 2, 1 << 16, 1, 32) ==
        "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7");
}

TEST_CASE("Argon2 with several lanes matches an independent implementation", "[fde][kdf]") {
  const std::string salt(32, '\x5a');
  CHECK(Argon2Hex("argon2id", "correct horse", salt, 3, 4096, 4, 64) ==
        "931bf31d3cac76ac3e5245a04d7c90c9c01ba5186e8d8eb135c024db8e3b9f39"
        "4cb687a32f6a9ab4bd6806af711e4c8b1df946c99fab6d7e73d458c30676fae9");
  CHECK(Argon2Hex("argon2i", "correct horse", salt, 2, 1024, 3, 32) ==
        "5d1d4fd8c1d7852b1380c2ab050ed63e12fa5c974e9a6bbfc80100b46a5c0c24");
  CHECK(Argon2Hex("argon2id", "", salt, 1, 64, 2, 32) ==
        "c9b70e5cd4c92cc6b1ce7a9b0b11d8acc283d515aa0cb04f75c74bbd7d92f187");
}

TEST_CASE("Argon2 refuses what it cannot compute, with a Status", "[fde][kdf]") {
  std::vector<uint8_t> out(32);
  const std::string salt(32, 's');
  CHECK(Argon2("argon2d", Bytes("pw"), Bytes(salt), 1, 64, 1, out).code() ==
        stack::Code::kUnsupported);
  CHECK(Argon2("argon2id", Bytes("pw"), Bytes(salt), 0, 64, 1, out).code() ==
        stack::Code::kInvalidArgument);
  CHECK(Argon2("argon2id", Bytes("pw"), Bytes(salt), 1, 8, 4, out).code() ==
        stack::Code::kInvalidArgument);
  CHECK(Argon2("argon2id", Bytes("pw"), Bytes("short"), 1, 64, 1, out).code() ==
        stack::Code::kInvalidArgument);
}

TEST_CASE("PBKDF2 gives the RFC 6070 answers and handles an empty passphrase", "[fde][kdf]") {
  CHECK(Pbkdf2Hex("sha1", "password", "salt", 1, 20) ==
        "0c60c80f961f0e71f3a9b524af6012062fe037a6");
  CHECK(Pbkdf2Hex("sha1", "password", "salt", 2, 20) ==
        "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
  CHECK(Pbkdf2Hex("sha1", "password", "salt", 4096, 20) ==
        "4b007901b765489abead49d926f721d065a429c1");
  CHECK(Pbkdf2Hex("sha1", "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt",
                  4096, 25) == "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038");
  // Other hashes and the empty passphrase (a keyfile may be empty):
  // computed with OpenSSL's PKCS5_PBKDF2_HMAC, the backend before libgcrypt.
  CHECK(Pbkdf2Hex("sha256", "password", "salt", 2, 32) ==
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
  CHECK(Pbkdf2Hex("sha512", "pw", "NaCl", 3, 64) ==
        "86ee4cd5f81d78d6b4c689bd102106c199dfc8057a814967e195f505b46ad4d2"
        "ee7865bc0f15160c5dfa97a04229ba035ca465f4f189672bfdcf3aea19388734");
  CHECK(Pbkdf2Hex("sha256", "", "salt", 5, 32) ==
        "ab1d7cb38e07467cb81c86dfe16d7a657f01f3430e8b25e7d8c1798d51bb6459");
  std::vector<uint8_t> out(32);
  CHECK(Pbkdf2("ripemd160", Bytes("pw"), Bytes("salt"), 1, out).code() ==
        stack::Code::kUnsupported);
  CHECK(Pbkdf2("sha256", Bytes("pw"), Bytes("salt"), 0, out).code() ==
        stack::Code::kInvalidArgument);
}

TEST_CASE("Hashes give the FIPS 180 answers, whole or in parts", "[fde][kdf]") {
  std::vector<uint8_t> out(HashSize("sha256"));
  REQUIRE(out.size() == 32);
  REQUIRE(Hash("sha256", {Bytes("a"), Bytes("bc")}, out).ok());
  CHECK(HexOf(out) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  out.resize(HashSize("sha1"));
  REQUIRE(Hash("sha1", {Bytes("abc")}, out).ok());
  CHECK(HexOf(out) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  out.resize(HashSize("sha512"));
  REQUIRE(Hash("sha512", {Bytes(""), Bytes("abc")}, out).ok());
  CHECK(HexOf(out) ==
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  out.resize(HashSize("sha256"));
  REQUIRE(Hash("sha256", {std::span<const uint8_t>(), Bytes("")}, out).ok());
  CHECK(HexOf(out) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(HashSize("sha384") == 48);
  CHECK(HashSize("ripemd160") == 0);
  CHECK(Hash("md5", {Bytes("abc")}, out).code() == stack::Code::kUnsupported);
}

TEST_CASE("Sha256 streams, and Peek leaves it going on", "[fde][kdf]") {
  stack::fde::Sha256 h;
  h.Update(Bytes("a"));
  const auto mid = h.Peek();
  CHECK(HexOf(mid) == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
  h.Update(Bytes("bc"));
  CHECK(HexOf(h.Final()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// Sha256: an incremental SHA-256 (OpenSSL EVP), for the send stream's
// final digest. No layer exposes a hash (fde's crypto.h is internal), so
// the composition layer keeps this one small helper.
// Thread-safety: none; one owner.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace stack::compose {

class Sha256 {
 public:
  Sha256();  // aborts if OpenSSL cannot provide SHA-256 (a broken install)
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::span<const uint8_t> data);
  // The digest of everything given so far; the object may not be updated after.
  std::array<uint8_t, 32> Final();
  // The digest of everything given so far, leaving the object to go on.
  std::array<uint8_t, 32> Peek() const;

 private:
  void* ctx_;  // EVP_MD_CTX
};

// A digest as lowercase hex (64 characters).
std::string Hex(const std::array<uint8_t, 32>& digest);

}  // namespace stack::compose

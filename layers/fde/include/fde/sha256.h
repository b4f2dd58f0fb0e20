// Sha256: an incremental SHA-256 through the fde layer's crypto backend
// (libgcrypt, with SHA-NI/AVX2 where the CPU has them), for digests of
// public data: the send stream's final digest, OCI blob and layer digests.
// Not for secrets: its state lives in ordinary memory.
// Thread-safety: none; one owner.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace stack::fde {

class Sha256 {
 public:
  Sha256();  // aborts if the backend cannot provide SHA-256 (a broken install)
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::span<const uint8_t> data);
  // The digest of everything given so far; the object may not be updated after.
  std::array<uint8_t, 32> Final();
  // The digest of everything given so far, leaving the object to go on.
  std::array<uint8_t, 32> Peek() const;

 private:
  void* h_;  // gcry_md_hd_t
};

}  // namespace stack::fde

// XtsCipher: AES-XTS with the plain64 IV, over whole sectors, through
// libgcrypt's XTS mode (the fastest XTS available here: VAES where the CPU
// has it; never a hand-written cipher).
//
// The IV ("tweak") of a sector is a 64-bit little-endian counter in the first
// 8 bytes of the 16-byte XTS tweak (plain64). It counts 512-BYTE UNITS: the
// sector that starts at byte b of a run whose first IV is `iv` gets
// iv + b / 512, whatever the sector size (this is what dm-crypt does for LUKS;
// only BitLocker uses iv_large_sectors). Key: 32 bytes (AES-128-XTS) or 64
// bytes (AES-256-XTS), the two halves distinct.
//
// Large runs may be split across worker threads (set_threads); each thread
// has its own cipher handle, so results are identical whatever the split.
//
// Key material: the key copy is a Secret, and the libgcrypt handles (which
// hold the AES key schedules) are opened in libgcrypt secure memory, which
// the gcrypt backend (src/crypto_gcrypt.cc) routes to the sodium backend's
// locked, don't-dump, wiped allocations (spec/fde.md section 7).
//
// Thread-safety: one XtsCipher is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "block/status.h"

namespace stack::fde {

class XtsCipher {
 public:
  // InvalidArgument unless key is 32 or 64 bytes with distinct halves.
  static Result<std::unique_ptr<XtsCipher>> Create(std::span<const uint8_t> key);
  ~XtsCipher();
  XtsCipher(const XtsCipher&) = delete;
  XtsCipher& operator=(const XtsCipher&) = delete;

  // Encrypts (or decrypts) in.size() bytes into out (may alias in exactly).
  // REQUIRES: in.size() == out.size(), a multiple of sector_size; sector_size
  // a power of two in [512, 4096].
  Status Encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t sector_size,
                 uint64_t first_iv);
  Status Decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t sector_size,
                 uint64_t first_iv);

  // Up to n threads for runs of at least min_parallel_bytes (default 1, i.e.
  // single-threaded). n is clamped to [1, 16].
  void set_threads(unsigned n, size_t min_parallel_bytes = 512 * 1024);
  unsigned threads() const;

 private:
  struct Impl;
  explicit XtsCipher(std::unique_ptr<Impl> impl);
  Status Run(bool encrypt, std::span<const uint8_t> in, std::span<uint8_t> out,
             uint32_t sector_size, uint64_t first_iv);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stack::fde

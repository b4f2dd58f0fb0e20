// The fde layer's one door to cryptography. Every cryptographic primitive the
// layer uses is declared here, and each third-party library is reached from
// exactly one backend file, with one job:
//
//   crypto_argon2.cc   libargon2  Argon2i/Argon2id (the reference implementation)
//   crypto_sodium.cc   libsodium  secure memory, the CSPRNG, constant-time compare
//   crypto_gcrypt.cc   libgcrypt  initialisation and AES-XTS (the data path and
//                                 keyslot areas); its secure memory is routed to
//                                 SecureAlloc below
//   crypto_gcrypt_hash.cc         hashes (LUKS checksums, AF diffusion), PBKDF2,
//                                 and the public fde::Sha256 (fde/sha256.h)
//
// No other file in the tree includes these libraries' headers. OpenSSL is
// not in the product: bench/ uses its XTS as the speed anchor and tests use
// it as an independent oracle. See spec/fde.md
// "Code structure".
//
// Hash names are LUKS spellings: "sha1", "sha256", "sha384", "sha512"
// ("ripemd160" is not supported). Thread-safety: all functions are
// thread-safe; one XtsLane is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string_view>

#include "block/status.h"

namespace stack::fde::internal {

// ---- hashes and PBKDF2 (libgcrypt) ----

// Initialises libgcrypt once per process (with its secure memory routed to
// SecureAlloc); false if it cannot be used. Every libgcrypt call follows it.
bool GcryptReady();

// Digest length of a LUKS hash name, 0 when unsupported.
size_t HashSize(std::string_view hash);
// out = H(parts[0] || parts[1] || ...). Unsupported on an unknown hash;
// Internal unless out.size() == HashSize(hash).
Status Hash(std::string_view hash, std::initializer_list<std::span<const uint8_t>> parts,
            std::span<uint8_t> out);
// PBKDF2-HMAC(hash). Unsupported on an unknown hash, InvalidArgument on zero
// (or > 2^31-1) iterations.
Status Pbkdf2(std::string_view hash, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t iterations, std::span<uint8_t> out);

// ---- Argon2 (libargon2) ----

// Argon2 ("argon2i" or "argon2id", version 1.3), memory in KiB, any
// parallelism (one thread per lane). NoSpace when the memory cannot be
// allocated; InvalidArgument for parameters Argon2 does not define (a salt
// under 8 bytes, memory under 8 KiB per lane, ...).
Status Argon2(std::string_view type, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t time, uint32_t memory_kib,
              uint32_t parallelism, std::span<uint8_t> out);

// ---- secure memory, CSPRNG, compare (libsodium) ----

// Initialises the backend once per process; false if it cannot be used.
bool SecureMemoryReady();
// n bytes (n > 0) that are mlock'd, guarded by guard pages and a canary,
// excluded from core dumps (MADV_DONTDUMP). Contents unspecified. nullptr
// when secure memory is exhausted or SecureMemoryReady() is false.
void* SecureAlloc(size_t n);
// Wipes and releases a SecureAlloc block; nullptr is a no-op.
void SecureFree(void* p);
// Overwrites bytes with zeros in a way the compiler cannot elide.
void SecureWipe(std::span<uint8_t> bytes);
// Fills out from the system CSPRNG; aborts the process if there is none
// (never continue with weak keys).
void RandomFill(std::span<uint8_t> out);
// Content equality in time independent of the content (sizes are public).
bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

// ---- AES-XTS-plain64 (libgcrypt) ----

// One keyed AES-XTS context (the key schedules live in secure memory).
// Crypt processes whole sectors; the tweak of each sector is the 64-bit
// little-endian counter iv + (offset / 512) (plain64 in 512-byte units; see
// fde/xts_cipher.h). in == out is allowed.
class XtsLane {
 public:
  // InvalidArgument unless key is 32 or 64 bytes; Internal if the backend
  // cannot be initialised or keyed.
  static Result<std::unique_ptr<XtsLane>> Create(std::span<const uint8_t> key);
  virtual ~XtsLane() = default;
  // REQUIRES: len a multiple of sector_size.
  virtual Status Crypt(bool encrypt, const uint8_t* in, uint8_t* out, size_t len,
                       uint32_t sector_size, uint64_t iv) = 0;
};

}  // namespace stack::fde::internal

// Internal primitive wrappers: hashes and PBKDF2 (OpenSSL), Argon2 (Botan,
// through botan_boundary.cc, the one place Botan exceptions become Status),
// the CSPRNG (libsodium) and a constant-time compare.
//
// Hash names are LUKS spellings: "sha1", "sha256", "sha512" (also "sha384",
// "ripemd160" is not supported). Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "block/status.h"

namespace stack::fde::internal {

// Digest length of a LUKS hash name, 0 when unsupported.
size_t HashSize(std::string_view hash);
// out = H(a || b). REQUIRES: out.size() == HashSize(hash) > 0.
Status HashTwo(std::string_view hash, std::span<const uint8_t> a, std::span<const uint8_t> b,
               std::span<uint8_t> out);
// PBKDF2-HMAC(hash). InvalidArgument on an unsupported hash or zero iterations.
Status Pbkdf2(std::string_view hash, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t iterations, std::span<uint8_t> out);
// Argon2 ("argon2i" or "argon2id"), memory in KiB, any parallelism.
Status Argon2(std::string_view type, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t time, uint32_t memory_kib,
              uint32_t parallelism, std::span<uint8_t> out);
void RandomFill(std::span<uint8_t> out);
bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

}  // namespace stack::fde::internal

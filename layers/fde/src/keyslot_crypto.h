// Keyslot crypto shared by LUKS1 and LUKS2: turning KdfParams into concrete
// KDF parameters (measuring this machine when asked), deriving a keyslot key,
// and sealing/unsealing the AF-split volume key in a keyslot area
// (aes-xts-plain64, 512-byte sectors, IV 0 at the start of the area).
//
// Thread-safety: pure functions over the given device.
#pragma once

#include "block/block_device.h"
#include "fde/luks.h"
#include "luks2_metadata.h"

namespace stack::fde::internal {

inline constexpr size_t kSaltBytes = 32;

// Concrete parameters (with a fresh random salt) for a new keyslot.
Result<Kdf> ResolveKdf(const KdfParams& params);
// PBKDF2 iterations for the volume-key digest: explicit, ~time_ms/8 when
// the keyslot KDF is benchmarked, else kMinDigestIterations.
inline constexpr uint32_t kMinDigestIterations = 1000;
uint32_t ResolveDigestIterations(uint32_t explicit_iterations, uint32_t time_ms,
                                 const std::string& hash);
// Runs the KDF; out must already have the wanted size.
Status DeriveKey(const Kdf& kdf, const Secret& passphrase, Secret* out);

// Bytes of AF material for a key, rounded to whole 512-byte sectors.
uint64_t AfMaterialBytes(uint32_t key_bytes, uint32_t stripes);

// Splits vk, encrypts with area_key, writes at offset (and flushes).
Status SealKeyMaterial(BlockDevice& dev, uint64_t offset, const Secret& area_key,
                       const Secret& vk, uint32_t stripes, const std::string& af_hash);
// Reads, decrypts and merges; *vk must have the key size.
Status UnsealKeyMaterial(BlockDevice& dev, uint64_t offset, const Secret& area_key,
                         uint32_t stripes, const std::string& af_hash, Secret* vk);

// A random RFC 4122 version-4 UUID string.
std::string RandomUuid();
// Lowercase-hex with dashes check (8-4-4-4-12).
bool LooksLikeUuid(const std::string& s);

}  // namespace stack::fde::internal

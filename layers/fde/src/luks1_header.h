// The LUKS1 header (592 bytes, big-endian; spec/fde.md "LUKS1 header").
//
// Decode checks magic, version 1, NUL-terminated text fields, key size, and
// for every one of the 8 keyslot records (active or not, as cryptsetup does):
// state ACTIVE or DISABLED, stripes > 0, key material inside the header area
// (before the payload) and past the 592-byte header, no two keyslots'
// material overlapping, and active iterations > 0.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "block/status.h"

namespace stack::fde::internal {

inline constexpr size_t kLuks1HeaderSize = 592;
inline constexpr size_t kLuks1Slots = 8;
inline constexpr uint32_t kLuks1Active = 0x00AC71F3, kLuks1Disabled = 0x0000DEAD;
inline constexpr size_t kLuks1DigestSize = 20, kLuks1SaltSize = 32;

struct Luks1Slot {
  uint32_t active = kLuks1Disabled;
  uint32_t iterations = 0;
  std::array<uint8_t, kLuks1SaltSize> salt{};
  uint32_t key_material_offset = 0;  // 512-byte sectors
  uint32_t stripes = 4000;
};

struct Luks1Header {
  std::string cipher_name = "aes";
  std::string cipher_mode = "xts-plain64";
  std::string hash_spec = "sha256";
  uint32_t payload_offset = 0;  // 512-byte sectors
  uint32_t key_bytes = 64;
  std::array<uint8_t, kLuks1DigestSize> mk_digest{};
  std::array<uint8_t, kLuks1SaltSize> mk_digest_salt{};
  uint32_t mk_digest_iterations = 0;
  std::string uuid;
  std::array<Luks1Slot, kLuks1Slots> slots{};
};

// Bytes of AF material of one keyslot, rounded up to whole 512-byte sectors.
uint64_t Luks1MaterialSectors(uint32_t key_bytes, uint32_t stripes);

Result<Luks1Header> DecodeLuks1(std::span<const uint8_t> bytes);
Status EncodeLuks1(const Luks1Header& h, std::span<uint8_t> out);

}  // namespace stack::fde::internal

// The LUKS2 binary header (4096 bytes, big-endian, one at offset 0 and a
// secondary copy at hdr_size), decoded into an in-memory struct and back.
// Byte layout: spec/fde.md "LUKS2 binary header".
//
// Decode checks what can be checked without the JSON area: magic (primary
// "LUKS\xba\xbe", secondary "SKUL\xba\xbe"), version 2, hdr_size one of the
// legal values, hdr_offset equal to where the copy was found, a supported
// checksum algorithm, and NUL-terminated text fields. The checksum itself
// covers hdr_size bytes and is verified by the caller (VerifyChecksum) only
// after those bounds hold.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "block/status.h"

namespace stack::fde::internal {

inline constexpr size_t kLuks2BinarySize = 4096;
inline constexpr size_t kLuks2LabelLen = 48, kLuks2CsumAlgLen = 32, kLuks2SaltLen = 64,
                        kLuks2UuidLen = 40, kLuks2SubsystemLen = 48, kLuks2CsumLen = 64;
inline constexpr uint64_t kLuks2DefaultHdrSize = 16384;

struct Luks2Binary {
  bool secondary = false;
  uint16_t version = 2;
  uint64_t hdr_size = kLuks2DefaultHdrSize;
  uint64_t seqid = 0;
  std::string label;
  std::string csum_alg = "sha256";
  std::array<uint8_t, kLuks2SaltLen> salt{};
  std::string uuid;
  std::string subsystem;
  uint64_t hdr_offset = 0;
  std::array<uint8_t, kLuks2CsumLen> csum{};
};

bool IsLegalLuks2HdrSize(uint64_t hdr_size);
// The offsets at which a secondary header may sit (the legal hdr_sizes).
std::span<const uint64_t> Luks2SecondaryCandidates();

// REQUIRES: bin.size() >= kLuks2BinarySize. Corruption on any failed check.
Result<Luks2Binary> DecodeLuks2Binary(std::span<const uint8_t> bin, uint64_t found_at);
// Writes the 4096-byte binary header, csum field as given.
// InvalidArgument if a text field does not fit.
Status EncodeLuks2Binary(const Luks2Binary& h, std::span<uint8_t> out);
// Checksum of a whole header area (hdr_size bytes) with the csum field
// treated as zeros. out receives HashSize(alg) bytes, zero padded to 64.
Status Luks2Checksum(const std::string& alg, std::span<const uint8_t> area,
                     std::array<uint8_t, kLuks2CsumLen>* out);

}  // namespace stack::fde::internal

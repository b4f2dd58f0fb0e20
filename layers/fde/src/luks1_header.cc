#include "luks1_header.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "block/endian.h"

namespace stack::fde::internal {
namespace {

constexpr uint8_t kMagic[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
constexpr size_t kOffCipherName = 8, kOffCipherMode = 40, kOffHash = 72, kOffPayload = 104,
                 kOffKeyBytes = 108, kOffDigest = 112, kOffDigestSalt = 132,
                 kOffDigestIter = 164, kOffL1Uuid = 168, kOffSlots = 208, kSlotSize = 48;

Result<std::string> Luks1Text(std::span<const uint8_t> b, size_t off, size_t len, const char* what) {
  const char* p = reinterpret_cast<const char*>(b.data() + off);
  size_t n = strnlen(p, len);
  if (n == len) return Status::Corruption(std::string("LUKS1 ") + what + " not terminated");
  return std::string(p, n);
}

Status PutLuks1Text(std::span<uint8_t> b, size_t off, size_t len, const std::string& s) {
  if (s.size() >= len) return Status::InvalidArgument("LUKS1 field too long: " + s);
  std::memcpy(b.data() + off, s.data(), s.size());
  return Status::Ok();
}

}  // namespace

uint64_t Luks1MaterialSectors(uint32_t key_bytes, uint32_t stripes) {
  return (uint64_t(key_bytes) * stripes + 511) / 512;
}

Result<Luks1Header> DecodeLuks1(std::span<const uint8_t> b) {
  if (b.size() < kLuks1HeaderSize) return Status::Corruption("LUKS1 header truncated");
  if (std::memcmp(b.data(), kMagic, 6) != 0) return Status::Corruption("bad LUKS1 magic");
  if (GetBE16(b.data() + 6) != 1) return Status::Corruption("not a LUKS1 header");
  Luks1Header h;
  ASSIGN_OR_RETURN(h.cipher_name, Luks1Text(b, kOffCipherName, 32, "cipher name"));
  ASSIGN_OR_RETURN(h.cipher_mode, Luks1Text(b, kOffCipherMode, 32, "cipher mode"));
  ASSIGN_OR_RETURN(h.hash_spec, Luks1Text(b, kOffHash, 32, "hash spec"));
  ASSIGN_OR_RETURN(h.uuid, Luks1Text(b, kOffL1Uuid, 40, "uuid"));
  h.payload_offset = GetBE32(b.data() + kOffPayload);
  h.key_bytes = GetBE32(b.data() + kOffKeyBytes);
  std::memcpy(h.mk_digest.data(), b.data() + kOffDigest, kLuks1DigestSize);
  std::memcpy(h.mk_digest_salt.data(), b.data() + kOffDigestSalt, kLuks1SaltSize);
  h.mk_digest_iterations = GetBE32(b.data() + kOffDigestIter);
  if (h.key_bytes == 0 || h.key_bytes > 128) {
    return Status::Corruption("LUKS1 key size " + std::to_string(h.key_bytes) + " invalid");
  }
  if (h.mk_digest_iterations == 0) return Status::Corruption("LUKS1 digest iterations are 0");
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (size_t i = 0; i < kLuks1Slots; ++i) {
    const uint8_t* p = b.data() + kOffSlots + i * kSlotSize;
    Luks1Slot& s = h.slots[i];
    s.active = GetBE32(p);
    s.iterations = GetBE32(p + 4);
    std::memcpy(s.salt.data(), p + 8, kLuks1SaltSize);
    s.key_material_offset = GetBE32(p + 40);
    s.stripes = GetBE32(p + 44);
    const std::string which = "LUKS1 keyslot " + std::to_string(i);
    if (s.active != kLuks1Active && s.active != kLuks1Disabled) {
      return Status::Corruption(which + " has an invalid state");
    }
    if (s.stripes == 0 || s.stripes > 65536) return Status::Corruption(which + ": bad stripes");
    const uint64_t start = uint64_t(s.key_material_offset) * 512;
    const uint64_t len = Luks1MaterialSectors(h.key_bytes, s.stripes) * 512;
    if (start < kLuks1HeaderSize || start + len > uint64_t(h.payload_offset) * 512) {
      return Status::Corruption(which + ": key material outside the header area");
    }
    if (s.active == kLuks1Active && s.iterations == 0) {
      return Status::Corruption(which + ": zero iterations");
    }
    used.emplace_back(start, len);
  }
  std::sort(used.begin(), used.end());
  for (size_t i = 1; i < used.size(); ++i) {
    if (used[i - 1].first + used[i - 1].second > used[i].first) {
      return Status::Corruption("LUKS1 keyslot materials overlap");
    }
  }
  return h;
}

Status EncodeLuks1(const Luks1Header& h, std::span<uint8_t> out) {
  if (out.size() < kLuks1HeaderSize) return Status::Internal("LUKS1 encode buffer");
  std::memset(out.data(), 0, kLuks1HeaderSize);
  std::memcpy(out.data(), kMagic, 6);
  PutBE16(out.data() + 6, 1);
  RETURN_IF_ERROR(PutLuks1Text(out, kOffCipherName, 32, h.cipher_name));
  RETURN_IF_ERROR(PutLuks1Text(out, kOffCipherMode, 32, h.cipher_mode));
  RETURN_IF_ERROR(PutLuks1Text(out, kOffHash, 32, h.hash_spec));
  PutBE32(out.data() + kOffPayload, h.payload_offset);
  PutBE32(out.data() + kOffKeyBytes, h.key_bytes);
  std::memcpy(out.data() + kOffDigest, h.mk_digest.data(), kLuks1DigestSize);
  std::memcpy(out.data() + kOffDigestSalt, h.mk_digest_salt.data(), kLuks1SaltSize);
  PutBE32(out.data() + kOffDigestIter, h.mk_digest_iterations);
  RETURN_IF_ERROR(PutLuks1Text(out, kOffL1Uuid, 40, h.uuid));
  for (size_t i = 0; i < kLuks1Slots; ++i) {
    uint8_t* p = out.data() + kOffSlots + i * kSlotSize;
    const Luks1Slot& s = h.slots[i];
    PutBE32(p, s.active);
    PutBE32(p + 4, s.iterations);
    std::memcpy(p + 8, s.salt.data(), kLuks1SaltSize);
    PutBE32(p + 40, s.key_material_offset);
    PutBE32(p + 44, s.stripes);
  }
  return Status::Ok();
}

}  // namespace stack::fde::internal

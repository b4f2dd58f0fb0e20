#include "luks2_disk.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "block/endian.h"
#include "crypto.h"

namespace stack::fde::internal {
namespace {

constexpr uint8_t kMagic1[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
constexpr uint8_t kMagic2[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};
constexpr uint64_t kLegal[] = {16384, 32768, 65536, 131072, 262144, 524288,
                               1048576, 2097152, 4194304};

// Offsets of the fields (see spec/fde.md).
constexpr size_t kOffVersion = 6, kOffHdrSize = 8, kOffSeqid = 16, kOffLabel = 24,
                 kOffCsumAlg = 72, kOffSalt = 104, kOffUuid = 168, kOffSubsystem = 208,
                 kOffHdrOffset = 256, kOffCsum = 448;

Result<std::string> Text(std::span<const uint8_t> bin, size_t off, size_t len, const char* what) {
  const char* p = reinterpret_cast<const char*>(bin.data() + off);
  size_t n = strnlen(p, len);
  if (n == len) return Status::Corruption(std::string("LUKS2 ") + what + " not terminated");
  return std::string(p, n);
}

Status PutText(std::span<uint8_t> out, size_t off, size_t len, const std::string& s,
               const char* what) {
  if (s.size() >= len || s.find('\0') != std::string::npos) {
    return Status::InvalidArgument(std::string("LUKS2 ") + what + " too long (max " +
                                   std::to_string(len - 1) + " bytes)");
  }
  std::memcpy(out.data() + off, s.data(), s.size());
  return Status::Ok();
}

// What sits where a magic was expected, for error messages.
std::string DescribeMagic(std::span<const uint8_t> bin) {
  if (std::all_of(bin.begin(), bin.begin() + 6, [](uint8_t b) { return b == 0; })) {
    return "zeros";
  }
  static const char* kHex = "0123456789abcdef";
  std::string out = "found";
  for (size_t i = 0; i < 6; ++i) {
    out += ' ';
    out += kHex[bin[i] >> 4];
    out += kHex[bin[i] & 15];
  }
  return out;
}

}  // namespace

bool IsLegalLuks2HdrSize(uint64_t hdr_size) {
  for (uint64_t v : kLegal) {
    if (v == hdr_size) return true;
  }
  return false;
}

std::span<const uint64_t> Luks2SecondaryCandidates() { return kLegal; }

Result<Luks2Binary> DecodeLuks2Binary(std::span<const uint8_t> bin, uint64_t found_at) {
  if (bin.size() < kLuks2BinarySize) return Status::Corruption("LUKS2 header truncated");
  Luks2Binary h;
  if (std::memcmp(bin.data(), kMagic1, 6) == 0) {
    h.secondary = false;
  } else if (std::memcmp(bin.data(), kMagic2, 6) == 0) {
    h.secondary = true;
  } else {
    return Status::Corruption("no LUKS2 magic (" + DescribeMagic(bin) + ")");
  }
  h.version = GetBE16(bin.data() + kOffVersion);
  if (h.version != 2) return Status::Corruption("LUKS2 header version " + std::to_string(h.version));
  h.hdr_size = GetBE64(bin.data() + kOffHdrSize);
  if (!IsLegalLuks2HdrSize(h.hdr_size)) {
    return Status::Corruption("illegal LUKS2 hdr_size " + std::to_string(h.hdr_size));
  }
  h.seqid = GetBE64(bin.data() + kOffSeqid);
  h.hdr_offset = GetBE64(bin.data() + kOffHdrOffset);
  if (h.hdr_offset != found_at) {
    return Status::Corruption("LUKS2 hdr_offset " + std::to_string(h.hdr_offset) +
                              " but found at " + std::to_string(found_at));
  }
  if (h.secondary != (found_at != 0) || (h.secondary && h.hdr_offset != h.hdr_size)) {
    return Status::Corruption("LUKS2 header copy at the wrong place");
  }
  ASSIGN_OR_RETURN(h.label, Text(bin, kOffLabel, kLuks2LabelLen, "label"));
  ASSIGN_OR_RETURN(h.csum_alg, Text(bin, kOffCsumAlg, kLuks2CsumAlgLen, "checksum_alg"));
  ASSIGN_OR_RETURN(h.uuid, Text(bin, kOffUuid, kLuks2UuidLen, "uuid"));
  ASSIGN_OR_RETURN(h.subsystem, Text(bin, kOffSubsystem, kLuks2SubsystemLen, "subsystem"));
  if (HashSize(h.csum_alg) == 0) {
    return Status::Corruption("unsupported LUKS2 checksum algorithm '" + h.csum_alg + "'");
  }
  std::memcpy(h.salt.data(), bin.data() + kOffSalt, kLuks2SaltLen);
  std::memcpy(h.csum.data(), bin.data() + kOffCsum, kLuks2CsumLen);
  return h;
}

Status EncodeLuks2Binary(const Luks2Binary& h, std::span<uint8_t> out) {
  if (out.size() < kLuks2BinarySize) return Status::Internal("LUKS2 encode buffer");
  std::memset(out.data(), 0, kLuks2BinarySize);
  std::memcpy(out.data(), h.secondary ? kMagic2 : kMagic1, 6);
  PutBE16(out.data() + kOffVersion, h.version);
  PutBE64(out.data() + kOffHdrSize, h.hdr_size);
  PutBE64(out.data() + kOffSeqid, h.seqid);
  RETURN_IF_ERROR(PutText(out, kOffLabel, kLuks2LabelLen, h.label, "label"));
  RETURN_IF_ERROR(PutText(out, kOffCsumAlg, kLuks2CsumAlgLen, h.csum_alg, "checksum_alg"));
  std::memcpy(out.data() + kOffSalt, h.salt.data(), kLuks2SaltLen);
  RETURN_IF_ERROR(PutText(out, kOffUuid, kLuks2UuidLen, h.uuid, "uuid"));
  RETURN_IF_ERROR(PutText(out, kOffSubsystem, kLuks2SubsystemLen, h.subsystem, "subsystem"));
  PutBE64(out.data() + kOffHdrOffset, h.hdr_offset);
  std::memcpy(out.data() + kOffCsum, h.csum.data(), kLuks2CsumLen);
  return Status::Ok();
}

Status Luks2Checksum(const std::string& alg, std::span<const uint8_t> area,
                     std::array<uint8_t, kLuks2CsumLen>* out) {
  const size_t ds = HashSize(alg);
  if (ds == 0) return Status::Unsupported("checksum algorithm " + alg);
  if (area.size() < kLuks2BinarySize) return Status::Internal("LUKS2 checksum area");
  // H(binary with csum zeroed || json area), without copying the area.
  static const uint8_t kZeros[kLuks2CsumLen] = {};
  std::vector<uint8_t> digest(ds);
  RETURN_IF_ERROR(Hash(alg,
                       {area.first(kOffCsum), kZeros,
                        area.subspan(kOffCsum + kLuks2CsumLen)},
                       digest));
  out->fill(0);
  std::memcpy(out->data(), digest.data(), ds);
  return Status::Ok();
}

}  // namespace stack::fde::internal

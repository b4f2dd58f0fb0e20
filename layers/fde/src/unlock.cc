#include "unlock.h"

#include <algorithm>

#include "byte_io.h"
#include "crypto.h"
#include "keyslot_crypto.h"

namespace stack::fde::internal {
namespace {

// Keyslot order: priority 2, then 1; priority 0 only when named explicitly.
std::vector<int> TryOrder(const Metadata& md, std::optional<int> only) {
  std::vector<int> order;
  if (only) {
    order.push_back(*only);
    return order;
  }
  for (int pri : {2, 1}) {
    for (const auto& [id, k] : md.keyslots) {
      if (k.usable && k.priority == pri) order.push_back(id);
    }
  }
  return order;
}

}  // namespace

Result<bool> CheckLuks2Digest(const Digest& d, const Secret& vk) {
  ASSIGN_OR_RETURN(Secret computed, Secret::Zeroed(d.digest.size()));
  RETURN_IF_ERROR(Pbkdf2(d.hash, vk.bytes(), d.salt, d.iterations, computed.mutable_bytes()));
  return ConstantTimeEqual(computed.bytes(), d.digest);
}

Result<bool> CheckLuks1Digest(const Luks1Header& h, const Secret& vk) {
  ASSIGN_OR_RETURN(Secret computed, Secret::Zeroed(kLuks1DigestSize));
  RETURN_IF_ERROR(Pbkdf2(h.hash_spec, vk.bytes(), h.mk_digest_salt, h.mk_digest_iterations,
                         computed.mutable_bytes()));
  return ConstantTimeEqual(computed.bytes(), h.mk_digest);
}

namespace {

bool IsXtsKeySize(uint32_t bytes) { return bytes == 32 || bytes == 64; }

// Why this build cannot try keyslot k, or OK.
Status KeyslotSupport(const Metadata& md, const Keyslot& k) {
  const std::string which = "keyslot " + std::to_string(k.id);
  if (!k.usable) {
    return Status::Unsupported(which + (k.unusable_why.empty() ? " has type " + k.type
                                                               : " uses " + k.unusable_why));
  }
  if (k.area_encryption != "aes-xts-plain64") {
    return Status::Unsupported(which + " area cipher " + k.area_encryption +
                               " (only aes-xts-plain64)");
  }
  if (!IsXtsKeySize(k.area_key_size)) {
    return Status::Unsupported(which + " area key of " + std::to_string(k.area_key_size * 8) +
                               " bits (only 256 or 512)");
  }
  if (!IsXtsKeySize(k.key_size)) {
    return Status::Unsupported(which + " volume key of " + std::to_string(k.key_size * 8) +
                               " bits (only 256 or 512)");
  }
  if (k.kdf.type == "pbkdf2" && HashSize(k.kdf.hash) == 0) {
    return Status::Unsupported(which + " pbkdf2 hash " + k.kdf.hash);
  }
  if (k.kdf.type != "pbkdf2" && k.kdf.type != "argon2i" && k.kdf.type != "argon2id") {
    return Status::Unsupported(which + " kdf " + k.kdf.type);
  }
  const Digest* d = FindDigest(md, k.id);
  if (d == nullptr) {
    return Status::Unsupported(which + " is not bound to any digest (it opens nothing)");
  }
  if (HashSize(d->hash) == 0) {
    return Status::Unsupported(which + " digest hash " + d->hash);
  }
  return Status::Ok();
}

}  // namespace

Status CheckLuks1Openable(const Luks1Header& h, std::optional<int> keyslot) {
  if (h.cipher_name != "aes" || h.cipher_mode != "xts-plain64") {
    return Status::Unsupported("LUKS1 cipher " + h.cipher_name + "-" + h.cipher_mode +
                               " (only aes-xts-plain64)");
  }
  if (HashSize(h.hash_spec) == 0) return Status::Unsupported("LUKS1 hash " + h.hash_spec);
  if (!IsXtsKeySize(h.key_bytes)) {
    return Status::Unsupported("LUKS1 key of " + std::to_string(h.key_bytes * 8) +
                               " bits (only 256 or 512)");
  }
  if (keyslot) {
    RETURN_IF_ERROR(fde::CheckKeyslotNumber(ContainerKind::kLuks1, *keyslot));
    if (h.slots[size_t(*keyslot)].active != kLuks1Active) {
      return Status::NotFound("keyslot " + std::to_string(*keyslot) + " is not active");
    }
    return Status::Ok();
  }
  for (const auto& s : h.slots) {
    if (s.active == kLuks1Active) return Status::Ok();
  }
  return Status::NotFound("no active keyslot: no passphrase can open this container");
}

namespace {

// Tries the passphrase on each keyslot; the bookkeeping of why none opened.
// A keyslot that cannot be tried (read error, checksum error from below,
// KDF out of memory...) is not a wrong passphrase: its error is kept and
// returned when no other keyslot opens, with its own code. AuthFailed only
// when every keyslot was tried and none matched.
class Attempts {
 public:
  void Failed(int id, const Status& st) {
    if (error_.ok()) error_ = st.WithContext("keyslot " + std::to_string(id));
  }
  Status NoneOpened() const {
    if (!error_.ok()) {
      return Status(error_.code(), error_.message() +
                                       " (no other keyslot accepted the passphrase)");
    }
    return Status::AuthFailed("no keyslot accepted the passphrase");
  }

 private:
  Status error_;
};

}  // namespace

const Digest* FindDigest(const Metadata& md, int keyslot) {
  for (const auto& [did, d] : md.digests) {
    if (std::find(d.keyslots.begin(), d.keyslots.end(), keyslot) != d.keyslots.end()) return &d;
  }
  return nullptr;
}

Status CheckLuks2Openable(const Luks2Header& hdr, std::optional<int> keyslot) {
  const Metadata& md = hdr.md;
  if (md.segments.empty()) return Status::Unsupported("LUKS2 header has no data segment");
  for (const auto& [id, s] : md.segments) {
    if (s.type != "crypt") {
      return Status::Unsupported("LUKS2 data segment " + std::to_string(id) + " has type " +
                                 s.type + " (only crypt)");
    }
    if (s.encryption != "aes-xts-plain64") {
      return Status::Unsupported("LUKS2 data cipher " + s.encryption +
                                 " (only aes-xts-plain64)");
    }
  }
  if (keyslot) {
    RETURN_IF_ERROR(fde::CheckKeyslotNumber(ContainerKind::kLuks2, *keyslot));
    auto it = md.keyslots.find(*keyslot);
    if (it == md.keyslots.end()) {
      return Status::NotFound("keyslot " + std::to_string(*keyslot) + " does not exist");
    }
    return KeyslotSupport(md, it->second);
  }
  std::string why;
  for (const auto& [id, k] : md.keyslots) {
    if (k.priority == 0) continue;
    Status st = KeyslotSupport(md, k);
    if (st.ok()) return st;
    why += (why.empty() ? "" : "; ") + st.message();
  }
  if (why.empty()) {
    return Status::NotFound(
        "no keyslot to try (none, or all with priority 0 = ignore: name one explicitly)");
  }
  return Status::Unsupported("no keyslot this version can open: " + why);
}

Result<UnlockedKey> UnlockLuks2(BlockDevice& dev, const Luks2Header& hdr, const Secret& pass,
                                std::optional<int> keyslot) {
  RETURN_IF_ERROR(CheckLuks2Openable(hdr, keyslot));
  const Metadata& md = hdr.md;
  Attempts attempts;
  for (int id : TryOrder(md, keyslot)) {
    const Keyslot& k = md.keyslots.at(id);
    if (!KeyslotSupport(md, k).ok()) continue;  // another keyslot may open it
    const Digest* digest = FindDigest(md, id);
    ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(k.area_key_size));
    Status st = DeriveKey(k.kdf, pass, &area_key);
    if (!st.ok()) {
      attempts.Failed(id, st);
      continue;
    }
    ASSIGN_OR_RETURN(Secret vk, Secret::Zeroed(k.key_size));
    st = UnsealKeyMaterial(dev, k.area_offset, area_key, k.stripes, k.af_hash, &vk);
    if (!st.ok()) {
      attempts.Failed(id, st);
      continue;
    }
    ASSIGN_OR_RETURN(bool match, CheckLuks2Digest(*digest, vk));
    if (match) {
      return UnlockedKey{std::move(vk), id};
    }
  }
  return attempts.NoneOpened();
}

Result<Luks1Header> ReadLuks1Header(BlockDevice& dev) {
  std::vector<uint8_t> raw(kLuks1HeaderSize);
  RETURN_IF_ERROR(ReadAt(dev, 0, raw));
  ASSIGN_OR_RETURN(Luks1Header h, DecodeLuks1(raw));
  if (uint64_t(h.payload_offset) * 512 > dev.size_bytes()) {
    return Status::Corruption("LUKS1 payload offset past the end of the device");
  }
  return h;
}

Result<UnlockedKey> UnlockLuks1(BlockDevice& dev, const Luks1Header& h, const Secret& pass,
                                std::optional<int> keyslot) {
  RETURN_IF_ERROR(CheckLuks1Openable(h, keyslot));
  Attempts attempts;
  for (int i = 0; i < int(kLuks1Slots); ++i) {
    if (keyslot && i != *keyslot) continue;
    const Luks1Slot& s = h.slots[size_t(i)];
    if (s.active != kLuks1Active) continue;
    Kdf kdf;
    kdf.type = "pbkdf2";
    kdf.hash = h.hash_spec;
    kdf.iterations = s.iterations;
    kdf.salt.assign(s.salt.begin(), s.salt.end());
    ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(h.key_bytes));
    Status st = DeriveKey(kdf, pass, &area_key);
    if (!st.ok()) {
      attempts.Failed(i, st);
      continue;
    }
    ASSIGN_OR_RETURN(Secret vk, Secret::Zeroed(h.key_bytes));
    st = UnsealKeyMaterial(dev, uint64_t(s.key_material_offset) * 512, area_key, s.stripes,
                           h.hash_spec, &vk);
    if (!st.ok()) {
      attempts.Failed(i, st);
      continue;
    }
    ASSIGN_OR_RETURN(bool match, CheckLuks1Digest(h, vk));
    if (match) {
      return UnlockedKey{std::move(vk), i};
    }
  }
  return attempts.NoneOpened();
}

uint64_t Luks2AreaSize(uint32_t key_bytes) {
  return (uint64_t(key_bytes) * kAfStripes + 4095) / 4096 * 4096;
}

Result<uint64_t> FindFreeArea(const Luks2Header& hdr, uint64_t size) {
  const uint64_t lo = 2 * hdr.bin.hdr_size, hi = lo + hdr.md.keyslots_size;
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const auto& [id, k] : hdr.md.keyslots) used.emplace_back(k.area_offset, k.area_offset + k.area_size);
  std::sort(used.begin(), used.end());
  uint64_t cur = lo;
  for (const auto& [b, e] : used) {
    if (b >= cur && b - cur >= size) return cur;
    cur = std::max(cur, (e + 4095) / 4096 * 4096);
  }
  if (cur <= hi && hi - cur >= size) return cur;
  return Status::NoSpace("no free space left in the LUKS2 keyslots area");
}

Result<int> FreeKeyslotId(const Metadata& md) {
  for (int i = 0; i < 32; ++i) {
    if (!md.keyslots.count(i)) return i;
  }
  return Status::NoSpace("all 32 LUKS2 keyslots are in use");
}

void Luks1Layout(uint32_t key_bytes, uint32_t out_offsets[8], uint32_t* payload_sectors) {
  // Header padded to 4 KiB, each keyslot's material aligned to 4 KiB, payload
  // aligned to 1 MiB: what cryptsetup does for LUKS1.
  const uint32_t align = 8;  // sectors
  const uint32_t material = uint32_t((Luks1MaterialSectors(key_bytes, 4000) + align - 1) / align * align);
  uint32_t at = align;
  for (int i = 0; i < 8; ++i) {
    out_offsets[i] = at;
    at += material;
  }
  *payload_sectors = (at + 2047) / 2048 * 2048;
}

}  // namespace stack::fde::internal

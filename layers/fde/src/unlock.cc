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

Result<Luks2Unlocked> UnlockLuks2(BlockDevice& dev, const Secret& pass,
                                  std::optional<int> keyslot) {
  ASSIGN_OR_RETURN(Luks2Header hdr, ReadLuks2Header(dev));
  const Metadata& md = hdr.md;
  if (keyslot) {
    auto it = md.keyslots.find(*keyslot);
    if (it == md.keyslots.end()) {
      return Status::NotFound("keyslot " + std::to_string(*keyslot) + " does not exist");
    }
    if (!it->second.usable) {
      return Status::Unsupported("keyslot " + std::to_string(*keyslot) + " has type " +
                                 it->second.type);
    }
  }
  Status last_error;
  for (int id : TryOrder(md, keyslot)) {
    const Keyslot& k = md.keyslots.at(id);
    const Digest* digest = nullptr;
    for (const auto& [did, d] : md.digests) {
      if (std::find(d.keyslots.begin(), d.keyslots.end(), id) != d.keyslots.end()) digest = &d;
    }
    if (digest == nullptr) continue;  // a keyslot without a digest opens nothing
    if (k.area_encryption != "aes-xts-plain64") {
      last_error = Status::Unsupported("keyslot " + std::to_string(id) + " area cipher " +
                                       k.area_encryption);
      continue;
    }
    ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(k.area_key_size));
    Status st = DeriveKey(k.kdf, pass, &area_key);
    if (!st.ok()) {
      if (st.Is(Code::kIoError)) return st;
      last_error = st.WithContext("keyslot " + std::to_string(id));
      continue;
    }
    ASSIGN_OR_RETURN(Secret vk, Secret::Zeroed(k.key_size));
    st = UnsealKeyMaterial(dev, k.area_offset, area_key, k.stripes, k.af_hash, &vk);
    if (!st.ok()) {
      if (st.Is(Code::kIoError)) return st;
      last_error = st.WithContext("keyslot " + std::to_string(id));
      continue;
    }
    ASSIGN_OR_RETURN(bool match, CheckLuks2Digest(*digest, vk));
    if (match) {
      Luks2Unlocked u;
      u.vk = std::move(vk);
      u.keyslot = id;
      u.digest = digest->id;
      u.hdr = std::move(hdr);
      return u;
    }
  }
  if (!last_error.ok() && !last_error.Is(Code::kAuthFailed)) {
    return Status::AuthFailed("no keyslot accepted the passphrase (" + last_error.ToString() + ")");
  }
  return Status::AuthFailed("no keyslot accepted the passphrase");
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

Result<Luks1Unlocked> UnlockLuks1(BlockDevice& dev, const Secret& pass,
                                  std::optional<int> keyslot) {
  ASSIGN_OR_RETURN(Luks1Header h, ReadLuks1Header(dev));
  if (h.cipher_name != "aes" || h.cipher_mode != "xts-plain64") {
    return Status::Unsupported("LUKS1 cipher " + h.cipher_name + "-" + h.cipher_mode +
                               " (only aes-xts-plain64)");
  }
  if (HashSize(h.hash_spec) == 0) return Status::Unsupported("LUKS1 hash " + h.hash_spec);
  if (h.key_bytes != 32 && h.key_bytes != 64) {
    return Status::Unsupported("LUKS1 key size " + std::to_string(h.key_bytes));
  }
  if (keyslot && (*keyslot < 0 || *keyslot >= int(kLuks1Slots) ||
                  h.slots[size_t(*keyslot)].active != kLuks1Active)) {
    return Status::NotFound("keyslot " + std::to_string(*keyslot) + " is not active");
  }
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
    RETURN_IF_ERROR(DeriveKey(kdf, pass, &area_key));
    ASSIGN_OR_RETURN(Secret vk, Secret::Zeroed(h.key_bytes));
    RETURN_IF_ERROR(UnsealKeyMaterial(dev, uint64_t(s.key_material_offset) * 512, area_key,
                                      s.stripes, h.hash_spec, &vk));
    ASSIGN_OR_RETURN(bool match, CheckLuks1Digest(h, vk));
    if (match) {
      Luks1Unlocked u;
      u.hdr = h;
      u.vk = std::move(vk);
      u.keyslot = i;
      return u;
    }
  }
  return Status::AuthFailed("no keyslot accepted the passphrase");
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

// The LUKS1 Container: everything a command does with a LUKS1 header, from
// one reading of it. Keyslots are PBKDF2 only (LUKS1 has nothing else).
#include <algorithm>

#include "byte_io.h"
#include "crypto.h"
#include "fde/container.h"
#include "keyslot_crypto.h"
#include "unlock.h"

namespace stack::fde::internal {
namespace {

class Luks1Container final : public Container {
 public:
  Luks1Container(BlockDevice& dev, Luks1Header hdr) : Container(dev), hdr_(std::move(hdr)) {}

  ContainerKind kind() const override { return ContainerKind::kLuks1; }

  // A LUKS1 header has one copy and no requirements: nothing to warn about.
  std::vector<std::string> Warnings() const override { return {}; }

  std::vector<int> Keyslots() const override {
    std::vector<int> ids;
    for (int i = 0; i < int(kLuks1Slots); ++i) {
      if (hdr_.slots[size_t(i)].active == kLuks1Active) ids.push_back(i);
    }
    return ids;
  }

  uint64_t HeaderRegionSize() const override { return DataOffset(); }
  uint64_t DataOffset() const override { return uint64_t(hdr_.payload_offset) * 512; }

  HeaderInfo Info() const override {
    const Luks1Header& h = hdr_;
    HeaderInfo info;
    info.kind = ContainerKind::kLuks1;
    info.version = 1;
    info.uuid = h.uuid;
    info.data_offset = DataOffset();
    info.sector_size = 512;
    info.cipher = h.cipher_name + "-" + h.cipher_mode;
    info.key_bytes = h.key_bytes;
    info.digest_hash = h.hash_spec;
    info.digest_iterations = h.mk_digest_iterations;
    info.digest_salt.assign(h.mk_digest_salt.begin(), h.mk_digest_salt.end());
    info.digest_value.assign(h.mk_digest.begin(), h.mk_digest.end());
    info.warnings = Warnings();
    for (int i : Keyslots()) {
      const Luks1Slot& s = h.slots[size_t(i)];
      KeyslotInfo k;
      k.id = i;
      k.type = "luks1";
      k.usable = true;
      k.key_bytes = h.key_bytes;
      k.kdf = "pbkdf2";
      k.iterations = s.iterations;
      k.hash = h.hash_spec;
      k.af_hash = h.hash_spec;
      k.stripes = s.stripes;
      k.area_offset = uint64_t(s.key_material_offset) * 512;
      k.area_size = Luks1MaterialSectors(h.key_bytes, s.stripes) * 512;
      k.area_cipher = info.cipher;
      info.keyslots.push_back(k);
    }
    return info;
  }

  Status CheckOpenable(std::optional<int> keyslot) const override {
    return CheckLuks1Openable(hdr_, keyslot);
  }

  Result<UnlockedKey> Unlock(const Secret& pass, std::optional<int> keyslot) const override {
    return UnlockLuks1(device(), hdr_, pass, keyslot);
  }

  Result<int> AddKey(const UnlockedKey& key, const Secret& added,
                     const KdfParams& kdf) override {
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(int slot, FreeSlot());
    Luks1Header h = hdr_;
    RETURN_IF_ERROR(Seal(&h, slot, key.volume_key, added, kdf));
    RETURN_IF_ERROR(Commit(std::move(h)));
    return slot;
  }

  Result<int> ChangeKey(const UnlockedKey& key, const Secret& new_pass,
                        const KdfParams& kdf) override {
    RETURN_IF_ERROR(CheckWritable());
    // A free slot keeps the old one valid until the header commits; with all
    // eight in use the old slot is rewritten in place (as cryptsetup does).
    auto free_slot = FreeSlot();
    const int slot = free_slot.ok() ? *free_slot : key.keyslot;
    Luks1Header h = hdr_;
    RETURN_IF_ERROR(Seal(&h, slot, key.volume_key, new_pass, kdf));
    if (slot != key.keyslot) Disable(&h, key.keyslot);
    RETURN_IF_ERROR(Commit(std::move(h)));
    if (slot != key.keyslot) RETURN_IF_ERROR(Wipe(key.keyslot));
    return slot;
  }

  Status ReplaceKeyslots(const UnlockedKey& key, const Secret& new_pass,
                         const KdfParams& kdf) override {
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(int slot, FreeSlot());
    Luks1Header h = hdr_;
    RETURN_IF_ERROR(Seal(&h, slot, key.volume_key, new_pass, kdf));
    std::vector<int> dropped;
    for (int i = 0; i < int(kLuks1Slots); ++i) {
      if (i != slot && h.slots[size_t(i)].active == kLuks1Active) {
        Disable(&h, i);
        dropped.push_back(i);
      }
    }
    h.uuid = RandomUuid();  // another container now (see the LUKS2 case)
    RETURN_IF_ERROR(Commit(std::move(h)));
    for (int i : dropped) RETURN_IF_ERROR(Wipe(i));
    return Status::Ok();
  }

  Status KillKeyslot(int keyslot, bool force) override {
    RETURN_IF_ERROR(CheckWritable());
    RETURN_IF_ERROR(CheckKeyslotNumber(keyslot));
    if (hdr_.slots[size_t(keyslot)].active != kLuks1Active) {
      return Status::NotFound("keyslot " + std::to_string(keyslot) + " is not active");
    }
    if (Keyslots().size() == 1 && !force) {
      return Status::InvalidArgument("refusing to remove the last keyslot (" +
                                     std::to_string(keyslot) +
                                     "): the data would be unrecoverable; use force");
    }
    Luks1Header h = hdr_;
    Disable(&h, keyslot);
    RETURN_IF_ERROR(Commit(std::move(h)));
    return Wipe(keyslot);
  }

  Result<std::unique_ptr<CryptDevice>> Open(std::unique_ptr<BlockDevice> dev, UnlockedKey key,
                                            const OpenOptions& o) const override {
    CryptDevice::Params p;
    p.kind = ContainerKind::kLuks1;
    p.read_only = o.read_only;
    p.keyslot = key.keyslot;
    p.data_offset = DataOffset();
    p.sector_size = 512;
    p.warnings = Warnings();
    ASSIGN_OR_RETURN(auto crypt,
                     CryptDevice::Create(std::move(dev), std::move(key.volume_key), p));
    if (o.crypt_threads > 1) crypt->set_crypt_threads(o.crypt_threads);
    return crypt;
  }

 private:
  Result<int> FreeSlot() const {
    for (int i = 0; i < int(kLuks1Slots); ++i) {
      if (hdr_.slots[size_t(i)].active != kLuks1Active) return i;
    }
    return Status::NoSpace("all 8 LUKS1 keyslots are in use");
  }

  // Seals vk under pass into slot's material (flushed); marks it active in *h.
  Status Seal(Luks1Header* h, int slot, const Secret& vk, const Secret& pass,
              const KdfParams& params) const {
    if (params.type != KdfType::kPbkdf2) {
      return Status::InvalidArgument("LUKS1 keyslots use pbkdf2");
    }
    KdfParams p = params;
    p.hash = h->hash_spec;
    ASSIGN_OR_RETURN(Kdf kdf, ResolveKdf(p));
    Luks1Slot& s = h->slots[size_t(slot)];
    ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(h->key_bytes));
    RETURN_IF_ERROR(DeriveKey(kdf, pass, &area_key));
    RETURN_IF_ERROR(SealKeyMaterial(device(), uint64_t(s.key_material_offset) * 512, area_key,
                                    vk, s.stripes, h->hash_spec));
    s.active = kLuks1Active;
    s.iterations = kdf.iterations;
    std::copy_n(kdf.salt.begin(), kLuks1SaltSize, s.salt.begin());
    return Status::Ok();
  }

  static void Disable(Luks1Header* h, int slot) {
    Luks1Slot& s = h->slots[size_t(slot)];
    s.active = kLuks1Disabled;
    s.iterations = 0;
    s.salt.fill(0);
  }

  // Zeroes a (disabled) slot's key material, after the header that drops it.
  Status Wipe(int slot) {
    const Luks1Slot& s = hdr_.slots[size_t(slot)];
    RETURN_IF_ERROR(ZeroAt(device(), uint64_t(s.key_material_offset) * 512,
                           Luks1MaterialSectors(hdr_.key_bytes, s.stripes) * 512));
    return device().Flush();
  }

  // Writes the header; the in-memory header becomes what is on disk.
  Status Commit(Luks1Header h) {
    std::vector<uint8_t> raw(kLuks1HeaderSize);
    RETURN_IF_ERROR(EncodeLuks1(h, raw));
    RETURN_IF_ERROR(WriteAt(device(), 0, raw));
    RETURN_IF_ERROR(device().Flush());
    hdr_ = std::move(h);
    return Status::Ok();
  }

  Luks1Header hdr_;
};

}  // namespace

std::unique_ptr<Container> MakeLuks1Container(BlockDevice& dev, Luks1Header hdr) {
  return std::make_unique<Luks1Container>(dev, std::move(hdr));
}

}  // namespace stack::fde::internal

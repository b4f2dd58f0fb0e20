// The LUKS2 Container: everything a command does with a LUKS2 header, from
// one reading of it (both copies).
#include <algorithm>

#include "byte_io.h"
#include "crypto.h"
#include "fde/container.h"
#include "keyslot_crypto.h"
#include "unlock.h"

namespace stack::fde::internal {
namespace {

using json = nlohmann::json;

// A new luks2 keyslot (material sealed and flushed) at `offset`.
Result<Keyslot> SealLuks2Keyslot(BlockDevice& dev, int id, uint64_t offset, const Secret& vk,
                                 const Secret& pass, const KdfParams& params, int priority) {
  ASSIGN_OR_RETURN(Kdf kdf, ResolveKdf(params));
  Keyslot k;
  k.id = id;
  k.type = "luks2";
  k.key_size = uint32_t(vk.size());
  k.priority = priority;
  k.stripes = kAfStripes;
  k.af_hash = "sha256";
  k.area_offset = offset;
  k.area_size = Luks2AreaSize(k.key_size);
  k.area_encryption = "aes-xts-plain64";
  k.area_key_size = k.key_size;
  k.kdf = std::move(kdf);
  ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(k.area_key_size));
  RETURN_IF_ERROR(DeriveKey(k.kdf, pass, &area_key));
  RETURN_IF_ERROR(SealKeyMaterial(dev, offset, area_key, vk, k.stripes, k.af_hash));
  return k;
}

void EraseIdFromArrays(json& parent, const char* array_key, int id) {
  const std::string sid = std::to_string(id);
  for (auto& [name, obj] : parent.items()) {
    if (!obj.is_object()) continue;
    auto it = obj.find(array_key);
    if (it == obj.end() || !it->is_array()) continue;
    json kept = json::array();
    for (const json& e : *it) {
      if (!(e.is_string() && e.get<std::string>() == sid)) kept.push_back(e);
    }
    *it = kept;
  }
}

Status WipeAreas(BlockDevice& dev, const std::vector<std::pair<uint64_t, uint64_t>>& areas) {
  for (const auto& [off, len] : areas) RETURN_IF_ERROR(ZeroAt(dev, off, len));
  return dev.Flush();
}

// A damaged or stale copy, worded for Open's warnings and Dump alike.
std::string CopyState(const char* which, const std::string& problem) {
  if (problem.rfind("stale", 0) == 0) {
    return std::string("LUKS2 ") + which + " header copy is " + problem;
  }
  return std::string("LUKS2 ") + which + " header copy is damaged: " + problem;
}

class Luks2Container final : public Container {
 public:
  Luks2Container(BlockDevice& dev, Luks2Header hdr) : Container(dev), hdr_(std::move(hdr)) {}

  ContainerKind kind() const override { return ContainerKind::kLuks2; }

  std::vector<std::string> Warnings() const override {
    std::vector<std::string> w;
    if (!hdr_.primary_problem.empty()) w.push_back(CopyState("primary", hdr_.primary_problem));
    if (!hdr_.secondary_problem.empty()) {
      w.push_back(CopyState("secondary", hdr_.secondary_problem));
    }
    if (!hdr_.md.requirements.empty()) {
      std::string list;
      for (const auto& r : hdr_.md.requirements) list += (list.empty() ? "" : ", ") + r;
      w.push_back("container has mandatory requirements this version does not know (" + list +
                  "): it opens read-only and key management is refused");
    }
    return w;
  }

  std::vector<int> Keyslots() const override {
    std::vector<int> ids;
    for (const auto& [id, k] : hdr_.md.keyslots) {
      if (FindDigest(hdr_.md, id) != nullptr) ids.push_back(id);
    }
    return ids;
  }

  uint64_t HeaderRegionSize() const override {
    return 2 * hdr_.bin.hdr_size + hdr_.md.keyslots_size;
  }

  uint64_t DataOffset() const override {
    uint64_t off = UINT64_MAX;
    for (const auto& [id, s] : hdr_.md.segments) off = std::min(off, s.offset);
    return off == UINT64_MAX ? HeaderRegionSize() : off;
  }

  HeaderInfo Info() const override {
    const Luks2Header& h = hdr_;
    HeaderInfo info;
    info.kind = ContainerKind::kLuks2;
    info.version = 2;
    info.uuid = h.bin.uuid;
    info.label = h.bin.label;
    info.subsystem = h.bin.subsystem;
    info.seqid = h.bin.seqid;
    info.hdr_size = h.bin.hdr_size;
    info.keyslots_size = h.md.keyslots_size;
    info.flags = h.md.flags;
    info.requirements = h.md.requirements;
    info.tokens = h.md.token_count;
    info.allow_discards = AllowDiscards();
    info.warnings = Warnings();
    if (!h.md.segments.empty()) {
      const Segment& s = h.md.segments.begin()->second;
      info.data_offset = s.offset;
      info.sector_size = s.sector_size;
      info.iv_tweak = s.iv_tweak;
      info.cipher = s.encryption;
    }
    if (!h.md.digests.empty()) {
      const Digest& d = h.md.digests.begin()->second;
      info.digest_hash = d.hash;
      info.digest_iterations = d.iterations;
      info.digest_salt = d.salt;
      info.digest_value = d.digest;
    }
    for (const auto& [id, k] : h.md.keyslots) {
      KeyslotInfo ki;
      ki.id = id;
      ki.type = k.type;
      ki.usable = k.usable;
      ki.priority = k.priority;
      ki.key_bytes = k.key_size;
      ki.kdf = k.kdf.type;
      ki.time_cost = k.kdf.time;
      ki.memory_kib = k.kdf.memory_kib;
      ki.parallelism = k.kdf.cpus;
      ki.iterations = k.kdf.iterations;
      ki.hash = k.kdf.hash;
      ki.af_hash = k.af_hash;
      ki.stripes = k.stripes;
      ki.area_offset = k.area_offset;
      ki.area_size = k.area_size;
      ki.area_cipher = k.area_encryption;
      if (k.usable && info.key_bytes == 0) info.key_bytes = k.key_size;
      info.keyslots.push_back(ki);
    }
    return info;
  }

  Status CheckOpenable(std::optional<int> keyslot) const override {
    return CheckLuks2Openable(hdr_, keyslot);
  }

  Result<UnlockedKey> Unlock(const Secret& pass, std::optional<int> keyslot) const override {
    return UnlockLuks2(device(), hdr_, pass, keyslot);
  }

  Result<int> AddKey(const UnlockedKey& key, const Secret& added,
                     const KdfParams& kdf) override {
    RETURN_IF_ERROR(CheckManageable());
    ASSIGN_OR_RETURN(int digest, DigestOf(key));
    ASSIGN_OR_RETURN(int id, FreeKeyslotId(hdr_.md));
    Luks2Header h = hdr_;
    ASSIGN_OR_RETURN(uint64_t offset, FindFreeArea(h, AreaSize(key)));
    ASSIGN_OR_RETURN(Keyslot k,
                     SealLuks2Keyslot(device(), id, offset, key.volume_key, added, kdf, 1));
    h.md.doc["keyslots"][std::to_string(id)] = KeyslotToJson(k);
    AddIdToDigest(&h, digest, id);
    RETURN_IF_ERROR(Commit(std::move(h)));
    return id;
  }

  Result<int> ChangeKey(const UnlockedKey& key, const Secret& new_pass,
                        const KdfParams& kdf) override {
    RETURN_IF_ERROR(CheckManageable());
    Luks2Header h = hdr_;
    auto it = h.md.keyslots.find(key.keyslot);
    if (it == h.md.keyslots.end()) return Status::Internal("unlocked keyslot not in the header");
    const Keyslot old = it->second;
    ASSIGN_OR_RETURN(uint64_t offset, FindFreeArea(h, AreaSize(key)));
    ASSIGN_OR_RETURN(Keyslot k, SealLuks2Keyslot(device(), key.keyslot, offset, key.volume_key,
                                                 new_pass, kdf, old.priority));
    // Replace only the members we manage; anything else in the object survives.
    json& js = h.md.doc["keyslots"][std::to_string(key.keyslot)];
    json fresh = KeyslotToJson(k);
    for (auto& [name, value] : fresh.items()) js[name] = value;
    RETURN_IF_ERROR(Commit(std::move(h)));
    RETURN_IF_ERROR(WipeAreas(device(), {{old.area_offset, old.area_size}}));
    return key.keyslot;
  }

  Status ReplaceKeyslots(const UnlockedKey& key, const Secret& new_pass,
                         const KdfParams& kdf) override {
    RETURN_IF_ERROR(CheckManageable());
    ASSIGN_OR_RETURN(int digest, DigestOf(key));
    Luks2Header h = hdr_;
    ASSIGN_OR_RETURN(uint64_t offset, FindFreeArea(h, AreaSize(key)));
    std::vector<std::pair<uint64_t, uint64_t>> old_areas;
    for (const auto& [id, k] : h.md.keyslots) {
      if (k.type != "luks2") continue;  // keyslots of unknown types stay
      old_areas.emplace_back(k.area_offset, k.area_size);
      DropKeyslot(&h, id);
    }
    RETURN_IF_ERROR(Reparse(&h.md, h.bin.hdr_size));
    ASSIGN_OR_RETURN(int id, FreeKeyslotId(h.md));
    ASSIGN_OR_RETURN(Keyslot k,
                     SealLuks2Keyslot(device(), id, offset, key.volume_key, new_pass, kdf, 1));
    h.md.doc["keyslots"][std::to_string(id)] = KeyslotToJson(k);
    AddIdToDigest(&h, digest, id);
    // A header with other keyslots is another container: two headers with
    // different keyslots must not claim one UUID (udev, crypttab, blkid).
    h.bin.uuid = RandomUuid();
    RETURN_IF_ERROR(Commit(std::move(h)));
    return WipeAreas(device(), old_areas);
  }

  Status KillKeyslot(int keyslot, bool force) override {
    RETURN_IF_ERROR(CheckWritable());
    RETURN_IF_ERROR(CheckKeyslotNumber(keyslot));
    RETURN_IF_ERROR(RefuseRequirements());
    auto it = hdr_.md.keyslots.find(keyslot);
    if (it == hdr_.md.keyslots.end()) {
      return Status::NotFound("keyslot " + std::to_string(keyslot) + " does not exist");
    }
    if (Keyslots().size() <= 1 && !force) return LastKeyslot(keyslot);
    const std::pair<uint64_t, uint64_t> area{it->second.area_offset, it->second.area_size};
    Luks2Header h = hdr_;
    DropKeyslot(&h, keyslot);
    RETURN_IF_ERROR(Commit(std::move(h)));
    return WipeAreas(device(), {area});
  }

  Result<std::unique_ptr<CryptDevice>> Open(std::unique_ptr<BlockDevice> dev, UnlockedKey key,
                                            const OpenOptions& o) const override {
    CryptDevice::Params p;
    p.kind = ContainerKind::kLuks2;
    p.read_only = o.read_only || !hdr_.md.requirements.empty();
    p.keyslot = key.keyslot;
    p.warnings = Warnings();
    const Metadata& md = hdr_.md;
    const Digest* d = FindDigest(md, key.keyslot);
    if (d == nullptr || d->segments.empty()) {
      return Status::Unsupported("the volume key opens no segment");
    }
    const Segment& s = md.segments.at(*std::min_element(d->segments.begin(), d->segments.end()));
    if (s.type != "crypt" || s.encryption != "aes-xts-plain64") {
      return Status::Unsupported("segment type " + s.type + " / cipher " + s.encryption +
                                 " (only crypt aes-xts-plain64)");
    }
    const size_t vk_size = key.volume_key.size();
    if (vk_size != 32 && vk_size != 64) {
      return Status::Unsupported("volume key of " + std::to_string(vk_size) + " bytes");
    }
    p.data_offset = s.offset;
    p.data_size = s.dynamic ? 0 : s.size;
    p.sector_size = s.sector_size;
    p.iv_tweak = s.iv_tweak;
    p.allow_discards = AllowDiscards();
    if (s.offset > dev->size_bytes()) {
      return Status::Corruption("data segment starts past the end of the device");
    }
    ASSIGN_OR_RETURN(auto crypt,
                     CryptDevice::Create(std::move(dev), std::move(key.volume_key), p));
    if (o.crypt_threads > 1) crypt->set_crypt_threads(o.crypt_threads);
    return crypt;
  }

 private:
  bool AllowDiscards() const {
    const auto& f = hdr_.md.flags;
    return std::find(f.begin(), f.end(), "allow-discards") != f.end();
  }

  Status RefuseRequirements() const {
    if (hdr_.md.requirements.empty()) return Status::Ok();
    return Status::ReadOnly(
        "container has unknown mandatory requirements; key management refused");
  }

  Status CheckManageable() const {
    RETURN_IF_ERROR(CheckWritable());
    return RefuseRequirements();
  }

  static uint64_t AreaSize(const UnlockedKey& key) {
    return Luks2AreaSize(uint32_t(key.volume_key.size()));
  }

  Result<int> DigestOf(const UnlockedKey& key) const {
    const Digest* d = FindDigest(hdr_.md, key.keyslot);
    if (d == nullptr) return Status::Internal("unlocked keyslot has no digest");
    return d->id;
  }

  static void DropKeyslot(Luks2Header* h, int id) {
    h->md.doc["keyslots"].erase(std::to_string(id));
    EraseIdFromArrays(h->md.doc["digests"], "keyslots", id);
    EraseIdFromArrays(h->md.doc["tokens"], "keyslots", id);
  }

  static void AddIdToDigest(Luks2Header* h, int digest, int id) {
    h->md.doc["digests"][std::to_string(digest)]["keyslots"].push_back(std::to_string(id));
  }

  // Writes both copies; the in-memory header becomes what is on disk.
  Status Commit(Luks2Header h) {
    RETURN_IF_ERROR(WriteLuks2Header(device(), &h));
    hdr_ = std::move(h);
    return Status::Ok();
  }

  static Status LastKeyslot(int keyslot) {
    return Status::InvalidArgument("refusing to remove the last keyslot (" +
                                   std::to_string(keyslot) +
                                   "): the data would be unrecoverable; use force");
  }

  Luks2Header hdr_;
};

}  // namespace

std::unique_ptr<Container> MakeLuks2Container(BlockDevice& dev, Luks2Header hdr) {
  return std::make_unique<Luks2Container>(dev, std::move(hdr));
}

}  // namespace stack::fde::internal

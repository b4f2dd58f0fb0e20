// Key management: add, remove, change, replace keyslots; backup and restore.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "byte_io.h"
#include "crypto.h"
#include "fde/luks.h"
#include "keyslot_crypto.h"
#include "unlock.h"

namespace stack::fde {

using namespace internal;  // NOLINT

namespace {

using json = nlohmann::json;

Status RefuseRequirements(const Luks2Header& hdr) {
  if (hdr.md.requirements.empty()) return Status::Ok();
  return Status::ReadOnly("container has unknown mandatory requirements; key management refused");
}

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

void DropLuks2Keyslot(Luks2Header* hdr, int id) {
  hdr->md.doc["keyslots"].erase(std::to_string(id));
  EraseIdFromArrays(hdr->md.doc["digests"], "keyslots", id);
  EraseIdFromArrays(hdr->md.doc["tokens"], "keyslots", id);
}

void AddIdToDigest(Luks2Header* hdr, int digest, int id) {
  json& arr = hdr->md.doc["digests"][std::to_string(digest)]["keyslots"];
  arr.push_back(std::to_string(id));
}

Status WipeAreas(BlockDevice& dev, const std::vector<std::pair<uint64_t, uint64_t>>& areas) {
  for (const auto& [off, len] : areas) RETURN_IF_ERROR(ZeroAt(dev, off, len));
  return dev.Flush();
}

int ActiveLuks2Keyslots(const Metadata& md) {
  int n = 0;
  for (const auto& [id, k] : md.keyslots) {
    for (const auto& [did, d] : md.digests) {
      if (std::find(d.keyslots.begin(), d.keyslots.end(), id) != d.keyslots.end()) {
        ++n;
        break;
      }
    }
  }
  return n;
}

int ActiveLuks1Keyslots(const Luks1Header& h) {
  int n = 0;
  for (const auto& s : h.slots) n += s.active == kLuks1Active;
  return n;
}

Status WriteLuks1(BlockDevice& dev, const Luks1Header& h) {
  std::vector<uint8_t> raw(kLuks1HeaderSize);
  RETURN_IF_ERROR(EncodeLuks1(h, raw));
  RETURN_IF_ERROR(WriteAt(dev, 0, raw));
  return dev.Flush();
}

Status SealLuks1Slot(BlockDevice& dev, Luks1Header* h, int slot, const Secret& vk,
                     const Secret& pass, const KdfParams& params) {
  if (params.type != KdfType::kPbkdf2) return Status::InvalidArgument("LUKS1 keyslots use pbkdf2");
  KdfParams p = params;
  p.hash = h->hash_spec;
  ASSIGN_OR_RETURN(Kdf kdf, ResolveKdf(p));
  Luks1Slot& s = h->slots[size_t(slot)];
  ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(h->key_bytes));
  RETURN_IF_ERROR(DeriveKey(kdf, pass, &area_key));
  RETURN_IF_ERROR(SealKeyMaterial(dev, uint64_t(s.key_material_offset) * 512, area_key, vk,
                                  s.stripes, h->hash_spec));
  s.active = kLuks1Active;
  s.iterations = kdf.iterations;
  std::copy_n(kdf.salt.begin(), kLuks1SaltSize, s.salt.begin());
  return Status::Ok();
}

void DisableLuks1Slot(Luks1Header* h, int slot) {
  Luks1Slot& s = h->slots[size_t(slot)];
  s.active = kLuks1Disabled;
  s.iterations = 0;
  s.salt.fill(0);
}

Status WipeLuks1Slot(BlockDevice& dev, const Luks1Header& h, int slot) {
  const Luks1Slot& s = h.slots[size_t(slot)];
  RETURN_IF_ERROR(ZeroAt(dev, uint64_t(s.key_material_offset) * 512,
                         Luks1MaterialSectors(h.key_bytes, s.stripes) * 512));
  return dev.Flush();
}

Result<int> FreeLuks1Slot(const Luks1Header& h) {
  for (int i = 0; i < int(kLuks1Slots); ++i) {
    if (h.slots[size_t(i)].active != kLuks1Active) return i;
  }
  return Status::NoSpace("all 8 LUKS1 keyslots are in use");
}

Status CheckWritable(BlockDevice& dev) {
  if (dev.capabilities().read_only) return Status::ReadOnly(dev.describe() + " is read-only");
  return Status::Ok();
}

}  // namespace

Result<int> AddKey(BlockDevice& dev, const Secret& existing, const Secret& added,
                   const KdfParams& kdf) {
  RETURN_IF_ERROR(CheckWritable(dev));
  if (added.empty()) return Status::InvalidArgument("empty passphrase");
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Unlocked u, UnlockLuks1(dev, existing, std::nullopt));
    ASSIGN_OR_RETURN(int slot, FreeLuks1Slot(u.hdr));
    RETURN_IF_ERROR(SealLuks1Slot(dev, &u.hdr, slot, u.vk, added, kdf));
    RETURN_IF_ERROR(WriteLuks1(dev, u.hdr));
    return slot;
  }
  if (kind != ContainerKind::kLuks2) return Status::NotFound("no LUKS header on " + dev.describe());
  ASSIGN_OR_RETURN(Luks2Unlocked u, UnlockLuks2(dev, existing, std::nullopt));
  RETURN_IF_ERROR(RefuseRequirements(u.hdr));
  ASSIGN_OR_RETURN(int id, FreeKeyslotId(u.hdr.md));
  ASSIGN_OR_RETURN(uint64_t offset, FindFreeArea(u.hdr, Luks2AreaSize(uint32_t(u.vk.size()))));
  ASSIGN_OR_RETURN(Keyslot k, SealLuks2Keyslot(dev, id, offset, u.vk, added, kdf, 1));
  u.hdr.md.doc["keyslots"][std::to_string(id)] = KeyslotToJson(k);
  AddIdToDigest(&u.hdr, u.digest, id);
  RETURN_IF_ERROR(WriteLuks2Header(dev, &u.hdr));
  return id;
}

Result<int> RemoveKey(BlockDevice& dev, const Secret& passphrase, bool force) {
  RETURN_IF_ERROR(CheckWritable(dev));
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  int slot = -1;
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Unlocked u, UnlockLuks1(dev, passphrase, std::nullopt));
    slot = u.keyslot;
  } else if (kind == ContainerKind::kLuks2) {
    ASSIGN_OR_RETURN(Luks2Unlocked u, UnlockLuks2(dev, passphrase, std::nullopt));
    slot = u.keyslot;
  } else {
    return Status::NotFound("no LUKS header on " + dev.describe());
  }
  RETURN_IF_ERROR(KillKeyslot(dev, slot, force));
  return slot;
}

Status KillKeyslot(BlockDevice& dev, int keyslot, bool force) {
  RETURN_IF_ERROR(CheckWritable(dev));
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  if (kind != ContainerKind::kNone) RETURN_IF_ERROR(CheckKeyslotNumber(kind, keyslot));
  const std::string last_msg = "refusing to remove the last keyslot (" + std::to_string(keyslot) +
                               "): the data would be unrecoverable; use force";
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Header h, ReadLuks1Header(dev));
    if (keyslot < 0 || keyslot >= int(kLuks1Slots) ||
        h.slots[size_t(keyslot)].active != kLuks1Active) {
      return Status::NotFound("keyslot " + std::to_string(keyslot) + " is not active");
    }
    if (ActiveLuks1Keyslots(h) == 1 && !force) return Status::InvalidArgument(last_msg);
    DisableLuks1Slot(&h, keyslot);
    RETURN_IF_ERROR(WriteLuks1(dev, h));
    return WipeLuks1Slot(dev, h, keyslot);
  }
  if (kind != ContainerKind::kLuks2) return Status::NotFound("no LUKS header on " + dev.describe());
  ASSIGN_OR_RETURN(Luks2Header hdr, ReadLuks2Header(dev));
  RETURN_IF_ERROR(RefuseRequirements(hdr));
  auto it = hdr.md.keyslots.find(keyslot);
  if (it == hdr.md.keyslots.end()) {
    return Status::NotFound("keyslot " + std::to_string(keyslot) + " does not exist");
  }
  if (ActiveLuks2Keyslots(hdr.md) <= 1 && !force) return Status::InvalidArgument(last_msg);
  const std::pair<uint64_t, uint64_t> area{it->second.area_offset, it->second.area_size};
  DropLuks2Keyslot(&hdr, keyslot);
  RETURN_IF_ERROR(WriteLuks2Header(dev, &hdr));
  return WipeAreas(dev, {area});
}

Result<int> ChangeKey(BlockDevice& dev, const Secret& old_pass, const Secret& new_pass,
                      const KdfParams& kdf) {
  RETURN_IF_ERROR(CheckWritable(dev));
  if (new_pass.empty()) return Status::InvalidArgument("empty passphrase");
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Unlocked u, UnlockLuks1(dev, old_pass, std::nullopt));
    // A free slot keeps the old one valid until the header commits; with all
    // eight in use the old slot is rewritten in place (as cryptsetup does).
    auto free_slot = FreeLuks1Slot(u.hdr);
    const int slot = free_slot.ok() ? *free_slot : u.keyslot;
    Luks1Header h = u.hdr;
    RETURN_IF_ERROR(SealLuks1Slot(dev, &h, slot, u.vk, new_pass, kdf));
    if (slot != u.keyslot) DisableLuks1Slot(&h, u.keyslot);
    RETURN_IF_ERROR(WriteLuks1(dev, h));
    if (slot != u.keyslot) RETURN_IF_ERROR(WipeLuks1Slot(dev, h, u.keyslot));
    return slot;
  }
  if (kind != ContainerKind::kLuks2) return Status::NotFound("no LUKS header on " + dev.describe());
  ASSIGN_OR_RETURN(Luks2Unlocked u, UnlockLuks2(dev, old_pass, std::nullopt));
  RETURN_IF_ERROR(RefuseRequirements(u.hdr));
  const Keyslot old = u.hdr.md.keyslots.at(u.keyslot);
  ASSIGN_OR_RETURN(uint64_t offset, FindFreeArea(u.hdr, Luks2AreaSize(uint32_t(u.vk.size()))));
  ASSIGN_OR_RETURN(Keyslot k,
                   SealLuks2Keyslot(dev, u.keyslot, offset, u.vk, new_pass, kdf, old.priority));
  // Replace only the members we manage; anything else in the object survives.
  json& js = u.hdr.md.doc["keyslots"][std::to_string(u.keyslot)];
  json fresh = KeyslotToJson(k);
  for (auto& [key, value] : fresh.items()) js[key] = value;
  RETURN_IF_ERROR(WriteLuks2Header(dev, &u.hdr));
  RETURN_IF_ERROR(WipeAreas(dev, {{old.area_offset, old.area_size}}));
  return u.keyslot;
}

Status ReplaceKeyslots(BlockDevice& dev, const Secret& old_pass, const Secret& new_pass,
                       const KdfParams& kdf) {
  RETURN_IF_ERROR(CheckWritable(dev));
  if (new_pass.empty()) return Status::InvalidArgument("empty passphrase");
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Unlocked u, UnlockLuks1(dev, old_pass, std::nullopt));
    ASSIGN_OR_RETURN(int slot, FreeLuks1Slot(u.hdr));
    Luks1Header h = u.hdr;
    RETURN_IF_ERROR(SealLuks1Slot(dev, &h, slot, u.vk, new_pass, kdf));
    std::vector<int> dropped;
    for (int i = 0; i < int(kLuks1Slots); ++i) {
      if (i != slot && h.slots[size_t(i)].active == kLuks1Active) {
        DisableLuks1Slot(&h, i);
        dropped.push_back(i);
      }
    }
    RETURN_IF_ERROR(WriteLuks1(dev, h));
    for (int i : dropped) RETURN_IF_ERROR(WipeLuks1Slot(dev, h, i));
    return Status::Ok();
  }
  if (kind != ContainerKind::kLuks2) return Status::NotFound("no LUKS header on " + dev.describe());
  ASSIGN_OR_RETURN(Luks2Unlocked u, UnlockLuks2(dev, old_pass, std::nullopt));
  RETURN_IF_ERROR(RefuseRequirements(u.hdr));
  ASSIGN_OR_RETURN(uint64_t offset, FindFreeArea(u.hdr, Luks2AreaSize(uint32_t(u.vk.size()))));
  std::vector<std::pair<uint64_t, uint64_t>> old_areas;
  for (const auto& [id, k] : u.hdr.md.keyslots) {
    if (k.type != "luks2") continue;  // keyslots of unknown types stay
    old_areas.emplace_back(k.area_offset, k.area_size);
    DropLuks2Keyslot(&u.hdr, id);
  }
  RETURN_IF_ERROR(Reparse(&u.hdr.md, u.hdr.bin.hdr_size));
  ASSIGN_OR_RETURN(int id, FreeKeyslotId(u.hdr.md));
  ASSIGN_OR_RETURN(Keyslot k, SealLuks2Keyslot(dev, id, offset, u.vk, new_pass, kdf, 1));
  u.hdr.md.doc["keyslots"][std::to_string(id)] = KeyslotToJson(k);
  AddIdToDigest(&u.hdr, u.digest, id);
  RETURN_IF_ERROR(WriteLuks2Header(dev, &u.hdr));
  return WipeAreas(dev, old_areas);
}

// ---- header backup / restore ------------------------------------------------

namespace {

// Kind and size of the header region (header copies + keyslots) of a device
// or image, and its data offset.
struct HeaderRegion {
  ContainerKind kind = ContainerKind::kNone;
  uint64_t size = 0;
  uint64_t data_offset = 0;
};

Result<HeaderRegion> RegionOfLuks2(const Luks2Header& h) {
  HeaderRegion r;
  r.kind = ContainerKind::kLuks2;
  r.size = 2 * h.bin.hdr_size + h.md.keyslots_size;
  r.data_offset = UINT64_MAX;
  for (const auto& [id, s] : h.md.segments) r.data_offset = std::min(r.data_offset, s.offset);
  if (r.data_offset == UINT64_MAX) r.data_offset = r.size;
  return r;
}

Result<HeaderRegion> RegionOfDevice(BlockDevice& dev) {
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  if (kind == ContainerKind::kLuks2) {
    ASSIGN_OR_RETURN(Luks2Header h, ReadLuks2Header(dev));
    return RegionOfLuks2(h);
  }
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Header h, ReadLuks1Header(dev));
    HeaderRegion r;
    r.kind = kind;
    r.size = r.data_offset = uint64_t(h.payload_offset) * 512;
    return r;
  }
  return HeaderRegion{};
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Status BackupHeader(BlockDevice& dev, const std::string& path) {
  ASSIGN_OR_RETURN(HeaderRegion r, RegionOfDevice(dev));
  if (r.kind == ContainerKind::kNone) return Status::NotFound("no LUKS header on " + dev.describe());
  std::vector<uint8_t> bytes(r.size);
  RETURN_IF_ERROR(ReadAt(dev, 0, bytes));
  FdCloser fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) return Status::AlreadyExists("backup file " + path + " exists");
    return Status::FromErrno("creating " + path, errno);
  }
  for (size_t off = 0; off < bytes.size();) {
    ssize_t w = ::write(fd.get(), bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::FromErrno("writing " + path, errno);
    off += size_t(w);
  }
  if (::fsync(fd.get()) != 0) return Status::FromErrno("fsync " + path, errno);
  return Status::Ok();
}

Status RestoreHeader(BlockDevice& dev, const std::string& path) {
  RETURN_IF_ERROR(CheckWritable(dev));
  FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::NotFound("backup file " + path + " does not exist");
    return Status::FromErrno("opening " + path, errno);
  }
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return Status::FromErrno("sizing " + path, errno);
  if (size < 4096 || size > (off_t(64) << 20)) {
    return Status::InvalidArgument(path + " has no plausible LUKS header backup size");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  for (size_t off = 0; off < bytes.size();) {
    ssize_t n = ::pread(fd.get(), bytes.data() + off, bytes.size() - off, off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("reading " + path, errno);
    if (n == 0) return Status::IoError("short read from " + path);
    off += size_t(n);
  }
  HeaderRegion file;
  static const uint8_t kLuks[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
  if (std::memcmp(bytes.data(), kLuks, 6) == 0 && bytes[6] == 0 && bytes[7] == 1) {
    ASSIGN_OR_RETURN(Luks1Header h, DecodeLuks1(bytes));
    file.kind = ContainerKind::kLuks1;
    file.size = file.data_offset = uint64_t(h.payload_offset) * 512;
  } else {
    auto h = ParseLuks2Image(bytes);
    if (!h.ok()) return h.status().WithContext("backup file " + path + " is not a valid header");
    if (!h->primary_problem.empty() || !h->secondary_problem.empty()) {
      return Status::Corruption("backup file " + path + " has a damaged header copy");
    }
    ASSIGN_OR_RETURN(file, RegionOfLuks2(*h));
  }
  if (file.size != bytes.size()) {
    return Status::InvalidArgument("backup file " + path + " size does not match its header");
  }
  if (file.size > dev.size_bytes()) return Status::InvalidArgument("backup larger than the device");
  auto current = RegionOfDevice(dev);
  if (current.ok() && current->kind != ContainerKind::kNone &&
      (current->kind != file.kind || current->data_offset != file.data_offset)) {
    return Status::InvalidArgument("backup does not match the container on the device (kind or "
                                   "data offset differ)");
  }
  RETURN_IF_ERROR(WriteAt(dev, 0, bytes));
  return dev.Flush();
}

}  // namespace stack::fde

#include "stack/resize.h"

#include "fde/luks.h"
#include "fsbridge/filesystem.h"
#include "pool/pool.h"
#include "stack/volume_store.h"

namespace stack::compose {
namespace {

void Raise(HeldSize* h, uint64_t bytes, std::string what) {
  if (bytes > h->bytes) *h = HeldSize{bytes, std::move(what)};
}

// The size of the ext4 on dev (offset bytes into the volume), if it is one.
Status RaiseForExt4(HeldSize* h, std::unique_ptr<BlockDevice> dev, uint64_t offset,
                    const std::string& what) {
  auto fs = fsbridge::Filesystem::Open(std::move(dev), false);
  if (fs.ok()) {
    ASSIGN_OR_RETURN(auto df, (*fs)->Df());
    Raise(h, offset + df.blocks_total * df.block_size, what);
    return Status::Ok();
  }
  // Not a file system we know: the mapped data still bounds it.
  if (fs.status().Is(Code::kCorruption) || fs.status().Is(Code::kUnsupported))
    return Status::Ok();
  return fs.status();
}

}  // namespace

Result<HeldSize> MeasureHeld(VolumeStore& pool, const std::string& name,
                             const SecretGetter* passphrase) {
  HeldSize held;
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, pool.OpenVolume(name, true));
  const uint64_t size = dev->size_bytes();
  ASSIGN_OR_RETURN(auto extents, dev->AllocatedExtents(0, size));
  if (!extents.empty())
    Raise(&held, extents.back().offset + extents.back().length, "mapped data");
  if (extents.empty()) return held;  // nothing written: no header either
  ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*dev));
  const std::string luks = kind == fde::ContainerKind::kLuks1 ? "LUKS1" : "LUKS2";
  if (kind != fde::ContainerKind::kNone && passphrase == nullptr) {
    Raise(&held, size,
          "a " + luks + " container, whose data runs to the end of the volume; "
          "--key-file measures the file system inside");
    return held;
  }
  if (kind != fde::ContainerKind::kNone) {
    ASSIGN_OR_RETURN(Unlocked u, Unlock(std::move(dev), *passphrase, false));
    const uint64_t data_offset = size - u.device->size_bytes();
    Raise(&held, data_offset, "the " + luks + " header");
    RETURN_IF_ERROR(RaiseForExt4(&held, std::move(u.device), data_offset,
                                 "the ext4 file system in the " + luks + " container"));
    return held;
  }
  RETURN_IF_ERROR(RaiseForExt4(&held, std::move(dev), 0, "an ext4 file system"));
  return held;
}

Status ResizeVolume(VolumeStore& pool, const std::string& name, uint64_t new_size, bool force,
                    const SecretGetter* passphrase) {
  ASSIGN_OR_RETURN(auto info, pool.Stat(name));
  if (new_size < info.size_bytes && !force) {
    ASSIGN_OR_RETURN(HeldSize held, MeasureHeld(pool, name, passphrase));
    if (new_size < held.bytes)
      return Status::OutOfRange(name + " holds " + std::to_string(held.bytes) + " bytes (" +
                                held.what + "): shrinking to " + std::to_string(new_size) +
                                " would destroy it (use --force to cut it anyway)");
  }
  return pool.Resize(name, new_size);
}

namespace {

std::string Fmt(uint64_t b) { return std::to_string(b) + " bytes"; }

// Grows the ext4 in `name` to fill the volume (see GrowVolume).
Status GrowFsIn(VolumeStore& pool, const std::string& name, const SecretGetter* passphrase,
                bool require_fs, GrowReport* rep) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, pool.OpenVolume(name, false));
  ASSIGN_OR_RETURN(rep->encryption, fde::Probe(*dev));
  const std::string luks = rep->encryption == fde::ContainerKind::kLuks1 ? "LUKS1" : "LUKS2";
  if (rep->encryption != fde::ContainerKind::kNone && passphrase == nullptr) {
    rep->fs_note = "the file system in the " + luks +
                   " container was not grown (no passphrase given): `stack fs resize` grows it";
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(Unlocked u,
                   Unlock(std::move(dev), passphrase ? *passphrase : SecretGetter(), true));
  const uint64_t room = u.device->size_bytes();
  auto opened = fsbridge::Filesystem::Open(std::move(u.device), true);
  if (!opened.ok()) {
    if (require_fs || !opened.status().Is(Code::kCorruption))
      return opened.status().WithContext(name);
    rep->fs_note = "no ext4 file system in " + name + ": nothing to grow";
    return Status::Ok();
  }
  fsbridge::Filesystem& fs = **opened;
  ASSIGN_OR_RETURN(fsbridge::DfInfo df, fs.Df());
  rep->fs_before = rep->fs_after = df.blocks_total * df.block_size;
  ASSIGN_OR_RETURN(rep->fs_after, fs.Grow(0));
  RETURN_IF_ERROR(fs.Close());
  rep->fs_grown = rep->fs_after > rep->fs_before;
  if (!rep->fs_grown)
    rep->fs_note = "the file system already fills " +
                   (rep->encryption == fde::ContainerKind::kNone
                        ? name
                        : "the " + luks + " data segment (" + Fmt(room) + ")");
  return Status::Ok();
}

}  // namespace

Result<GrowReport> GrowVolume(VolumeStore& pool, const std::string& name, uint64_t new_size,
                              bool grow_fs, const SecretGetter* passphrase, bool require_fs) {
  GrowReport rep;
  ASSIGN_OR_RETURN(auto info, pool.Stat(name));
  rep.volume_before = rep.volume_after = info.size_bytes;
  if (new_size && new_size < info.size_bytes)
    return Status::Unsupported(name + " is " + Fmt(info.size_bytes) + ": growing to " +
                               Fmt(new_size) + " would shrink it (`stack volume resize` shrinks)");
  if (new_size > info.size_bytes) {
    RETURN_IF_ERROR(pool.Resize(name, new_size));
    rep.volume_after = new_size;
  }
  if (!grow_fs) return rep;
  Status st = GrowFsIn(pool, name, passphrase, require_fs, &rep);
  if (!st.ok() && rep.volume_after > rep.volume_before) {
    // The file system refused before changing anything (or failed before
    // writing its new layout): the volume goes back to what it was.
    Status back = pool.Resize(name, rep.volume_before);
    if (!back.ok())
      return st.WithContext(name + " stays at " + Fmt(rep.volume_after) + " (" + back.ToString() +
                            ")");
  }
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(pool.Commit());
  return rep;
}

}  // namespace stack::compose

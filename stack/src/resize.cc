#include "stack/resize.h"

#include "fde/luks.h"
#include "fsbridge/filesystem.h"
#include "pool/pool.h"

namespace stack::compose {
namespace {

void Raise(HeldSize* h, uint64_t bytes, std::string what) {
  if (bytes > h->bytes) *h = HeldSize{bytes, std::move(what)};
}

}  // namespace

Result<HeldSize> MeasureHeld(pool::Pool& pool, const std::string& name) {
  HeldSize held;
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, pool.OpenVolume(name, true));
  const uint64_t size = dev->size_bytes();
  ASSIGN_OR_RETURN(auto extents, dev->AllocatedExtents(0, size));
  if (!extents.empty())
    Raise(&held, extents.back().offset + extents.back().length, "mapped data");
  if (extents.empty()) return held;  // nothing written: no header either
  ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*dev));
  if (kind != fde::ContainerKind::kNone) {
    Raise(&held, size,
          std::string(kind == fde::ContainerKind::kLuks1 ? "a LUKS1" : "a LUKS2") +
              " container (its data runs to the end of the volume)");
    return held;
  }
  // A plain ext4: its superblock's size. Anything else is not a file
  // system we know (the mapped data still bounds it).
  auto fs = fsbridge::Filesystem::Open(std::move(dev), false);
  if (fs.ok()) {
    ASSIGN_OR_RETURN(auto df, (*fs)->Df());
    Raise(&held, df.blocks_total * df.block_size, "an ext4 file system");
  } else if (!fs.status().Is(Code::kCorruption) && !fs.status().Is(Code::kUnsupported)) {
    return fs.status();
  }
  return held;
}

Status ResizeVolume(pool::Pool& pool, const std::string& name, uint64_t new_size, bool force) {
  ASSIGN_OR_RETURN(auto info, pool.Stat(name));
  if (new_size < info.size_bytes && !force) {
    ASSIGN_OR_RETURN(HeldSize held, MeasureHeld(pool, name));
    if (new_size < held.bytes)
      return Status::OutOfRange(name + " holds " + std::to_string(held.bytes) + " bytes (" +
                                held.what + "): shrinking to " + std::to_string(new_size) +
                                " would destroy it (use --force to cut it anyway)");
  }
  return pool.Resize(name, new_size);
}

}  // namespace stack::compose

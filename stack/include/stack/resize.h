// Resizing a volume without destroying what it holds.
//
// Growing is always allowed. Shrinking below what the volume holds is
// refused with OutOfRange naming that size, unless forced:
//   - its highest mapped block (data would be freed);
//   - a LUKS container: its data segment runs to the end of the volume
//     (cryptsetup's "dynamic" size), so any shrink cuts it; the header alone
//     says so, no passphrase is needed;
//   - a plain ext4 file system: the size in its superblock.
// The largest of these is the floor. (The ext4 inside a LUKS container is
// covered by the container's floor.)
//
// Thread-safety: as the Pool.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"

namespace stack::pool {
class Pool;
}

namespace stack::compose {

struct HeldSize {
  uint64_t bytes = 0;  // the volume cannot shrink below this without loss
  std::string what;    // what holds it, e.g. "the ext4 file system"
};

// What `name` (a volume) holds; bytes 0 for an empty volume.
Result<HeldSize> MeasureHeld(pool::Pool& pool, const std::string& name);

// Resizes `name` to new_size (whole pool blocks). Shrinking below
// MeasureHeld is OutOfRange unless force; nothing changes then.
Status ResizeVolume(pool::Pool& pool, const std::string& name, uint64_t new_size, bool force);

}  // namespace stack::compose

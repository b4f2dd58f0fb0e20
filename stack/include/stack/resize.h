// Resizing a volume without destroying what it holds.
//
// Growing is always allowed. Shrinking below what the volume holds is
// refused with OutOfRange naming that size, unless forced:
//   - its highest mapped block (data would be freed);
//   - a LUKS container: its data segment runs to the end of the volume
//     (cryptsetup's "dynamic" size), so any shrink cuts it; the header alone
//     says so, no passphrase is needed. With a passphrase the container is
//     opened instead and the ext4 inside measured: the floor is then the
//     data offset plus the file system's size (the dynamic segment follows
//     the volume);
//   - a plain ext4 file system: the size in its superblock.
// The largest of these is the floor. (The ext4 inside a LUKS container is
// covered by the container's floor.)
//
// Thread-safety: as the Pool.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"
#include "stack/unlock.h"

namespace stack {
class VolumeStore;
}

namespace stack::compose {

struct HeldSize {
  uint64_t bytes = 0;  // the volume cannot shrink below this without loss
  std::string what;    // what holds it, e.g. "the ext4 file system"
};

// What `name` (a volume) holds; bytes 0 for an empty volume. passphrase:
// null to judge an encrypted volume by its header alone.
Result<HeldSize> MeasureHeld(VolumeStore& pool, const std::string& name,
                             const SecretGetter* passphrase = nullptr);

// Resizes `name` to new_size (whole pool blocks). Shrinking below
// MeasureHeld is OutOfRange unless force; nothing changes then.
Status ResizeVolume(VolumeStore& pool, const std::string& name, uint64_t new_size, bool force,
                    const SecretGetter* passphrase = nullptr);

}  // namespace stack::compose

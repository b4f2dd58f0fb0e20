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
// Growing a volume can grow the ext4 in it too (GrowVolume): the LUKS data
// segment follows the volume, and the file system is grown in place.
//
// Thread-safety: as the Pool.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"
#include "fde/crypt_device.h"
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

// What GrowVolume did.
struct GrowReport {
  uint64_t volume_before = 0, volume_after = 0;  // bytes
  fde::ContainerKind encryption = fde::ContainerKind::kNone;
  bool fs_grown = false;                 // the ext4 now fills the (decrypted) volume
  uint64_t fs_before = 0, fs_after = 0;  // bytes of the ext4 (0: none opened)
  // Why the file system was not grown, when it was not: no ext4 in it, an
  // encrypted volume without a passphrase, already filling it.
  std::string fs_note;
};

// Grows volume `name` to new_size (0: keep its size; else whole pool blocks,
// at least its size: smaller is Unsupported, nothing changed), then, with
// grow_fs, the ext4 it holds to fill it (fsbridge Filesystem::Grow): plain,
// or inside a LUKS container whose data segment follows the volume
// (LUKS2 "dynamic", LUKS1), opened with `passphrase`. An encrypted volume
// without a passphrase (null) keeps its file system as it was (fs_note
// says so: `stack fs resize` grows it later); so does a volume holding no
// ext4. A file system that cannot grow that far (Filesystem::Grow's
// Unsupported) fails the call with the volume put back to its old size.
// require_fs (`stack fs resize`): a volume holding no ext4 is the error
// Filesystem::Open gives (Corruption), and the volume is put back too.
// Durable when it returns (the pool is committed).
Result<GrowReport> GrowVolume(VolumeStore& pool, const std::string& name, uint64_t new_size,
                              bool grow_fs, const SecretGetter* passphrase,
                              bool require_fs = false);

}  // namespace stack::compose

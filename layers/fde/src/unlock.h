// Finding the volume key: trying a passphrase against the keyslots of a
// LUKS2 or LUKS1 header. Shared by Open and key management.
//
// Unlock* never writes. AuthFailed when no keyslot accepts the passphrase;
// NotFound when opts.keyslot names an absent or unusable keyslot.
// Thread-safety: as the device.
#pragma once

#include <optional>

#include "block/block_device.h"
#include "fde/secret.h"
#include "luks1_header.h"
#include "luks2_container.h"

namespace stack::fde::internal {

inline constexpr uint64_t kLuks2DefaultKeyslotsSize = 16744448;  // cryptsetup 2.6
inline constexpr uint64_t kLuks2DefaultDataOffset = 16u << 20;

struct Luks2Unlocked {
  Luks2Header hdr;
  Secret vk;
  int keyslot = -1;
  int digest = -1;
};

struct Luks1Unlocked {
  Luks1Header hdr;
  Secret vk;
  int keyslot = -1;
};

Result<Luks2Unlocked> UnlockLuks2(BlockDevice& dev, const Secret& pass, std::optional<int> keyslot);
Result<Luks1Header> ReadLuks1Header(BlockDevice& dev);
Result<Luks1Unlocked> UnlockLuks1(BlockDevice& dev, const Secret& pass, std::optional<int> keyslot);
// Checks a LUKS1 master-key candidate against the header digest (constant time).
Result<bool> CheckLuks1Digest(const Luks1Header& h, const Secret& vk);
// Checks a LUKS2 volume-key candidate against one digest (constant time).
Result<bool> CheckLuks2Digest(const Digest& d, const Secret& vk);

// Size of a LUKS2 keyslot area for a key: AF material rounded up to 4 KiB.
uint64_t Luks2AreaSize(uint32_t key_bytes);
// Lowest offset in the keyslots area with `size` free bytes (4 KiB aligned)
// outside every existing keyslot area. NoSpace when none.
Result<uint64_t> FindFreeArea(const Luks2Header& hdr, uint64_t size);
// Lowest keyslot id in [0, 32) not present in the metadata. NoSpace if none.
Result<int> FreeKeyslotId(const Metadata& md);
// The LUKS1 layout for a key size: keyslot material offsets (sectors) and payload offset.
void Luks1Layout(uint32_t key_bytes, uint32_t out_offsets[8], uint32_t* payload_sectors);

}  // namespace stack::fde::internal

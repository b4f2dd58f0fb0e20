// Finding the volume key: trying a passphrase against the keyslots of a
// LUKS2 or LUKS1 header. Shared by Open and key management.
//
// Unlock* never writes. They first check the header says we can open the
// container (CheckLuks2Openable / CheckOpenable: Unsupported naming what,
// before any KDF runs). A keyslot that cannot be tried (its area unreadable:
// I/O error, checksum error from the device below; KDF failure) is not a
// wrong passphrase: when no other keyslot opens, that error is returned
// with its own code. AuthFailed only when every keyslot was tried and none
// matched. NotFound when `keyslot` names an absent keyslot, InvalidArgument
// when it is out of range for the version.
// Thread-safety: as the device.
#pragma once

#include <optional>

#include "block/block_device.h"
#include "fde/luks.h"
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

inline constexpr int kLuks2MaxKeyslots = 32;

// The digest a LUKS2 keyslot is bound to, or nullptr.
const Digest* FindDigest(const Metadata& md, int keyslot);
// Whether this build can open a container with this header (see luks.h
// CheckOpenable for the rules).
Status CheckLuks2Openable(const Luks2Header& hdr, std::optional<int> keyslot);
// CheckOpenable for a container of a known kind.
Status CheckContainerOpenable(BlockDevice& dev, ContainerKind kind, std::optional<int> keyslot);

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

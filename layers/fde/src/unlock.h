// Finding the volume key: trying a passphrase against the keyslots of a
// LUKS2 or LUKS1 header already read (by Container::Read). Used by the two
// Container implementations.
//
// Unlock* never writes and never re-reads the header. They first check the
// header says we can open the container (CheckLuks2Openable /
// CheckLuks1Openable: Unsupported naming what, before any KDF runs). A
// keyslot that cannot be tried (its area unreadable: I/O error, checksum
// error from the device below; KDF failure) is not a wrong passphrase: when
// no other keyslot opens, that error is returned with its own code.
// AuthFailed only when every keyslot was tried and none matched. NotFound
// when `keyslot` names an absent keyslot, InvalidArgument when it is out of
// range for the version.
// Thread-safety: as the device.
#pragma once

#include <optional>

#include "block/block_device.h"
#include "fde/container.h"
#include "fde/luks.h"
#include "fde/secret.h"
#include "luks1_header.h"
#include "luks2_header.h"

namespace stack::fde::internal {

inline constexpr uint64_t kLuks2DefaultKeyslotsSize = 16744448;  // cryptsetup 2.6
inline constexpr uint64_t kLuks2DefaultDataOffset = 16u << 20;

inline constexpr int kLuks2MaxKeyslots = 32;

// The digest a LUKS2 keyslot is bound to, or nullptr.
const Digest* FindDigest(const Metadata& md, int keyslot);
// Whether this build can open a container with this header (see luks.h
// CheckOpenable for the rules).
Status CheckLuks2Openable(const Luks2Header& hdr, std::optional<int> keyslot);
// The same for a LUKS1 header.
Status CheckLuks1Openable(const Luks1Header& hdr, std::optional<int> keyslot);

Result<UnlockedKey> UnlockLuks2(BlockDevice& dev, const Luks2Header& hdr, const Secret& pass,
                                std::optional<int> keyslot);
Result<UnlockedKey> UnlockLuks1(BlockDevice& dev, const Luks1Header& hdr, const Secret& pass,
                                std::optional<int> keyslot);
// Reads and decodes the LUKS1 header (payload inside the device).
Result<Luks1Header> ReadLuks1Header(BlockDevice& dev);
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

// The Container implementations over a header already read.
std::unique_ptr<Container> MakeLuks1Container(BlockDevice& dev, Luks1Header hdr);
std::unique_ptr<Container> MakeLuks2Container(BlockDevice& dev, Luks2Header hdr);

}  // namespace stack::fde::internal

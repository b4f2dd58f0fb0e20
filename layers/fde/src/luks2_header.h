// Reading and writing a whole LUKS2 header (both copies) on a BlockDevice.
//
// Read: each copy is checked in order bounds -> checksum -> JSON; a copy that
// fails is reported with why (never repaired here). If the primary is bad its
// hdr_size is unknown, so the secondary is looked for at every legal hdr_size.
// Of the valid copies the higher seqid wins; the result names the copies that
// are damaged or stale. Both bad -> Corruption. An I/O error is IoError,
// never mistaken for corruption.
//
// Write: seqid+1, both copies re-encoded with fresh checksums, the primary
// written and flushed, then the secondary written and flushed, so at every
// instant at least one valid copy exists.
//
// Thread-safety: as the device.
#pragma once

#include <string>

#include "block/block_device.h"
#include "luks2_disk.h"
#include "luks2_metadata.h"

namespace stack::fde::internal {

struct Luks2Header {
  Luks2Binary bin;  // fields of the winning copy (primary's magic/offset)
  Metadata md;
  // Empty when that copy is valid and current; else what is wrong with it.
  std::string primary_problem, secondary_problem;
};

Result<Luks2Header> ReadLuks2Header(BlockDevice& dev);
// Parses a header image held in memory (header backup files, fuzzing).
Result<Luks2Header> ParseLuks2Image(std::span<const uint8_t> image);
// Increments hdr->bin.seqid and writes both copies.
Status WriteLuks2Header(BlockDevice& dev, Luks2Header* hdr);
// Encodes one copy (hdr_size bytes) with its checksum.
Status EncodeLuks2Copy(const Luks2Header& hdr, bool secondary, std::vector<uint8_t>* out);

}  // namespace stack::fde::internal

// The block diff of two entries of one pool (`stack diff`): which byte
// ranges of `to` differ from `from`, and of what kind (Pool::Diff), with
// both entries' sizes so a caller can tell a size change apart (a size
// change is not a range).
//
// Time follows what changed, not the entries' size: Pool::Diff skips every
// subtree the two entries share, and the sizes come from opening the
// entries (no space accounting walk).
//
// Thread-safety: as the Pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "block/status.h"
#include "pool/pool.h"
#include "stack/volume_store.h"

namespace stack::compose {

struct BlockDiffReport {
  std::string from, to;  // entry names as given
  uint64_t from_size_bytes = 0;
  uint64_t to_size_bytes = 0;
  uint32_t block_size = 0;
  std::vector<pool::DiffRange> ranges;  // ascending, merged (Pool::Diff)
  pool::DiffStats stats;
};

// The diff from `from` to `to` (each VOLUME or VOLUME@SNAPSHOT, see
// address.h). InvalidArgument for a malformed address, NotFound naming a
// missing entry.
Result<BlockDiffReport> DiffEntries(VolumeStore& pool, const std::string& from,
                                    const std::string& to);

}  // namespace stack::compose

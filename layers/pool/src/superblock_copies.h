// The four superblock copies and the rule that picks the generation a pool
// opens at (spec/pool-format.md, "Crash model": the table there is the
// contract this file implements).
//
// A commit of generation G writes slot s = G % 2: its primary copy (block
// s), flush, its mirror (block s + 2), flush; only then is it
// acknowledged. A crash can therefore leave at most one copy torn or
// stale, and only in one of two patterns:
//   - the newest slot's primary holds G and its mirror does not (the crash
//     came between the two writes): open G;
//   - the other slot's primary is unreadable and its mirror holds G - 1
//     (the crash tore the primary of G + 1, never acknowledged): open G.
// Anything else is damage that happened after a commit completed: repaired
// from the intact copy of the same generation (and reported), or, when both
// copies of the other slot are unreadable (it may have held a committed
// G + 1), refused unless the caller accepts losing that generation.
//
// Thread-safety: ReadSuperCopies needs exclusive use of the store (the pool
// lock); JudgeSuperCopies is a pure function.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pool/store.h"
#include "superblock.h"

namespace stack::pool {

struct SuperCopy {
  uint64_t block = 0;    // 0-3
  Result<Superblock> sb = Status::Corruption("not read");
  std::string found;     // what the copy holds when it is not a valid superblock
  bool valid() const { return sb.ok(); }
  // "slot 1 mirror (block 3)"
  std::string Name() const;
};

struct SuperCopies {
  uint32_t block_size = 0;
  std::array<SuperCopy, kSuperCopies> copy;
  int newest = -1;  // index of the valid copy with the highest generation
  const Superblock& newest_sb() const { return copy[newest].sb.value(); }
};

// Reads the four copies, finding the block size from whichever copy is
// valid (copy 0, else every legal size is tried). A copy of another pool
// (different uuid from the newest) counts as invalid. Corruption when no
// copy is valid (saying what each held), when the store is too short to be
// a pool, or when it is shorter than the newest copy's pool (truncated).
// known_block_size: 0, or the size the running pool uses.
Result<SuperCopies> ReadSuperCopies(Store& store, uint32_t known_block_size);

struct SuperVerdict {
  Superblock open;                    // the generation to open
  std::vector<std::string> torn;      // crash patterns, recovered automatically
  std::vector<std::string> damaged;   // damage since a commit; nothing lost
  std::string lost;                   // non-empty: a committed generation may be lost
  uint64_t lost_generation = 0;       // which one (open.generation + 1)
  // Copies a writer rewrites (block, superblock to encode there) so that
  // both copies of each slot agree again.
  std::vector<std::pair<uint64_t, Superblock>> repairs;
};

SuperVerdict JudgeSuperCopies(const SuperCopies& copies);

}  // namespace stack::pool

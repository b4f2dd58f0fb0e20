// Builds the block images of a whole directory in one pass: linear when
// it fits in one block, otherwise an htree (dir_index) the way e2fsck -D
// lays one out: a root block (".", "..", dx_root_info, index), at most one
// level of interior index blocks, and leaf blocks filled in hash order.
// Linear in the number of entries (plus the sort); no per-entry scans.
//
// Checksums (metadata_csum) are set on every block. Block i of the image is
// logical block i of the directory.
//
// Thread-safety: pure function of its inputs and the superblock.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::fsbridge {

struct DirEntry {
  std::string name;
  uint32_t ino = 0;
  uint8_t ftype = 0;  // EXT2_FT_*
};

struct DirImage {
  std::vector<uint8_t> bytes;  // nblocks * blocksize
  uint32_t nblocks = 0;
  bool indexed = false;
};

// REQUIRES: names unique, 1..255 bytes, not "." or "..".
Result<DirImage> BuildDirectory(ext2_filsys fs, uint32_t ino, uint32_t parent,
                                const std::vector<DirEntry>& entries);

// Bytes one entry takes in a directory block.
inline uint32_t DirRecLen(size_t name_len) { return uint32_t((8 + name_len + 3) & ~size_t(3)); }

}  // namespace stack::fsbridge

// The private state behind fsbridge::Filesystem, shared by the .cc files
// that implement its methods (mkfs, populate, read, edit, extract).
// Thread-safety: as Filesystem (none).
#pragma once

#include <ext2fs/ext2fs.h>

#include <memory>
#include <optional>
#include <string>

#include "block_io_manager.h"
#include "dir_reader.h"
#include "freed_blocks.h"
#include "fsbridge/filesystem.h"
#include "inode_util.h"
#include "tree_builder.h"

namespace stack::fsbridge {

struct Filesystem::Impl {
  std::unique_ptr<BlockDevice> dev;
  std::unique_ptr<IoBinding> io;
  ext2_filsys fs = nullptr;
  bool writable = false;
  bool closed = false;
  uint64_t goal = 0;                 // allocation cursor shared by writers
  std::optional<int64_t> timestamp;  // from Mkfs (reproducible mode)
  // Where readers report what they skip (SetWarningSink); default stderr.
  WarnFn warn;
  // Blocks freed since the last discard (attached when writable).
  FreedBlocks freed;

  FsContext ctx() const { return FsContext{fs, io.get()}; }
  // The time stamped on new inodes: opts, else Mkfs's, else the clock.
  Timespec Now(const std::optional<int64_t>& ts) const;
  Status CheckWritable(const std::string& what) const;
  // Resolves a path to an inode without following a final symlink.
  Result<uint32_t> Lookup(const std::string& path) const;
  // Frees libext2fs state; flushes when writable (discarding freed blocks
  // first, DiscardFreed).
  Status CloseFs();
  // Writes the metadata (no device flush), then discards `ranges` through
  // the io channel: a range is discarded only once the bitmaps that free it
  // are on the device, so no committed state of a thin device below ever
  // names a discarded block as in use. Returns the bytes passed down (0
  // when the device takes no discards).
  Result<uint64_t> WriteMetadataAndDiscard(const std::vector<BlockRange>& ranges);
  // WriteMetadataAndDiscard of the freed blocks still free.
  Status DiscardFreed();
};

// Formats impl->dev (io bound, fs null) and leaves impl->fs open.
Status FormatExt4(Filesystem::Impl* impl, const MkfsOptions& opts);


// Default attributes for a directory made implicitly (mkdir -p, tar parents).
Attrs DefaultDirAttrs(Timespec now, uint32_t mode = 0755);

}  // namespace stack::fsbridge

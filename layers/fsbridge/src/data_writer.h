// DataWriter: writes the data of one inode (file, directory or slow
// symlink) straight to freshly allocated blocks and maps them with extents.
//
// Data arrives in increasing offsets (gaps are holes); it is buffered into
// runs, all-zero blocks become holes when skip_zero_blocks (sparse stays
// sparse), each run is allocated contiguously where possible from a moving
// goal (so a tree is laid out sequentially) and written with one device
// write per run. Finish() records the extents in the inode (inline for up
// to 4, through the libext2fs extent API beyond) and writes the inode.
//
// Space: allocation fails with NoSpace (naming the path) rather than dip
// into `reserve` blocks, which the caller keeps for directories still to
// be written. On failure or destruction without Finish(), every block
// allocated so far is freed, so the filesystem stays consistent.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "inode_util.h"

namespace stack::fsbridge {

class DataWriter {
 public:
  // scratch, if given, is used (cleared, capacity kept) as the run buffer,
  // so a caller writing many files allocates it once. REQUIRES: no other
  // live DataWriter uses the same scratch.
  DataWriter(const FsContext& c, uint64_t* goal, std::string path, uint64_t reserve,
             bool skip_zero_blocks, std::vector<uint8_t>* scratch = nullptr);
  ~DataWriter();
  DataWriter(const DataWriter&) = delete;
  DataWriter& operator=(const DataWriter&) = delete;

  // REQUIRES: offset >= end of the previous write.
  Status Write(uint64_t offset, std::span<const uint8_t> data);
  // Flushes, sets EXTENTS_FL, the extent tree and i_blocks (added to the
  // inode's current count) in *inode, and writes the inode (size and the
  // other fields are the caller's).
  Status Finish(uint32_t ino, InodeBuf* inode);
  uint64_t blocks() const { return nblocks_; }

 private:
  struct Ext {
    uint64_t lblk, pblk;
    uint32_t len;
  };
  Status FlushRun(bool final);
  // whole_buffer: data..+nblocks is all of buf_, which may then be handed
  // to the device (IoBinding::WriteBuffer) and replaced by another buffer.
  Status Place(uint64_t lblk, const uint8_t* data, uint64_t nblocks, bool whole_buffer);
  void FreeAll();

  FsContext c_;
  uint64_t* goal_;
  std::string path_;
  uint64_t reserve_;
  bool skip_zero_;
  uint32_t bs_;
  std::vector<uint8_t> own_;  // the run buffer when no scratch is given
  std::vector<uint8_t>& buf_;
  uint64_t buf_start_ = 0;  // byte offset of buf_[0], block aligned
  std::vector<Ext> exts_;
  uint64_t nblocks_ = 0;
  bool finished_ = false;
};

}  // namespace stack::fsbridge

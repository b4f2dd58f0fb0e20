// ReadInodeData: the read side of the bulk data path (DataWriter is the
// write side): streams a file's content to a sink in large runs.
//
// A file is read by its map (extents, or the block map of an ext2/ext3
// file), in runs of up to 4 MiB of physically contiguous blocks: one device
// read per run (so one decryption pass over the whole run, on the crypt
// device's threads) rather than libext2fs's block at a time. While the sink
// takes one run, the next is read on a helper thread, so decrypting
// overlaps writing the output. Holes and unwritten (uninit) extents come
// from the map, never read; bytes past i_size are never passed. A map out
// of order, overlapping itself or pointing outside the file system (a
// damaged or hostile image) is Corruption, as is an i_size larger than the
// map can address: a crafted size of terabytes over a bad map would
// otherwise be read hole by hole for hours. Inline data is read through
// ext2fs_file_read.
//
// Thread-safety: the helper thread calls into libext2fs and the
// filesystem's I/O binding while the sink runs, so the sink must not use
// the same filesystem (it writes host files, a tar stream, stdout). The
// helper has finished when this returns.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "inode_util.h"

namespace stack::fsbridge {

// Passes the file's bytes to `sink` in order. Holes go to `hole` as byte
// counts when it is given (a consumer that seeks over them), else to
// `sink` as zeros. Corruption for a damaged map or size (above).
class DataBudget;
// `budget` (optional) is charged the file's data before any is passed.
Status ReadInodeData(const FsContext& c, uint32_t ino, const std::string& path,
                     const std::function<Status(std::span<const uint8_t>)>& sink,
                     const std::function<Status(uint64_t)>& hole = {},
                     DataBudget* budget = nullptr);

// The byte ranges of a regular file that hold data (offset, length), in
// order, merged, clipped to i_size: what ReadInodeData passes that is not a
// hole; all of it for inline data. What a tar's sparse map is made from, so
// it never trusts i_blocks. The same checks and errors as ReadInodeData.
Result<std::vector<std::pair<uint64_t, uint64_t>>> DataRanges(const FsContext& c, uint32_t ino,
                                                              const std::string& path);

// ReadInodeData into `fd`, an empty regular host file, at the same
// offsets: all-zero 4 KiB blocks are left as holes (so sparse files stay
// sparse), the rest is written with one pwrite per run of data blocks, and
// the file is sized to the inode's i_size. `path` (the image path) and
// `host` (the host file) name them in errors.
Status WriteInodeToFd(const FsContext& c, uint32_t ino, const std::string& path, int fd,
                      const std::string& host, DataBudget* budget = nullptr);

// How much file data one command may read out of a file system. ext4
// shares no block between files, nor within one, so the data of all files
// together fits in the file system; a hostile image whose maps reuse its
// blocks (a few MiB repeated into terabytes of output) is stopped there.
// A single file's map is held to the same bound by the readers above.
class DataBudget {
 public:
  explicit DataBudget(const FsContext& c);
  // Charges `bytes` of a file's data (`path` names it); Corruption once
  // the files charged hold more than the file system does.
  Status Charge(uint64_t bytes, const std::string& path);

 private:
  uint64_t left_;
};

}  // namespace stack::fsbridge

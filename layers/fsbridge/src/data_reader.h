// ReadInodeData: the read side of the bulk data path (DataWriter is the
// write side): streams a file's content to a sink in large runs.
//
// An extent-mapped file is read by its extent map, in runs of up to 4 MiB
// of physically contiguous blocks: one device read per run (so one
// decryption pass over the whole run, on the crypt device's threads)
// rather than libext2fs's block at a time. While the sink takes one run,
// the next is read on a helper thread, so decrypting overlaps writing the
// output. Holes and unwritten (uninit) extents come out as zeros; bytes
// past i_size are never passed. Files without extents, with inline data,
// or whose extent map is out of order or points outside the file system
// (a damaged or hostile image) are read through ext2fs_file_read, whose
// checks then apply.
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

#include "inode_util.h"

namespace stack::fsbridge {

// Corruption for a size larger than ext4 can address (see the .cc).
Status ReadInodeData(const FsContext& c, uint32_t ino, const std::string& path,
                     const std::function<Status(std::span<const uint8_t>)>& sink);

// ReadInodeData into `fd`, an empty regular host file, at the same
// offsets: all-zero 4 KiB blocks are left as holes (so sparse files stay
// sparse), the rest is written with one pwrite per run of data blocks, and
// the file is sized to the inode's i_size. `path` (the image path) and
// `host` (the host file) name them in errors.
Status WriteInodeToFd(const FsContext& c, uint32_t ino, const std::string& path, int fd,
                      const std::string& host);

}  // namespace stack::fsbridge

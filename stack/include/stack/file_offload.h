// Kernel file-to-file copy offloads used by export: reflink (FICLONERANGE,
// the destination shares the source's extents: no data written, no space
// used) and copy_file_range (the kernel copies without a round trip through
// user space; some file systems and NFS/SMB do it server-side).
//
// Each call either copies the whole range or fails; Unsupported means the
// file systems do not offer the method for these files (the errno text is
// in the message), so a caller can choose another method and say so.
//
// Thread-safety: stateless functions; fds are the caller's.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"

namespace stack::compose {

enum class CopyMethod {
  kAuto,       // reflink where the file systems offer it, else read-write
  kReflink,    // FICLONERANGE only
  kCopyRange,  // copy_file_range only
  kReadWrite,  // read and write through user space (sparse)
};

// "auto", "reflink", "copy-range" (or "copy_file_range"), "read-write".
Result<CopyMethod> ParseCopyMethod(const std::string& text);
// The name reported for a method actually used: "reflink", "copy_file_range",
// "sparse-extent-copy" (read-write).
const char* CopyMethodName(CopyMethod m);

// Shares [src_off, src_off + len) of src_fd into dst_fd at dst_off.
// Offsets and len: multiples of the file system block size.
Status ReflinkRange(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len);
// Copies the range with copy_file_range (looping over short copies).
Status CopyFileRange(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len);

}  // namespace stack::compose

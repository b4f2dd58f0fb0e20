// Export of a pool entry's stored bytes by kernel offload: each data run is
// copied from the pool's backing file into the output file at the same
// entry offset with reflink or copy_file_range, after the pool has checked
// every block's checksum (Pool::StoredRuns). All-zero runs and unmapped
// ranges are left as holes.
//
// Thread-safety: none.
#pragma once

#include <string>

#include "stack/file_offload.h"
#include "stack/progress.h"
#include "stack/sparse_copy.h"

namespace stack::pool {
class Pool;
}

namespace stack::compose {

// Copies `entry` into the already-sized output file out_fd and, if `sync`,
// makes it durable (write-behind per run, fdatasync at the end).
// method: kReflink or kCopyRange use only that method (Unsupported if the
// file systems do not offer it); kAuto tries reflink and, if it is not
// offered, returns Unsupported before writing anything, with the reason in
// `why_not` (the caller falls back to a read-write copy and reports that). CopyReport::method names the method used.
Result<CopyReport> CopyStoredRuns(pool::Pool& pool, const std::string& entry, uint64_t size,
                                  int out_fd, CopyMethod method, bool sync, Progress* progress,
                                  std::string* why_not);

}  // namespace stack::compose

// TryLockFile: the stack's one advisory file lock (flock(2), never
// waiting). FileDevice's `lock` option and the pool's file store both take
// their lock here, so every lock in the stack conflicts with every other
// and reports a holder the same way.
//
// The lock belongs to the open file description: it is released when the
// last descriptor sharing it is closed. Locks of separate open() calls
// conflict even within one process.
//
// Thread-safety: a plain system call; safe from any thread.
#pragma once

#include <string>

#include "block/status.h"

namespace stack {

enum class LockMode { kShared, kExclusive };

// Takes `mode` on fd without waiting. OK when held (taking a lock the
// description already holds changes its mode). Busy, errno EWOULDBLOCK,
// "<path> is in use by another process" when another description holds a
// conflicting lock (callers may reword it, naming the holder); IoError for
// any other failure.
Status TryLockFile(int fd, LockMode mode, const std::string& path);

}  // namespace stack

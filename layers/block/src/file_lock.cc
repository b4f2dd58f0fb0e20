#include "block/file_lock.h"

#include <sys/file.h>

#include <cerrno>

namespace stack {

Status TryLockFile(int fd, LockMode mode, const std::string& path) {
  const int op = (mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Status::Ok();
  const int e = errno;
  if (e == EWOULDBLOCK) return Status(Code::kBusy, path + " is in use by another process", e);
  return Status::FromErrno("lock " + path, e);
}

}  // namespace stack

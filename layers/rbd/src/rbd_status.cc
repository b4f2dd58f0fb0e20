// FromRbd: librbd/librados return values to Status (see rbd_status.h).
#include "rbd_status.h"

#include <cerrno>
#include <cstring>

namespace stack::rbd {

Status FromRbd(const std::string& what, int r) {
  if (r >= 0) return Status::Ok();
  const int e = -r;
  const std::string msg = what + ": " + std::strerror(e);
  switch (e) {
    case ENOENT: return Status::NotFound(msg);
    case EEXIST: return Status::AlreadyExists(msg);
    case EBUSY:
    case ENOTEMPTY: return Status::Busy(msg);
    case ENOSPC:
    case EDQUOT: return Status::NoSpace(msg);
    case EROFS: return Status::ReadOnly(msg);
    case EACCES:
    case EPERM: return Status::AuthFailed(msg);
    case EINVAL:
    case ENAMETOOLONG: return Status::InvalidArgument(msg);
    case EOPNOTSUPP: return Status::Unsupported(msg);
    case ERANGE: return Status::OutOfRange(msg);
    case ETIMEDOUT:
    case ECONNREFUSED:
    case ENOTCONN:
    case ESHUTDOWN:
    default: return Status::IoError(msg, e);
  }
}

}  // namespace stack::rbd

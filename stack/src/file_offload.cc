#include "stack/file_offload.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stack::compose {
namespace {

// errnos by which the kernel says "not here" rather than "failed".
bool NotOffered(int err) {
  return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS ||
         err == ENOTSUP;
}

Status KernelError(const char* what, int err) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  return NotOffered(err) ? Status::Unsupported(msg) : Status::FromErrno(what, err);
}

}  // namespace

Result<CopyMethod> ParseCopyMethod(const std::string& text) {
  if (text == "auto") return CopyMethod::kAuto;
  if (text == "reflink" || text == "ficlone") return CopyMethod::kReflink;
  if (text == "copy-range" || text == "copy_file_range") return CopyMethod::kCopyRange;
  if (text == "read-write" || text == "sparse") return CopyMethod::kReadWrite;
  return Status::InvalidArgument("unknown copy method \"" + text +
                                 "\" (auto, reflink, copy-range, read-write)");
}

const char* CopyMethodName(CopyMethod m) {
  switch (m) {
    case CopyMethod::kReflink: return "reflink";
    case CopyMethod::kCopyRange: return "copy_file_range";
    default: return "sparse-extent-copy";
  }
}

Status ReflinkRange(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len) {
  struct file_clone_range r {};
  r.src_fd = src_fd;
  r.src_offset = src_off;
  r.src_length = len;
  r.dest_offset = dst_off;
  if (::ioctl(dst_fd, FICLONERANGE, &r) != 0) return KernelError("reflink (FICLONERANGE)", errno);
  return Status::Ok();
}

Status CopyFileRange(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len) {
  auto in = static_cast<off_t>(src_off);
  auto out = static_cast<off_t>(dst_off);
  while (len > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, uint64_t{1} << 30));
    const ssize_t got = ::copy_file_range(src_fd, &in, dst_fd, &out, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return KernelError("copy_file_range", errno);
    }
    if (got == 0) return Status::IoError("copy_file_range: source ended early");
    len -= static_cast<uint64_t>(got);
  }
  return Status::Ok();
}

}  // namespace stack::compose

// Spool (oci_spool.h): O_TMPFILE where the file system has it, else a
// mkstemp name unlinked at once.
#include "oci_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace stack::compose::oci {
namespace {

// $TMPDIR as the user set it; else /var/tmp, which distributions keep on
// disk (a spool is as large as the image's layers, and /tmp is often a
// tmpfs, that is, memory); /tmp where there is no /var/tmp.
std::string TempDir() {
  const char* t = std::getenv("TMPDIR");
  if (t && *t) return t;
  return ::access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
}

}  // namespace

Result<Spool> Spool::Create(const std::string& what) {
  const std::string dir = TempDir();
  std::string where = what + " (spooled in " + dir + ")";
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return Spool(fd, std::move(where));
  // Not every file system has O_TMPFILE; a name unlinked at once is as good.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return Status::FromErrno("spooling " + where, errno);
  std::string path = dir + "/stack-oci-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("spooling " + where, errno);
  ::unlink(path.c_str());
  return Spool(fd, std::move(where));
}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
}

Spool& Spool::operator=(Spool&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    what_ = std::move(o.what_);
    o.fd_ = -1;
  }
  return *this;
}

Status Spool::Append(std::span<const uint8_t> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("spooling " + what_, errno);
    data = data.subspan(size_t(n));
  }
  return Status::Ok();
}

}  // namespace stack::compose::oci

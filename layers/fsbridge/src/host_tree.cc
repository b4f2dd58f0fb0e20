// HostDir: creation beneath an open directory fd (see host_tree.h).
#include "host_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "fsbridge/names.h"

namespace stack::fsbridge {

namespace {
Status Sys(const std::string& what, const std::string& shown, int err) {
  return Status::FromErrno(what + " " + shown, err);
}
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
}  // namespace

Result<HostDir> HostDir::OpenRoot(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Sys("creating", path, errno);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Sys("opening", path, errno);
  return HostDir(UniqueFd(fd), EscapeText(path));
}

std::string HostDir::Shown(const std::string& name) const { return shown_ + "/" + EscapeText(name); }

Status HostDir::Clear(const std::string& name) const {
  if (::unlinkat(fd(), name.c_str(), 0) == 0 || errno == ENOENT) return Status::Ok();
  if (errno != EISDIR && errno != EPERM) return Sys("removing", Shown(name), errno);
  if (::unlinkat(fd(), name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return Status::Ok();
  if (errno == ENOTEMPTY || errno == EEXIST)
    return Status::AlreadyExists(Shown(name) + ": a non-empty directory is in the way");
  return Sys("removing", Shown(name), errno);
}

Result<HostDir> HostDir::Descend(const std::string& name) const {
  // Two attempts: the second after removing a non-directory found there.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::mkdirat(fd(), name.c_str(), 0700) != 0 && errno != EEXIST)
      return Sys("creating", Shown(name), errno);
    int d = ::openat(fd(), name.c_str(), kDirFlags);
    if (d >= 0) return HostDir(UniqueFd(d), Shown(name));
    if (errno != ENOTDIR && errno != ELOOP) return Sys("opening", Shown(name), errno);
    // A symlink or file where the image has a directory: replace it.
    if (::unlinkat(fd(), name.c_str(), 0) != 0 && errno != ENOENT)
      return Sys("removing", Shown(name), errno);
  }
  return Status::IoError("creating " + Shown(name) + ": replaced concurrently");
}

Result<HostDir> HostDir::Walk(const std::vector<std::string>& comps) const {
  int d = ::fcntl(fd(), F_DUPFD_CLOEXEC, 0);
  if (d < 0) return Sys("opening", shown_, errno);
  HostDir cur(UniqueFd(d), shown_);
  for (const std::string& c : comps) {
    int n = ::openat(cur.fd(), c.c_str(), kDirFlags);
    if (n < 0) return Sys("opening", cur.Shown(c), errno);
    cur = HostDir(UniqueFd(n), cur.Shown(c));
  }
  return cur;
}

Result<UniqueFd> HostDir::CreateFile(const std::string& name) const {
  RETURN_IF_ERROR(Clear(name));
  int f = ::openat(fd(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (f < 0) return Sys("creating", Shown(name), errno);
  return UniqueFd(f);
}

Status HostDir::CreateSymlink(const std::string& target, const std::string& name) const {
  RETURN_IF_ERROR(Clear(name));
  if (::symlinkat(target.c_str(), fd(), name.c_str()) != 0)
    return Sys("creating symlink", Shown(name), errno);
  return Status::Ok();
}

Status HostDir::CreateNode(const std::string& name, mode_t mode, dev_t dev) const {
  RETURN_IF_ERROR(Clear(name));
  if (::mknodat(fd(), name.c_str(), mode, dev) != 0) return Sys("creating", Shown(name), errno);
  return Status::Ok();
}

Status HostDir::Link(const HostDir& from, const std::string& from_name, const std::string& name) const {
  RETURN_IF_ERROR(Clear(name));
  if (::linkat(from.fd(), from_name.c_str(), fd(), name.c_str(), 0) != 0)
    return Sys("linking", Shown(name), errno);
  return Status::Ok();
}

Status HostDir::SetAttrs(const std::string& name, const Attrs& a) const {
  const std::string shown = Shown(name);
  // chown first: it clears security.capability and set-id bits.
  if (a.chown && ::fchownat(fd(), name.c_str(), a.uid, a.gid, AT_SYMLINK_NOFOLLOW) != 0)
    return Sys("chown", shown, errno);
  if (a.xattrs && !a.xattrs->empty()) {
    // No *xattrat call: go through our directory fd's /proc link (resolved
    // to the directory we hold) and lsetxattr (the name is not followed).
    const std::string p = "/proc/self/fd/" + std::to_string(fd()) + "/" + name;
    for (const auto& [n, v] : *a.xattrs) {
      if (::lsetxattr(p.c_str(), n.c_str(), v.data(), v.size(), 0) != 0 && errno != ENOTSUP &&
          errno != EPERM && errno != ENOENT)
        return Sys("setting xattr " + EscapeText(n) + " on", shown, errno);
    }
  }
  if (!a.is_symlink && ::fchmodat(fd(), name.c_str(), a.mode & 07777, AT_SYMLINK_NOFOLLOW) != 0)
    return Sys("chmod", shown, errno);
  const struct timespec ts[2] = {a.atime, a.mtime};
  if (::utimensat(fd(), name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    return Sys("setting times of", shown, errno);
  return Status::Ok();
}

Status HostDir::SetAttrsFd(int f, const std::string& shown, const Attrs& a) {
  if (a.chown && ::fchown(f, a.uid, a.gid) != 0) return Sys("chown", shown, errno);
  if (a.xattrs) {
    for (const auto& [n, v] : *a.xattrs) {
      if (::fsetxattr(f, n.c_str(), v.data(), v.size(), 0) != 0 && errno != ENOTSUP && errno != EPERM)
        return Sys("setting xattr " + EscapeText(n) + " on", shown, errno);
    }
  }
  if (::fchmod(f, a.mode & 07777) != 0) return Sys("chmod", shown, errno);
  const struct timespec ts[2] = {a.atime, a.mtime};
  if (::futimens(f, ts) != 0) return Sys("setting times of", shown, errno);
  return Status::Ok();
}

}  // namespace stack::fsbridge

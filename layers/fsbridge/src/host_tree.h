// HostDir: a host directory held open by fd, in which extraction creates
// entries by single name only, so nothing it makes can land outside the
// destination (spec/fsbridge.md "Hostile images").
//
// Every call takes one entry name (the caller checked IsSafeEntryName) and
// works relative to this directory's fd: mkdirat/openat/symlinkat/mknodat/
// linkat, descending with O_NOFOLLOW|O_DIRECTORY. A symlink (or any
// non-directory) where a directory is wanted is removed and replaced, never
// followed, as GNU tar does; files are created with O_CREAT|O_EXCL|O_NOFOLLOW
// after removing what was there. Because no multi-component path is ever
// resolved on the host (only names inside fds we hold), a concurrent rename
// or symlink swap cannot redirect a creation outside the tree.
//
// Thread-safety: none; a HostDir is used by one thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "block/status.h"
#include "block/unique_fd.h"

namespace stack::fsbridge {

class HostDir {
 public:
  // Opens (creating it 0700 if missing) the destination chosen by the user;
  // symlinks in that path are the user's and are followed.
  static Result<HostDir> OpenRoot(const std::string& path);

  // `shown` is the printable path used in messages (names escaped).
  const std::string& shown() const { return shown_; }
  int fd() const { return fd_.get(); }

  // The subdirectory `name`, created 0700 if absent; a non-directory there
  // (symlink included) is replaced. Never follows a symlink.
  Result<HostDir> Descend(const std::string& name) const;
  // Opens the existing subdirectory at `comps` below this one (no creation,
  // no symlinks followed). For hard links to an earlier entry.
  Result<HostDir> Walk(const std::vector<std::string>& comps) const;
  // Removes whatever is at `name` (an empty directory too). AlreadyExists
  // for a non-empty directory; OK when nothing is there.
  Status Clear(const std::string& name) const;
  // A new regular file `name` (mode 0600) open for writing.
  Result<UniqueFd> CreateFile(const std::string& name) const;
  Status CreateSymlink(const std::string& target, const std::string& name) const;
  // mknodat; a Status with sys_errno EPERM when not allowed (not root).
  Status CreateNode(const std::string& name, mode_t mode, dev_t dev) const;
  // A hard link `name` here to `from_name` in `from` (never following a
  // symlink at the source).
  Status Link(const HostDir& from, const std::string& from_name, const std::string& name) const;

  // Attributes of `name` (a file, symlink or node) without following it:
  // owner (when chown), xattrs, permission bits (not for symlinks), times.
  struct Attrs {
    bool chown = false;
    uint32_t uid = 0, gid = 0, mode = 0;
    bool is_symlink = false;
    struct timespec atime {}, mtime {};
    const std::vector<std::pair<std::string, std::string>>* xattrs = nullptr;
  };
  Status SetAttrs(const std::string& name, const Attrs& a) const;
  // The same on an open fd (a file being written, or this directory).
  static Status SetAttrsFd(int fd, const std::string& shown, const Attrs& a);

  std::string Shown(const std::string& name) const;

 private:
  HostDir(UniqueFd fd, std::string shown) : fd_(std::move(fd)), shown_(std::move(shown)) {}
  UniqueFd fd_;
  std::string shown_;
};

}  // namespace stack::fsbridge

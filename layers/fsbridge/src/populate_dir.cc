// PopulateFromDirectory and the host-tree importer behind it.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "block/unique_fd.h"
#include "filesystem_impl.h"
#include "host_import.h"

namespace stack::fsbridge {

namespace {

Status Errno(const std::string& what, const std::string& path, int err) {
  if (err == ENOENT) return Status::NotFound(what + " " + path + ": " + std::strerror(err));
  return Status::FromErrno(what + " " + path, err);
}

// Streams a host file into the writer, skipping holes. `dense`: the file
// occupies at least its size on disk, so it has no holes to look for (saves
// two lseeks per file; a tree of small files is mostly syscalls).
Status CopyFileData(const std::string& path, uint64_t size, bool dense, DataWriter& dw,
                    std::vector<uint8_t>& buf) {
  UniqueFd f(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (f.get() < 0) return Errno("opening", path, errno);
  if (buf.size() < (1u << 20)) buf.resize(1 << 20);  // reused: no per-file zero fill
  uint64_t pos = 0;
  while (pos < size) {
    off_t data = dense ? off_t(pos) : ::lseek(f.get(), off_t(pos), SEEK_DATA);
    off_t hole = off_t(size);
    if (dense) {
      // read everything
    } else if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      data = off_t(pos);          // no SEEK_DATA support: read everything
    } else {
      hole = ::lseek(f.get(), data, SEEK_HOLE);
      if (hole < 0) hole = off_t(size);
    }
    uint64_t p = uint64_t(data);
    const uint64_t end = std::min<uint64_t>(uint64_t(hole), size);
    while (p < end) {
      size_t want = size_t(std::min<uint64_t>(buf.size(), end - p));
      ssize_t n = ::pread(f.get(), buf.data(), want, off_t(p));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("reading", path, errno);
      if (n == 0) return Status::IoError("reading " + path + ": file shrank while copying");
      RETURN_IF_ERROR(dw.Write(p, std::span<const uint8_t>(buf.data(), size_t(n))));
      p += uint64_t(n);
    }
    pos = std::max<uint64_t>(end, pos + 1);
  }
  return Status::Ok();
}

}  // namespace

Attrs HostImporter::AttrsOf(const struct stat& st, const std::string& rel) const {
  Attrs a;
  a.mode = st.st_mode;
  if (opts_.keep_owners) {
    a.uid = st.st_uid;
    a.gid = st.st_gid;
  }
  a.mtime = Timespec{int64_t(st.st_mtim.tv_sec), uint32_t(st.st_mtim.tv_nsec)};
  if (opts_.timestamp) {
    a.atime = a.ctime = a.crtime = now_;
  } else {
    a.atime = Timespec{int64_t(st.st_atim.tv_sec), uint32_t(st.st_atim.tv_nsec)};
    a.ctime = Timespec{int64_t(st.st_ctim.tv_sec), uint32_t(st.st_ctim.tv_nsec)};
    a.crtime = a.ctime;
  }
  if (manifest_) manifest_->Apply(rel, &a);
  return a;
}

Result<std::vector<Xattr>> HostImporter::Xattrs(const std::string& path) const {
  std::vector<Xattr> out;
  if (!opts_.xattrs) return out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == ENODATA) return out;
    return Errno("listing xattrs of", path, errno);
  }
  if (n == 0) return out;  // the common case: no second call
  std::string names(size_t(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) return Errno("listing xattrs of", path, errno);
  names.resize(size_t(n));
  for (size_t p = 0; p < names.size();) {
    std::string name(names.c_str() + p);
    p += name.size() + 1;
    if (name.empty()) continue;
    ssize_t vn = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (vn < 0) return Errno("reading xattr " + name + " of", path, errno);
    std::string v(size_t(vn), '\0');
    vn = ::lgetxattr(path.c_str(), name.c_str(), v.data(), v.size());
    if (vn < 0) return Errno("reading xattr " + name + " of", path, errno);
    v.resize(size_t(vn));
    out.push_back(Xattr{std::move(name), std::move(v)});
  }
  std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return out;
}

Status HostImporter::CopyContents(TreeBuilder::Dir* d, const std::string& host_dir,
                                  const std::string& rel, const struct stat& st) {
  ASSIGN_OR_RETURN(auto xs, Xattrs(host_dir));
  tb_->SetDirAttrs(d, AttrsOf(st, rel), std::move(xs));
  DIR* dir = ::opendir(host_dir.c_str());
  if (!dir) return Errno("opening directory", host_dir, errno);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(dir)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  const int err = errno;
  ::closedir(dir);
  if (err) return Errno("reading directory", host_dir, err);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    RETURN_IF_ERROR(CopyEntry(d, n, host_dir + "/" + n, rel.empty() ? n : rel + "/" + n));
  }
  return Status::Ok();
}

Status HostImporter::CopyEntry(TreeBuilder::Dir* parent, const std::string& name,
                               const std::string& host_path, const std::string& rel) {
  struct stat st;
  if (::lstat(host_path.c_str(), &st) != 0) return Errno("reading", host_path, errno);
  if (name.size() > EXT2_NAME_LEN)
    return Status::InvalidArgument(host_path + ": name longer than 255 bytes");
  const Attrs a = AttrsOf(st, rel);
  if (S_ISDIR(st.st_mode)) {
    ASSIGN_OR_RETURN(auto xs, Xattrs(host_path));
    ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb_->AddDir(parent, name, a, std::move(xs)));
    stats_->directories++;
    return CopyContents(d, host_path, rel, st);
  }
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    auto it = links_.find({st.st_dev, st.st_ino});
    if (it != links_.end()) {
      RETURN_IF_ERROR(tb_->AddHardLink(parent, name, it->second, manifest_ ? manifest_->Find(rel) : nullptr));
      stats_->hardlinks++;
      return Status::Ok();
    }
  }
  ASSIGN_OR_RETURN(auto xs, Xattrs(host_path));
  if (S_ISREG(st.st_mode)) {
    const uint64_t size = uint64_t(st.st_size);
    ASSIGN_OR_RETURN(uint32_t ino, tb_->AddFile(parent, name, a, xs, size, [&](DataWriter& dw) {
      const bool dense = uint64_t(st.st_blocks) * 512 >= size;
      return CopyFileData(host_path, size, dense, dw, buf_);
    }));
    if (st.st_nlink > 1) links_[{st.st_dev, st.st_ino}] = ino;
    stats_->files++;
    stats_->bytes += size;
    if (opts_.on_file) opts_.on_file(size);
    return Status::Ok();
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(size_t(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(host_path.c_str(), target.data(), target.size());
    if (n < 0) return Errno("reading link", host_path, errno);
    target.resize(size_t(n));
    RETURN_IF_ERROR(tb_->AddSymlink(parent, name, target, a, xs).status());
    stats_->symlinks++;
    return Status::Ok();
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
    RETURN_IF_ERROR(
        tb_->AddSpecial(parent, name, a, major(st.st_rdev), minor(st.st_rdev), xs).status());
    stats_->specials++;
    return Status::Ok();
  }
  return Status::Unsupported(host_path + ": unsupported file type");
}

Result<bool> HostImporter::RewriteLinked(TreeBuilder::Dir* parent, const std::string& name,
                                         const std::string& host_path) {
  struct stat st;
  if (::lstat(host_path.c_str(), &st) != 0) return Errno("reading", host_path, errno);
  if (!S_ISREG(st.st_mode)) return false;
  const uint64_t size = uint64_t(st.st_size);
  const Attrs a = AttrsOf(st, "");
  ASSIGN_OR_RETURN(bool done, tb_->RewriteLinkedFile(parent, name, size, a.mtime,
                                                     [&](DataWriter& dw) {
                                                       const bool dense =
                                                           uint64_t(st.st_blocks) * 512 >= size;
                                                       return CopyFileData(host_path, size, dense,
                                                                           dw, buf_);
                                                     }));
  if (done) {
    stats_->files++;
    stats_->bytes += size;
  }
  return done;
}

Result<PopulateStats> Filesystem::PopulateFromDirectory(const std::string& src,
                                                        const std::string& dest_dir,
                                                        const PopulateOptions& opts) {
  RETURN_IF_ERROR(impl_->CheckWritable("populate " + dest_dir));
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::Load(opts.manifest_path));
  struct stat st;
  if (::stat(src.c_str(), &st) != 0) return Errno("populate from", src, errno);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("populate from " + src + ": not a directory");
  ASSIGN_OR_RETURN(auto comps, SplitPath(dest_dir));
  const Timespec now = impl_->Now(opts.timestamp);
  if (opts.timestamp) impl_->fs->now = time_t(*opts.timestamp ? *opts.timestamp : 1);
  PopulateStats stats;
  TreeBuilder tb(impl_->ctx(), &impl_->goal, now);
  HostImporter imp(&tb, &manifest, opts, now, &stats);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb.OpenDir(comps, true, DefaultDirAttrs(now)));
    RETURN_IF_ERROR(imp.CopyContents(d, src, "", st));
    return manifest.CheckAllUsed(opts.lenient_manifest, &stats.warnings);
  }();
  Status f = tb.Finalize();
  RETURN_IF_ERROR(s);
  RETURN_IF_ERROR(f);
  return stats;
}

}  // namespace stack::fsbridge

// Extraction: a tree (or one file) to a host directory or a pax tar.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "archive_util.h"
#include "filesystem_impl.h"

namespace stack::fsbridge {

Status ReadInodeData(const FsContext& c, uint32_t ino, const std::string& path,
                     const std::function<Status(std::span<const uint8_t>)>& sink);

namespace {

Status Sys(const std::string& what, const std::string& path) {
  return Status::FromErrno(what + " " + path, errno);
}

std::string Base(const std::string& p) {
  auto comps = SplitPath(p);
  if (!comps.ok() || comps->empty()) return "";
  return comps->back();
}

// Walks a tree in sorted order: pre(entry) before children, post after.
struct Walker {
  const FsContext& c;
  std::function<Status(const std::string& fs_path, const std::string& rel, const InodeInfo&)> pre;
  std::function<Status(const std::string& fs_path, const std::string& rel, const InodeInfo&)> post;

  Status Walk(const std::string& fs_path, const std::string& rel, const InodeInfo& info) {
    RETURN_IF_ERROR(pre(fs_path, rel, info));
    if (info.type == FileType::kDirectory) {
      ASSIGN_OR_RETURN(auto entries, ListDirEntries(c, info.ino, fs_path, nullptr));
      std::sort(entries.begin(), entries.end(),
                [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
      for (const DirEntry& e : entries) {
        const std::string child = (fs_path == "/" ? "" : fs_path) + "/" + e.name;
        ASSIGN_OR_RETURN(InodeInfo ci, LoadInfo(c, e.ino, child));
        RETURN_IF_ERROR(Walk(child, rel.empty() ? e.name : rel + "/" + e.name, ci));
      }
    }
    if (post) RETURN_IF_ERROR(post(fs_path, rel, info));
    return Status::Ok();
  }
};

// The initialised data ranges of an extent-mapped inode, in bytes,
// clipped to `size` and merged. Empty for other inodes.
Result<std::vector<std::pair<uint64_t, uint64_t>>> DataRanges(const FsContext& c, uint32_t ino,
                                                              uint64_t size, const std::string& path) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  InodeBuf buf(c.fs);
  RETURN_IF_ERROR(ReadInode(c, ino, &buf, path));
  if (!(buf.large()->i_flags & EXT4_EXTENTS_FL)) return out;
  ext2_extent_handle_t h = nullptr;
  errcode_t e = ext2fs_extent_open2(c.fs, ino, buf.small(), &h);
  if (e) return c.Err(e, "reading extents of", path);
  ext2fs_extent x;
  const uint64_t bs = c.fs->blocksize;
  for (e = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &x); !e; e = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &x)) {
    if (!(x.e_flags & EXT2_EXTENT_FLAGS_LEAF) || (x.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT) ||
        (x.e_flags & EXT2_EXTENT_FLAGS_UNINIT) || x.e_len == 0)
      continue;
    uint64_t a = uint64_t(x.e_lblk) * bs, b = std::min(size, a + uint64_t(x.e_len) * bs);
    if (a >= b) continue;
    if (!out.empty() && out.back().first + out.back().second == a) out.back().second += b - a;
    else out.emplace_back(a, b - a);
  }
  ext2fs_extent_free(h);
  if (e != EXT2_ET_EXTENT_NO_NEXT && e != EXT2_ET_EXTENT_NO_DOWN) return c.Err(e, "reading extents of", path);
  return out;
}

}  // namespace

Status Filesystem::ExtractToDirectory(const std::string& fs_path, const std::string& host_dir) {
  ASSIGN_OR_RETURN(uint32_t top_ino, impl_->Lookup(fs_path));
  const FsContext c = impl_->ctx();
  ASSIGN_OR_RETURN(InodeInfo top, LoadInfo(c, top_ino, fs_path));
  if (::mkdir(host_dir.c_str(), 0700) != 0 && errno != EEXIST) return Sys("creating", host_dir);
  const bool root = geteuid() == 0;
  std::map<uint32_t, std::string> links;
  uint64_t skipped = 0;
  std::string first_skipped;
  // rel "" is the top: host_dir itself for a directory, host_dir/name otherwise.
  auto host_of = [&](const std::string& rel) {
    if (top.type != FileType::kDirectory) return host_dir + "/" + Base(fs_path);
    return rel.empty() ? host_dir : host_dir + "/" + rel;
  };
  auto set_attrs = [&](const std::string& h, const InodeInfo& i) -> Status {
    // chown first: it clears security.capability and set-id bits.
    if (root && ::lchown(h.c_str(), i.uid, i.gid) != 0) return Sys("chown", h);
    for (const auto& [n, v] : i.xattrs) {
      if (::lsetxattr(h.c_str(), n.c_str(), v.data(), v.size(), 0) != 0 && errno != ENOTSUP &&
          errno != EPERM)
        return Sys("setting xattr " + n + " on", h);
    }
    if (i.type != FileType::kSymlink && ::chmod(h.c_str(), i.mode & 07777) != 0) return Sys("chmod", h);
    struct timespec ts[2] = {{time_t(i.atime.sec), long(i.atime.nsec)},
                             {time_t(i.mtime.sec), long(i.mtime.nsec)}};
    if (::utimensat(AT_FDCWD, h.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return Sys("setting times of", h);
    return Status::Ok();
  };
  Walker w{c, nullptr, nullptr};
  w.pre = [&](const std::string& fp, const std::string& rel, const InodeInfo& i) -> Status {
    const std::string h = host_of(rel);
    switch (i.type) {
      case FileType::kDirectory:
        if (::mkdir(h.c_str(), 0700) != 0 && errno != EEXIST) return Sys("creating", h);
        return Status::Ok();  // attributes after the children
      case FileType::kRegular: {
        if (i.nlink > 1) {
          auto it = links.find(i.ino);
          if (it != links.end()) {
            ::unlink(h.c_str());
            if (::link(it->second.c_str(), h.c_str()) != 0) return Sys("linking", h);
            return Status::Ok();
          }
          links[i.ino] = h;
        }
        ::unlink(h.c_str());
        int fd = ::open(h.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) return Sys("creating", h);
        uint64_t off = 0;
        Status s = ReadInodeData(c, i.ino, fp, [&](std::span<const uint8_t> d) -> Status {
          // Zero 4 KiB runs become holes, so sparse files stay sparse.
          size_t p = 0;
          while (p < d.size()) {
            size_t n = std::min<size_t>(4096, d.size() - p);
            static const uint8_t zeros[4096] = {};
            if (n == 4096 && std::memcmp(d.data() + p, zeros, n) == 0) {
              p += n;
              continue;
            }
            if (::pwrite(fd, d.data() + p, n, off_t(off + p)) != ssize_t(n)) return Sys("writing", h);
            p += n;
          }
          off += d.size();
          return Status::Ok();
        });
        if (s.ok() && ::ftruncate(fd, off_t(i.size)) != 0) s = Sys("truncating", h);
        ::close(fd);
        RETURN_IF_ERROR(s);
        break;
      }
      case FileType::kSymlink:
        ::unlink(h.c_str());
        if (::symlink(i.symlink_target.c_str(), h.c_str()) != 0) return Sys("creating symlink", h);
        break;
      default: {
        ::unlink(h.c_str());
        const dev_t dev = makedev(i.rdev_major, i.rdev_minor);
        if (::mknod(h.c_str(), i.mode, dev) != 0) {
          if (errno == EPERM) {
            if (!skipped++) first_skipped = h;
            return Status::Ok();
          }
          return Sys("creating", h);
        }
        break;
      }
    }
    return set_attrs(h, i);
  };
  w.post = [&](const std::string&, const std::string& rel, const InodeInfo& i) -> Status {
    if (i.type != FileType::kDirectory) return Status::Ok();
    return set_attrs(host_of(rel), i);
  };
  RETURN_IF_ERROR(w.Walk(fs_path, "", top));
  if (skipped)
    return Status::Unsupported("extract: " + std::to_string(skipped) +
                               " device node(s) not created (needs root), first " + first_skipped);
  return Status::Ok();
}

Status Filesystem::ExtractToTar(const std::string& fs_path, const std::string& out) {
  ASSIGN_OR_RETURN(uint32_t top_ino, impl_->Lookup(fs_path));
  const FsContext c = impl_->ctx();
  ASSIGN_OR_RETURN(InodeInfo top, LoadInfo(c, top_ino, fs_path));
  ArchiveWriter w;
  archive_write_set_format_pax(w.a);
  const int rc = out == "-" ? archive_write_open_fd(w.a, 1) : archive_write_open_filename(w.a, out.c_str());
  if (rc != ARCHIVE_OK) return Status::IoError("tar " + out + ": " + archive_error_string(w.a));
  auto werr = [&](const std::string& what) {
    const char* m = archive_error_string(w.a);
    return Status::IoError("tar " + out + ": " + what + ": " + (m ? m : "error"));
  };
  std::map<uint32_t, std::string> links;
  Walker walk{c, nullptr, nullptr};
  walk.pre = [&](const std::string& fp, const std::string& rel, const InodeInfo& i) -> Status {
    if (i.type == FileType::kSocket) return Status::Ok();  // tar cannot hold sockets
    std::string name = top.type == FileType::kDirectory ? (rel.empty() ? "." : "./" + rel) : Base(fs_path);
    Entry e;
    archive_entry_set_pathname(e.e, (i.type == FileType::kDirectory ? name + "/" : name).c_str());
    archive_entry_set_mode(e.e, i.mode);
    archive_entry_set_uid(e.e, i.uid);
    archive_entry_set_gid(e.e, i.gid);
    archive_entry_set_mtime(e.e, i.mtime.sec, long(i.mtime.nsec));
    archive_entry_set_atime(e.e, i.atime.sec, long(i.atime.nsec));
    archive_entry_set_ctime(e.e, i.ctime.sec, long(i.ctime.nsec));
    for (const auto& [n, v] : i.xattrs) archive_entry_xattr_add_entry(e.e, n.c_str(), v.data(), v.size());
    bool data = false;
    switch (i.type) {
      case FileType::kRegular:
        if (i.nlink > 1) {
          auto it = links.find(i.ino);
          if (it != links.end()) {
            archive_entry_set_hardlink(e.e, it->second.c_str());
            archive_entry_set_size(e.e, 0);
            break;
          }
          links[i.ino] = name;
        }
        archive_entry_set_size(e.e, la_int64_t(i.size));
        data = true;
        if (i.allocated_bytes < i.size) {  // holes: a sparse entry (pax GNU.sparse 1.0)
          ASSIGN_OR_RETURN(auto ranges, DataRanges(c, i.ino, i.size, fp));
          uint64_t held = 0;
          for (const auto& r : ranges) held += r.second;
          if (held < i.size) {
            for (const auto& r : ranges)
              archive_entry_sparse_add_entry(e.e, la_int64_t(r.first), la_int64_t(r.second));
            if (ranges.empty() || ranges.back().first + ranges.back().second < i.size)
              archive_entry_sparse_add_entry(e.e, la_int64_t(i.size), 0);
          }
        }
        break;
      case FileType::kSymlink:
        archive_entry_set_symlink(e.e, i.symlink_target.c_str());
        break;
      case FileType::kCharDevice:
      case FileType::kBlockDevice:
        archive_entry_set_rdevmajor(e.e, i.rdev_major);
        archive_entry_set_rdevminor(e.e, i.rdev_minor);
        break;
      default:
        break;
    }
    if (archive_write_header(w.a, e.e) < ARCHIVE_WARN) return werr("writing header of " + fp);
    if (data) {
      RETURN_IF_ERROR(ReadInodeData(c, i.ino, fp, [&](std::span<const uint8_t> d) -> Status {
        if (archive_write_data(w.a, d.data(), d.size()) < 0) return werr("writing data of " + fp);
        return Status::Ok();
      }));
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(walk.Walk(fs_path, "", top));
  if (archive_write_close(w.a) != ARCHIVE_OK) return werr("closing");
  return Status::Ok();
}

}  // namespace stack::fsbridge

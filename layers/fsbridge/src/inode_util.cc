#include "inode_util.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>

namespace stack::fsbridge {

InodeBuf::InodeBuf(ext2_filsys fs) {
  size_ = EXT2_INODE_SIZE(fs->super);
  const size_t bytes = std::max<size_t>(size_t(size_), sizeof(ext2_inode_large));
  storage_.assign((bytes + 7) / 8, 0);
}

void InodeBuf::Clear() { std::fill(storage_.begin(), storage_.end(), 0); }

Status ReadInode(const FsContext& c, uint32_t ino, InodeBuf* buf, std::string_view path) {
  errcode_t e = ext2fs_read_inode_full(c.fs, ino, buf->small(), buf->size());
  if (e) return c.Err(e, "reading inode of", path);
  return Status::Ok();
}

Status WriteInode(const FsContext& c, uint32_t ino, InodeBuf* buf, std::string_view path) {
  errcode_t e = ext2fs_write_inode_full(c.fs, ino, buf->small(), buf->size());
  if (e) return c.Err(e, "writing inode of", path);
  return Status::Ok();
}

void SetTime(uint32_t* lo, uint32_t* extra, const Timespec& t) {
  *lo = uint32_t(int32_t(t.sec));
  const int64_t epoch = (t.sec - int64_t(int32_t(t.sec))) >> 32;
  if (extra) *extra = uint32_t(epoch & 3) | (t.nsec << 2);
}

Timespec GetTime(uint32_t lo, uint32_t extra, bool has_extra) {
  Timespec t;
  t.sec = int64_t(int32_t(lo));
  if (has_extra) {
    t.sec += int64_t(extra & 3) << 32;
    t.nsec = extra >> 2;
  }
  return t;
}

void ApplyAttrs(ext2_filsys fs, ext2_inode_large* i, const Attrs& a) {
  i->i_mode = uint16_t(a.mode);
  i->i_uid = uint16_t(a.uid);
  ext2fs_set_i_uid_high(*i, a.uid >> 16);
  i->i_gid = uint16_t(a.gid);
  ext2fs_set_i_gid_high(*i, a.gid >> 16);
  const bool large = EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE;
  if (large) {
    i->i_extra_isize = uint16_t(sizeof(ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE);
    if (fs->super->s_want_extra_isize > 0 &&
        fs->super->s_want_extra_isize < i->i_extra_isize)
      i->i_extra_isize = fs->super->s_want_extra_isize;
  }
  const bool ext = large && i->i_extra_isize >= 24;  // ctime..crtime extras present
  SetTime(&i->i_atime, ext ? &i->i_atime_extra : nullptr, a.atime);
  SetTime(&i->i_mtime, ext ? &i->i_mtime_extra : nullptr, a.mtime);
  SetTime(&i->i_ctime, ext ? &i->i_ctime_extra : nullptr, a.ctime);
  if (ext) SetTime(&i->i_crtime, &i->i_crtime_extra, a.crtime);
}

void EncodeRdev(ext2_inode_large* i, uint32_t major, uint32_t minor) {
  if (major < 256 && minor < 256) {
    i->i_block[0] = (major << 8) | minor;
    i->i_block[1] = 0;
  } else {
    i->i_block[0] = 0;
    i->i_block[1] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
    i->i_block[2] = 0;
  }
}

void DecodeRdev(const ext2_inode_large* i, uint32_t* major, uint32_t* minor) {
  if (i->i_block[0]) {
    *major = (i->i_block[0] >> 8) & 0xff;
    *minor = i->i_block[0] & 0xff;
  } else {
    const uint32_t d = i->i_block[1];
    *major = (d & 0xfff00) >> 8;
    *minor = (d & 0xff) | ((d >> 12) & 0xfff00);
  }
}

FileType TypeOfMode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return FileType::kRegular;
    case S_IFDIR: return FileType::kDirectory;
    case S_IFCHR: return FileType::kCharDevice;
    case S_IFBLK: return FileType::kBlockDevice;
    case S_IFIFO: return FileType::kFifo;
    case S_IFSOCK: return FileType::kSocket;
    case S_IFLNK: return FileType::kSymlink;
    default: return FileType::kUnknown;
  }
}

uint8_t DirentTypeOfMode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return EXT2_FT_REG_FILE;
    case S_IFDIR: return EXT2_FT_DIR;
    case S_IFCHR: return EXT2_FT_CHRDEV;
    case S_IFBLK: return EXT2_FT_BLKDEV;
    case S_IFIFO: return EXT2_FT_FIFO;
    case S_IFSOCK: return EXT2_FT_SOCK;
    case S_IFLNK: return EXT2_FT_SYMLINK;
    default: return EXT2_FT_UNKNOWN;
  }
}

uint32_t InodeUid(const ext2_inode_large* i) {
  return uint32_t(i->i_uid) | (uint32_t(i->osd2.linux2.l_i_uid_high) << 16);
}
uint32_t InodeGid(const ext2_inode_large* i) {
  return uint32_t(i->i_gid) | (uint32_t(i->osd2.linux2.l_i_gid_high) << 16);
}
uint64_t InodeSize(const ext2_inode_large* i) { return EXT2_I_SIZE(i); }
void SetInodeSize(ext2_inode_large* i, uint64_t size) {
  i->i_size = uint32_t(size);
  i->i_size_high = uint32_t(size >> 32);
}

Result<std::vector<std::string>> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < path.size()) {
    size_t q = path.find('/', p);
    if (q == std::string_view::npos) q = path.size();
    std::string_view comp = path.substr(p, q - p);
    if (!comp.empty()) {
      if (comp == "." || comp == "..")
        return Status::InvalidArgument("path " + std::string(path) + ": '.' and '..' are not allowed");
      if (comp.size() > EXT2_NAME_LEN)
        return Status::InvalidArgument("path " + std::string(path) + ": name longer than 255 bytes");
      out.emplace_back(comp);
    }
    p = q + 1;
  }
  return out;
}

namespace {
struct XattrCollect {
  std::vector<Xattr>* out;
};
int CollectXattr(char* name, char* value, size_t len, void* data) {
  auto* c = static_cast<XattrCollect*>(data);
  c->out->push_back(Xattr{name, std::string(value, len)});
  return 0;
}

// RAII for an ext2 xattr handle.
struct XattrHandle {
  ext2_xattr_handle* h = nullptr;
  ~XattrHandle() {
    if (h) (void)ext2fs_xattrs_close(&h);
  }
};
}  // namespace

Result<std::vector<Xattr>> ReadXattrs(const FsContext& c, uint32_t ino, std::string_view path) {
  std::vector<Xattr> out;
  if (!ext2fs_has_feature_xattr(c.fs->super)) return out;
  XattrHandle h;
  errcode_t e = ext2fs_xattrs_open(c.fs, ino, &h.h);
  if (!e) e = ext2fs_xattrs_read(h.h);
  XattrCollect col{&out};
  if (!e) e = ext2fs_xattrs_iterate(h.h, CollectXattr, &col);
  if (e) return c.Err(e, "reading xattrs of", path);
  std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return out;
}

Status WriteXattrs(const FsContext& c, uint32_t ino, const std::vector<Xattr>& xattrs,
                   std::string_view path) {
  if (xattrs.empty()) return Status::Ok();
  if (!ext2fs_has_feature_xattr(c.fs->super))
    return Status::Unsupported("xattrs on " + std::string(path) + ": filesystem lacks ext_attr");
  XattrHandle h;
  errcode_t e = ext2fs_xattrs_open(c.fs, ino, &h.h);
  if (!e) e = ext2fs_xattrs_read(h.h);
  for (const Xattr& x : xattrs) {
    if (e) break;
    e = ext2fs_xattr_set(h.h, x.name.c_str(), x.value.data(), x.value.size());
    if (e) return c.Err(e, "setting xattr " + x.name + " on", path);
  }
  if (e) return c.Err(e, "writing xattrs of", path);
  e = ext2fs_xattrs_close(&h.h);
  if (e) return c.Err(e, "writing xattrs of", path);
  return Status::Ok();
}

Status ClearXattrs(const FsContext& c, uint32_t ino, std::string_view path) {
  ASSIGN_OR_RETURN(std::vector<Xattr> xs, ReadXattrs(c, ino, path));
  if (xs.empty()) return Status::Ok();
  XattrHandle h;
  errcode_t e = ext2fs_xattrs_open(c.fs, ino, &h.h);
  if (!e) e = ext2fs_xattrs_read(h.h);
  for (const Xattr& x : xs) {
    if (e) break;
    if (x.name == "system.data") continue;  // inline data lives there: not an attribute
    e = ext2fs_xattr_remove(h.h, x.name.c_str());
    if (e) return c.Err(e, "removing xattr " + x.name + " of", path);
  }
  if (!e) e = ext2fs_xattrs_close(&h.h);
  if (e) return c.Err(e, "writing xattrs of", path);
  return Status::Ok();
}

Result<InodeInfo> LoadInfo(const FsContext& c, uint32_t ino, std::string_view path) {
  InodeBuf buf(c.fs);
  RETURN_IF_ERROR(ReadInode(c, ino, &buf, path));
  ext2_inode_large* i = buf.large();
  InodeInfo info;
  info.ino = ino;
  info.mode = i->i_mode;
  info.type = TypeOfMode(i->i_mode);
  info.nlink = i->i_links_count;
  info.uid = InodeUid(i);
  info.gid = InodeGid(i);
  info.size = InodeSize(i);
  info.allocated_bytes = ext2fs_get_stat_i_blocks(c.fs, buf.small()) * 512;
  const bool large = buf.size() > EXT2_GOOD_OLD_INODE_SIZE;
  const bool ext = large && i->i_extra_isize >= 24;
  info.atime = GetTime(i->i_atime, i->i_atime_extra, ext);
  info.mtime = GetTime(i->i_mtime, i->i_mtime_extra, ext);
  info.ctime = GetTime(i->i_ctime, i->i_ctime_extra, ext);
  if (ext) info.crtime = GetTime(i->i_crtime, i->i_crtime_extra, true);
  if (info.type == FileType::kCharDevice || info.type == FileType::kBlockDevice)
    DecodeRdev(i, &info.rdev_major, &info.rdev_minor);
  if (info.type == FileType::kSymlink) {
    if (ext2fs_is_fast_symlink(buf.small())) {
      info.symlink_target.assign(reinterpret_cast<const char*>(i->i_block),
                                 std::min<size_t>(info.size, sizeof(i->i_block)));
    } else {
      ext2_file_t f = nullptr;
      errcode_t e = ext2fs_file_open2(c.fs, ino, buf.small(), 0, &f);
      if (e) return c.Err(e, "opening symlink", path);
      std::string t(std::min<uint64_t>(info.size, 65536), '\0');
      unsigned int got = 0;
      e = ext2fs_file_read(f, t.data(), unsigned(t.size()), &got);
      (void)ext2fs_file_close(f);
      if (e) return c.Err(e, "reading symlink", path);
      t.resize(got);
      info.symlink_target = std::move(t);
    }
  }
  ASSIGN_OR_RETURN(auto xs, ReadXattrs(c, ino, path));
  for (auto& x : xs) info.xattrs.emplace_back(std::move(x.name), std::move(x.value));
  return info;
}

}  // namespace stack::fsbridge

#include "tree_builder.h"

#include <sys/stat.h>

#include <cstring>

namespace stack::fsbridge {

namespace {

struct IterState {
  std::vector<DirEntry>* out;
  uint32_t parent = 0;
  bool keep_dot_names = false;
};

int CollectEntry(ext2_ino_t, int entry, ext2_dir_entry* d, int, int, char*, void* priv) {
  auto* st = static_cast<IterState*>(priv);
  const int len = ext2fs_dirent_name_len(d);
  std::string name(d->name, size_t(len));
  if (entry == DIRENT_DOT_FILE) return 0;
  if (entry == DIRENT_DOT_DOT_FILE) {
    st->parent = d->inode;
    return 0;
  }
  // A "." or ".." anywhere else is a hostile entry: readers see it (and
  // refuse it by name), writers never touch it.
  if (!st->keep_dot_names && (name == "." || name == "..")) return 0;
  st->out->push_back(DirEntry{std::move(name), d->inode, uint8_t(ext2fs_dirent_file_type(d))});
  return 0;
}

}  // namespace

// Directory entries listed from disk (also used by the readers).
Result<std::vector<DirEntry>> ListDirEntries(const FsContext& c, uint32_t ino,
                                             std::string_view path, uint32_t* parent,
                                             bool keep_dot_names) {
  std::vector<DirEntry> out;
  IterState st{&out, 0, keep_dot_names};
  errcode_t e = ext2fs_dir_iterate2(c.fs, ino, 0, nullptr, CollectEntry, &st);
  if (e) return c.Err(e, "reading directory", path);
  if (parent) *parent = st.parent;
  return out;
}

TreeBuilder::TreeBuilder(const FsContext& c, uint64_t* goal, Timespec now)
    : c_(c), goal_(goal), now_(now) {}

uint64_t TreeBuilder::Estimate(const Dir& d, uint32_t bs) {
  // Leaves filled to at least 3/4 on average, plus root, interior node and
  // an extent block.
  return (d.bytes + 24) * 4 / 3 / bs + 4;
}

void TreeBuilder::Touch(Dir* d) {
  if (!d->dirty) {
    d->dirty = true;
    reserve_ += Estimate(*d, c_.fs->blocksize);
  }
}

void TreeBuilder::AddEntry(Dir* d, const std::string& name, uint32_t ino, uint8_t ftype) {
  Touch(d);
  reserve_ -= Estimate(*d, c_.fs->blocksize);
  auto it = d->index.find(name);
  if (it != d->index.end()) {
    d->entries[it->second].ino = ino;
    d->entries[it->second].ftype = ftype;
  } else {
    d->index.emplace(name, d->entries.size());
    d->entries.push_back(DirEntry{name, ino, ftype});
    d->bytes += DirRecLen(name.size());
  }
  reserve_ += Estimate(*d, c_.fs->blocksize);
}

std::string TreeBuilder::PathOf(const Dir* d, const std::string& name) const {
  return d->path == "/" ? "/" + name : d->path + "/" + name;
}

Result<TreeBuilder::Dir*> TreeBuilder::LoadDir(uint32_t ino, uint32_t parent, std::string path) {
  auto it = dirs_.find(ino);
  if (it != dirs_.end()) return it->second.get();
  auto d = std::make_unique<Dir>();
  d->ino = ino;
  d->path = std::move(path);
  uint32_t disk_parent = 0;
  ASSIGN_OR_RETURN(d->entries, ListDirEntries(c_, ino, d->path, &disk_parent));
  d->parent = disk_parent ? disk_parent : parent;
  for (size_t i = 0; i < d->entries.size(); ++i) {
    d->index.emplace(d->entries[i].name, i);
    d->bytes += DirRecLen(d->entries[i].name.size());
  }
  Dir* raw = d.get();
  dirs_.emplace(ino, std::move(d));
  return raw;
}

Result<TreeBuilder::Dir*> TreeBuilder::Root() { return LoadDir(EXT2_ROOT_INO, EXT2_ROOT_INO, "/"); }

const DirEntry* TreeBuilder::Find(Dir* d, const std::string& name) const {
  auto it = d->index.find(name);
  return it == d->index.end() ? nullptr : &d->entries[it->second];
}

Result<TreeBuilder::Dir*> TreeBuilder::OpenDir(const std::vector<std::string>& comps, bool create,
                                               const Attrs& dir_attrs) {
  ASSIGN_OR_RETURN(Dir * d, Root());
  for (const std::string& comp : comps) {
    const DirEntry* e = Find(d, comp);
    if (!e) {
      if (!create) return Status::NotFound(PathOf(d, comp) + ": no such directory");
      ASSIGN_OR_RETURN(d, AddDir(d, comp, dir_attrs, {}));
      continue;
    }
    if (e->ftype != EXT2_FT_DIR)
      return Status::InvalidArgument(PathOf(d, comp) + ": not a directory");
    ASSIGN_OR_RETURN(d, LoadDir(e->ino, d->ino, PathOf(d, comp)));
  }
  return d;
}

Result<uint32_t> TreeBuilder::NewInode(uint32_t parent, uint32_t mode, const std::string& path) {
  ext2_ino_t ino = 0;
  errcode_t e = ext2fs_new_inode(c_.fs, parent, int(mode), nullptr, &ino);
  if (e) return c_.Err(e, "creating", path);  // INODE_ALLOC_FAIL -> NoSpace
  ext2fs_inode_alloc_stats2(c_.fs, ino, +1, S_ISDIR(mode) ? 1 : 0);
  return uint32_t(ino);
}

Status TreeBuilder::FreeInode(uint32_t ino, InodeBuf* buf, const std::string& path) {
  ext2_inode_large* i = buf->large();
  const bool is_dir = S_ISDIR(i->i_mode);
  if (i->i_mode && ext2fs_inode_has_valid_blocks2(c_.fs, buf->small())) {
    errcode_t e = ext2fs_punch(c_.fs, ino, buf->small(), nullptr, 0, ~0ULL);
    if (e) return c_.Err(e, "freeing blocks of", path);
  }
  if (ext2fs_file_acl_block(c_.fs, buf->small())) {
    errcode_t e = ext2fs_free_ext_attr(c_.fs, ino, i);
    if (e) return c_.Err(e, "freeing xattrs of", path);
  }
  buf->Clear();
  buf->large()->i_dtime = uint32_t(now_.sec ? now_.sec : 1);
  RETURN_IF_ERROR(WriteInode(c_, ino, buf, path));
  ext2fs_inode_alloc_stats2(c_.fs, ino, -1, is_dir ? 1 : 0);
  return Status::Ok();
}

Status TreeBuilder::ReleaseTree(uint32_t ino, uint8_t ftype, const std::string& path) {
  InodeBuf buf(c_.fs);
  RETURN_IF_ERROR(ReadInode(c_, ino, &buf, path));
  if (ftype == EXT2_FT_DIR || S_ISDIR(buf.large()->i_mode)) {
    std::vector<DirEntry> children;
    auto it = dirs_.find(ino);
    if (it != dirs_.end()) {
      if (it->second->dirty) reserve_ -= Estimate(*it->second, c_.fs->blocksize);
      children = std::move(it->second->entries);
      const bool was_new = it->second->is_new;
      dirs_.erase(it);
      if (was_new) {
        // Never written: nothing on disk but the allocation.
        for (const DirEntry& e : children) RETURN_IF_ERROR(ReleaseTree(e.ino, e.ftype, path + "/" + e.name));
        buf.Clear();
        ext2fs_inode_alloc_stats2(c_.fs, ino, -1, 1);
        return Status::Ok();
      }
    } else {
      ASSIGN_OR_RETURN(children, ListDirEntries(c_, ino, path, nullptr));
    }
    for (const DirEntry& e : children) RETURN_IF_ERROR(ReleaseTree(e.ino, e.ftype, path + "/" + e.name));
    return FreeInode(ino, &buf, path);
  }
  if (buf.large()->i_links_count > 1) {
    buf.large()->i_links_count--;
    return WriteInode(c_, ino, &buf, path);
  }
  return FreeInode(ino, &buf, path);
}

Status TreeBuilder::CheckTree(uint32_t ino, uint8_t ftype, const std::string& path,
                              std::unordered_set<uint32_t>* dirs_seen) {
  InodeBuf buf(c_.fs);
  RETURN_IF_ERROR(ReadInode(c_, ino, &buf, path));
  if (ftype != EXT2_FT_DIR && !S_ISDIR(buf.large()->i_mode)) return Status::Ok();
  if (!dirs_seen->insert(ino).second)
    return Status::Corruption(path + ": directory inode " + std::to_string(ino) +
                              " is reached twice (a directory loop or a directory with two "
                              "names); nothing was removed: run e2fsck");
  std::vector<DirEntry> children;
  if (auto it = dirs_.find(ino); it != dirs_.end()) {
    children = it->second->entries;
  } else {
    ASSIGN_OR_RETURN(children, ListDirEntries(c_, ino, path, nullptr));
  }
  for (const DirEntry& e : children)
    RETURN_IF_ERROR(CheckTree(e.ino, e.ftype, path + "/" + e.name, dirs_seen));
  return Status::Ok();
}

Status TreeBuilder::RemoveName(Dir* parent, const std::string& name, bool recursive) {
  const std::string path = PathOf(parent, name);
  auto it = parent->index.find(name);
  if (it == parent->index.end()) return Status::NotFound(path + ": no such file or directory");
  const DirEntry e = parent->entries[it->second];
  if (e.ftype == EXT2_FT_DIR && !recursive) {
    ASSIGN_OR_RETURN(Dir * d, LoadDir(e.ino, parent->ino, path));
    if (!d->entries.empty())
      return Status::InvalidArgument(path + ": directory not empty (use recursive)");
  }
  std::unordered_set<uint32_t> dirs_seen{parent->ino};
  RETURN_IF_ERROR(CheckTree(e.ino, e.ftype, path, &dirs_seen));
  RETURN_IF_ERROR(ReleaseTree(e.ino, e.ftype, path));
  Touch(parent);
  reserve_ -= Estimate(*parent, c_.fs->blocksize);
  const size_t pos = it->second;
  parent->bytes -= DirRecLen(name.size());
  parent->entries.erase(parent->entries.begin() + long(pos));
  parent->index.clear();
  for (size_t i = 0; i < parent->entries.size(); ++i) parent->index.emplace(parent->entries[i].name, i);
  reserve_ += Estimate(*parent, c_.fs->blocksize);
  return Status::Ok();
}

Status TreeBuilder::Prepare(Dir* parent, const std::string& name, bool is_dir, Dir** merge) {
  if (name.empty() || name.size() > EXT2_NAME_LEN || name == "." || name == ".." ||
      name.find('/') != std::string::npos)
    return Status::InvalidArgument(PathOf(parent, name) + ": invalid name (1..255 bytes, no '/')");
  const DirEntry* e = Find(parent, name);
  if (!e) return Status::Ok();
  if (is_dir && e->ftype == EXT2_FT_DIR && merge) {
    ASSIGN_OR_RETURN(*merge, LoadDir(e->ino, parent->ino, PathOf(parent, name)));
    return Status::Ok();
  }
  return RemoveName(parent, name, true);
}

Result<TreeBuilder::Dir*> TreeBuilder::AddDir(Dir* parent, const std::string& name, const Attrs& a,
                                              std::vector<Xattr> xattrs) {
  Dir* existing = nullptr;
  RETURN_IF_ERROR(Prepare(parent, name, true, &existing));
  if (existing) {
    SetDirAttrs(existing, a, std::move(xattrs));
    return existing;
  }
  const std::string path = PathOf(parent, name);
  ASSIGN_OR_RETURN(uint32_t ino, NewInode(parent->ino, a.mode, path));
  auto d = std::make_unique<Dir>();
  d->ino = ino;
  d->parent = parent->ino;
  d->path = path;
  d->is_new = true;
  d->attrs = a;
  d->xattrs = std::move(xattrs);
  Dir* raw = d.get();
  dirs_.emplace(ino, std::move(d));
  Touch(raw);
  AddEntry(parent, name, ino, EXT2_FT_DIR);
  return raw;
}

void TreeBuilder::SetDirAttrs(Dir* d, const Attrs& a, std::vector<Xattr> xattrs) {
  Touch(d);
  d->attrs = a;
  for (auto& x : xattrs) d->xattrs.push_back(std::move(x));
}

Result<uint32_t> TreeBuilder::AddFile(Dir* parent, const std::string& name, const Attrs& a,
                                      const std::vector<Xattr>& xattrs, uint64_t size,
                                      const Fill& fill) {
  // Extents address 2^32 - 1 blocks (Linux's ext4_max_size): a larger size
  // (a sparse tar member can claim any) would wrap block numbers, and
  // e2fsck would find the file system broken. Refused before any change.
  const uint64_t max_size = ((uint64_t(1) << 32) - 1) * c_.fs->blocksize;
  if (size > max_size)
    return Status::OutOfRange(PathOf(parent, name) + ": " + std::to_string(size) +
                              " bytes, more than an ext4 file holds (" +
                              std::to_string(max_size) + ")");
  RETURN_IF_ERROR(Prepare(parent, name, false, nullptr));
  const std::string path = PathOf(parent, name);
  ASSIGN_OR_RETURN(uint32_t ino, NewInode(parent->ino, a.mode, path));
  InodeBuf buf(c_.fs);
  ApplyAttrs(c_.fs, buf.large(), a);
  buf.large()->i_links_count = 1;
  SetInodeSize(buf.large(), size);
  Status s;
  bool finished = false;
  {
    DataWriter dw(c_, goal_, path, reserve_, true, &file_scratch_);
    s = fill(dw);
    if (s.ok()) {
      s = dw.Finish(ino, &buf);
      finished = s.ok();
    }
  }  // an unfinished writer frees its blocks here
  if (s.ok()) s = WriteXattrs(c_, ino, xattrs, path);
  if (!s.ok()) {
    InodeBuf z(c_.fs);
    if (finished && ReadInode(c_, ino, &z, path).ok() && FreeInode(ino, &z, path).ok()) return s;
    z.Clear();
    z.large()->i_dtime = uint32_t(now_.sec ? now_.sec : 1);
    (void)WriteInode(c_, ino, &z, path);
    ext2fs_inode_alloc_stats2(c_.fs, ino, -1, 0);
    return s;
  }
  AddEntry(parent, name, ino, EXT2_FT_REG_FILE);
  return ino;
}

Result<bool> TreeBuilder::RewriteLinkedFile(Dir* parent, const std::string& name, uint64_t size,
                                            const Timespec& mtime, const Fill& fill) {
  const DirEntry* e = Find(parent, name);
  if (!e || e->ftype != EXT2_FT_REG_FILE) return false;
  const uint32_t ino = e->ino;
  const std::string path = PathOf(parent, name);
  InodeBuf buf(c_.fs);
  RETURN_IF_ERROR(ReadInode(c_, ino, &buf, path));
  if (!S_ISREG(buf.large()->i_mode) || buf.large()->i_links_count < 2) return false;
  if (ext2fs_inode_has_valid_blocks2(c_.fs, buf.small())) {
    errcode_t err = ext2fs_punch(c_.fs, ino, buf.small(), nullptr, 0, ~0ULL);
    if (err) return c_.Err(err, "freeing blocks of", path);
    RETURN_IF_ERROR(ReadInode(c_, ino, &buf, path));  // punch rewrote it
  }
  ext2_inode_large* i = buf.large();
  SetInodeSize(i, 0);
  RETURN_IF_ERROR(WriteInode(c_, ino, &buf, path));  // empty until the data is in
  Attrs a;
  a.mode = i->i_mode;
  a.uid = InodeUid(i);
  a.gid = InodeGid(i);
  const bool ext = buf.size() > EXT2_GOOD_OLD_INODE_SIZE && i->i_extra_isize >= 24;
  a.atime = GetTime(i->i_atime, i->i_atime_extra, ext);
  a.crtime = ext ? GetTime(i->i_crtime, i->i_crtime_extra, true) : now_;
  a.mtime = mtime;
  a.ctime = now_;
  ApplyAttrs(c_.fs, i, a);
  SetInodeSize(i, size);
  DataWriter dw(c_, goal_, path, reserve_, true, &file_scratch_);
  RETURN_IF_ERROR(fill(dw));
  RETURN_IF_ERROR(dw.Finish(ino, &buf));
  return true;
}

Result<uint32_t> TreeBuilder::AddSymlink(Dir* parent, const std::string& name,
                                         const std::string& target, const Attrs& a,
                                         const std::vector<Xattr>& xattrs) {
  RETURN_IF_ERROR(Prepare(parent, name, false, nullptr));
  const std::string path = PathOf(parent, name);
  if (target.empty() || target.size() >= c_.fs->blocksize)
    return Status::InvalidArgument(path + ": symlink target must be 1.." +
                                   std::to_string(c_.fs->blocksize - 1) + " bytes");
  ASSIGN_OR_RETURN(uint32_t ino, NewInode(parent->ino, a.mode, path));
  InodeBuf buf(c_.fs);
  ApplyAttrs(c_.fs, buf.large(), a);
  buf.large()->i_links_count = 1;
  SetInodeSize(buf.large(), target.size());
  Status s;
  if (target.size() < sizeof(buf.large()->i_block)) {
    std::memcpy(buf.large()->i_block, target.data(), target.size());
    s = WriteInode(c_, ino, &buf, path);
  } else {
    DataWriter dw(c_, goal_, path, reserve_, false);
    s = dw.Write(0, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(target.data()),
                                             target.size()));
    if (s.ok()) s = dw.Finish(ino, &buf);
  }
  if (s.ok()) s = WriteXattrs(c_, ino, xattrs, path);
  if (!s.ok()) {
    ext2fs_inode_alloc_stats2(c_.fs, ino, -1, 0);
    return s;
  }
  AddEntry(parent, name, ino, EXT2_FT_SYMLINK);
  return ino;
}

Result<uint32_t> TreeBuilder::AddSpecial(Dir* parent, const std::string& name, const Attrs& a,
                                         uint32_t major, uint32_t minor,
                                         const std::vector<Xattr>& xattrs) {
  RETURN_IF_ERROR(Prepare(parent, name, false, nullptr));
  const std::string path = PathOf(parent, name);
  ASSIGN_OR_RETURN(uint32_t ino, NewInode(parent->ino, a.mode, path));
  InodeBuf buf(c_.fs);
  ApplyAttrs(c_.fs, buf.large(), a);
  buf.large()->i_links_count = 1;
  if (S_ISCHR(a.mode) || S_ISBLK(a.mode)) EncodeRdev(buf.large(), major, minor);
  Status s = WriteInode(c_, ino, &buf, path);
  if (s.ok()) s = WriteXattrs(c_, ino, xattrs, path);
  if (!s.ok()) {
    ext2fs_inode_alloc_stats2(c_.fs, ino, -1, 0);
    return s;
  }
  AddEntry(parent, name, ino, DirentTypeOfMode(a.mode));
  return ino;
}

Status TreeBuilder::AddHardLink(Dir* parent, const std::string& name, uint32_t ino,
                                const ManifestEntry* override) {
  const std::string path = PathOf(parent, name);
  const DirEntry* e = Find(parent, name);
  if (e && e->ino == ino) return Status::Ok();
  InodeBuf buf(c_.fs);
  RETURN_IF_ERROR(ReadInode(c_, ino, &buf, path));
  if (S_ISDIR(buf.large()->i_mode)) return Status::InvalidArgument(path + ": hard link to a directory");
  if (buf.large()->i_links_count >= EXT2_LINK_MAX)
    return Status::InvalidArgument(path + ": too many links");
  RETURN_IF_ERROR(Prepare(parent, name, false, nullptr));
  RETURN_IF_ERROR(ReadInode(c_, ino, &buf, path));  // Prepare may have dropped a link
  buf.large()->i_links_count++;
  if (override) {
    ext2_inode_large* i = buf.large();
    Attrs a;
    a.mode = i->i_mode;
    a.uid = InodeUid(i);
    a.gid = InodeGid(i);
    const bool ext = buf.size() > EXT2_GOOD_OLD_INODE_SIZE && i->i_extra_isize >= 24;
    a.atime = GetTime(i->i_atime, i->i_atime_extra, ext);
    a.mtime = GetTime(i->i_mtime, i->i_mtime_extra, ext);
    a.ctime = GetTime(i->i_ctime, i->i_ctime_extra, ext);
    a.crtime = ext ? GetTime(i->i_crtime, i->i_crtime_extra, true) : a.ctime;
    Manifest::Merge(*override, &a);
    ApplyAttrs(c_.fs, i, a);
  }
  RETURN_IF_ERROR(WriteInode(c_, ino, &buf, path));
  AddEntry(parent, name, ino, DirentTypeOfMode(buf.large()->i_mode));
  return Status::Ok();
}

Status TreeBuilder::WriteDir(Dir* d) {
  ASSIGN_OR_RETURN(DirImage img, BuildDirectory(c_.fs, d->ino, d->parent, d->entries));
  InodeBuf buf(c_.fs);
  if (!d->is_new) {
    RETURN_IF_ERROR(ReadInode(c_, d->ino, &buf, d->path));
    if (ext2fs_inode_has_valid_blocks2(c_.fs, buf.small())) {
      errcode_t e = ext2fs_punch(c_.fs, d->ino, buf.small(), nullptr, 0, ~0ULL);
      if (e) return c_.Err(e, "rewriting directory", d->path);
    }
  }
  if (d->attrs) ApplyAttrs(c_.fs, buf.large(), *d->attrs);
  ext2_inode_large* i = buf.large();
  uint32_t subdirs = 0;
  for (const DirEntry& e : d->entries) subdirs += e.ftype == EXT2_FT_DIR;
  const uint32_t links = 2 + subdirs;
  i->i_links_count = uint16_t(links >= EXT2_LINK_MAX && ext2fs_has_feature_dir_nlink(c_.fs->super) ? 1 : links);
  if (links >= EXT2_LINK_MAX && !ext2fs_has_feature_dir_nlink(c_.fs->super))
    return Status::InvalidArgument(d->path + ": too many subdirectories");
  SetInodeSize(i, uint64_t(img.nblocks) * c_.fs->blocksize);
  if (img.indexed) i->i_flags |= EXT2_INDEX_FL;
  else i->i_flags &= ~uint32_t(EXT2_INDEX_FL);
  DataWriter dw(c_, goal_, d->path, 0, false);
  RETURN_IF_ERROR(dw.Write(0, img.bytes));
  RETURN_IF_ERROR(dw.Finish(d->ino, &buf));
  RETURN_IF_ERROR(WriteXattrs(c_, d->ino, d->xattrs, d->path));
  d->dirty = false;
  d->is_new = false;
  d->xattrs.clear();
  d->attrs.reset();
  return Status::Ok();
}

Status TreeBuilder::Finalize() {
  Status first;
  for (auto& [ino, d] : dirs_) {
    if (!d->dirty) continue;
    reserve_ -= Estimate(*d, c_.fs->blocksize);
    Status s = WriteDir(d.get());
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace stack::fsbridge

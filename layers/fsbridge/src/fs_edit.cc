// Edits of an existing filesystem: PutFile, Mkdir, Remove, Chmod, Chown,
// ClearXattrs, Symlink. Each runs one TreeBuilder session, so the directories it
// touches are rewritten whole (linear, re-indexed) and stay consistent.
#include <sys/stat.h>
#include <unistd.h>

#include "filesystem_impl.h"
#include "host_import.h"

namespace stack::fsbridge {

namespace {

// Splits a path into (parent components, leaf name). InvalidArgument for "/".
Status ParentAndLeaf(const std::string& path, std::vector<std::string>* parent, std::string* leaf) {
  ASSIGN_OR_RETURN(*parent, SplitPath(path));
  if (parent->empty()) return Status::InvalidArgument(path + ": the root has no name");
  *leaf = parent->back();
  parent->pop_back();
  return Status::Ok();
}

}  // namespace

Status Filesystem::PutFile(const std::string& host_path, const std::string& fs_path,
                           const PopulateOptions& opts) {
  RETURN_IF_ERROR(impl_->CheckWritable("put " + fs_path));
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::Load(opts.manifest_path));
  std::vector<std::string> parent;
  std::string leaf;
  RETURN_IF_ERROR(ParentAndLeaf(fs_path, &parent, &leaf));
  struct stat st;
  if (::lstat(host_path.c_str(), &st) != 0)
    return errno == ENOENT ? Status::NotFound("put: " + host_path + ": no such file")
                           : Status::FromErrno("put: " + host_path, errno);
  const Timespec now = impl_->Now(opts.timestamp);
  PopulateStats stats;
  TreeBuilder tb(impl_->ctx(), &impl_->goal, now);
  HostImporter imp(&tb, &manifest, opts, now, &stats);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb.OpenDir(parent, false, DefaultDirAttrs(now)));
    // Over a hard-linked file: into its inode, so every name sees the new
    // content (as cp does); otherwise the name gets a new inode.
    ASSIGN_OR_RETURN(bool in_place, imp.RewriteLinked(d, leaf, host_path));
    if (!in_place) RETURN_IF_ERROR(imp.CopyEntry(d, leaf, host_path, ""));
    return manifest.CheckAllUsed(opts.lenient_manifest, nullptr);
  }();
  Status f = tb.Finalize();
  RETURN_IF_ERROR(s);
  return f;
}

Status Filesystem::Mkdir(const std::string& path, bool parents, uint32_t mode) {
  RETURN_IF_ERROR(impl_->CheckWritable("mkdir " + path));
  std::vector<std::string> parent;
  std::string leaf;
  RETURN_IF_ERROR(ParentAndLeaf(path, &parent, &leaf));
  const Timespec now = impl_->Now(std::nullopt);
  TreeBuilder tb(impl_->ctx(), &impl_->goal, now);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb.OpenDir(parent, parents, DefaultDirAttrs(now)));
    if (const DirEntry* e = tb.Find(d, leaf)) {
      if (parents && e->ftype == EXT2_FT_DIR) return Status::Ok();
      return Status::AlreadyExists("mkdir " + tb.PathOf(d, leaf) + ": already exists");
    }
    Attrs a = DefaultDirAttrs(now, mode);
    return tb.AddDir(d, leaf, a, {}).status();
  }();
  Status f = tb.Finalize();
  RETURN_IF_ERROR(s);
  return f;
}

Status Filesystem::Remove(const std::string& path, bool recursive) {
  RETURN_IF_ERROR(impl_->CheckWritable("rm " + path));
  std::vector<std::string> parent;
  std::string leaf;
  RETURN_IF_ERROR(ParentAndLeaf(path, &parent, &leaf));
  const Timespec now = impl_->Now(std::nullopt);
  TreeBuilder tb(impl_->ctx(), &impl_->goal, now);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb.OpenDir(parent, false, DefaultDirAttrs(now)));
    return tb.RemoveName(d, leaf, recursive);
  }();
  Status f = tb.Finalize();
  RETURN_IF_ERROR(s);
  return f;
}

Status Filesystem::Symlink(const std::string& target, const std::string& link_path) {
  RETURN_IF_ERROR(impl_->CheckWritable("symlink " + link_path));
  std::vector<std::string> parent;
  std::string leaf;
  RETURN_IF_ERROR(ParentAndLeaf(link_path, &parent, &leaf));
  const Timespec now = impl_->Now(std::nullopt);
  TreeBuilder tb(impl_->ctx(), &impl_->goal, now);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb.OpenDir(parent, false, DefaultDirAttrs(now)));
    if (tb.Find(d, leaf)) return Status::AlreadyExists("symlink " + tb.PathOf(d, leaf) + ": already exists");
    Attrs a;
    a.mode = S_IFLNK | 0777;
    a.atime = a.mtime = a.ctime = a.crtime = now;
    return tb.AddSymlink(d, leaf, target, a, {}).status();
  }();
  Status f = tb.Finalize();
  RETURN_IF_ERROR(s);
  return f;
}

Status Filesystem::Chmod(const std::string& path, uint32_t mode) {
  RETURN_IF_ERROR(impl_->CheckWritable("chmod " + path));
  if (mode & ~07777u) return Status::InvalidArgument("chmod " + path + ": mode beyond 07777");
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  InodeBuf buf(impl_->fs);
  RETURN_IF_ERROR(ReadInode(impl_->ctx(), ino, &buf, path));
  buf.large()->i_mode = uint16_t((buf.large()->i_mode & ~07777u) | mode);
  const Timespec now = impl_->Now(std::nullopt);
  SetTime(&buf.large()->i_ctime, buf.size() > 128 ? &buf.large()->i_ctime_extra : nullptr, now);
  return WriteInode(impl_->ctx(), ino, &buf, path);
}

Status Filesystem::Chown(const std::string& path, uint32_t uid, uint32_t gid) {
  RETURN_IF_ERROR(impl_->CheckWritable("chown " + path));
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  InodeBuf buf(impl_->fs);
  RETURN_IF_ERROR(ReadInode(impl_->ctx(), ino, &buf, path));
  ext2_inode_large* i = buf.large();
  i->i_uid = uint16_t(uid);
  ext2fs_set_i_uid_high(*i, uid >> 16);
  i->i_gid = uint16_t(gid);
  ext2fs_set_i_gid_high(*i, gid >> 16);
  const Timespec now = impl_->Now(std::nullopt);
  SetTime(&i->i_ctime, buf.size() > 128 ? &i->i_ctime_extra : nullptr, now);
  return WriteInode(impl_->ctx(), ino, &buf, path);
}

Status Filesystem::ClearXattrs(const std::string& path) {
  RETURN_IF_ERROR(impl_->CheckWritable("clearing the xattrs of " + path));
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  return fsbridge::ClearXattrs(impl_->ctx(), ino, path);
}

}  // namespace stack::fsbridge

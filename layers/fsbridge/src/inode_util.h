// Inode-level helpers shared by the writers and readers: the FsContext
// passed everywhere (the ext2_filsys plus the error boundary), attribute
// encoding (owners, nanosecond times, device numbers) and full-size inode
// reads and writes.
//
// Thread-safety: none (operates on one ext2_filsys).
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "block/status.h"
#include "block_io_manager.h"
#include "ext2_status.h"
#include "fsbridge/types.h"

namespace stack::fsbridge {

struct FsContext {
  ext2_filsys fs = nullptr;
  IoBinding* io = nullptr;
  // Converts a libext2fs error, attaching the device error if one caused it.
  Status Err(errcode_t e, std::string_view what, std::string_view path) const {
    return Ext2Status(e, what, path, io ? io->TakeLastError() : Status::Ok());
  }
};

// Owns an extent handle: freed when it goes out of scope.
struct ExtentHandle {
  ext2_extent_handle_t h = nullptr;
  ExtentHandle() = default;
  ExtentHandle(const ExtentHandle&) = delete;
  ExtentHandle& operator=(const ExtentHandle&) = delete;
  ~ExtentHandle() {
    if (h) ext2fs_extent_free(h);
  }
};

// Attributes applied to a new or changed inode.
struct Attrs {
  uint32_t mode = 0;  // full st_mode
  uint32_t uid = 0, gid = 0;
  Timespec atime, mtime, ctime, crtime;
};

struct Xattr {
  std::string name;
  std::string value;
};

// A full on-disk-size inode buffer; large() views its first bytes.
class InodeBuf {
 public:
  explicit InodeBuf(ext2_filsys fs);
  ext2_inode_large* large() { return reinterpret_cast<ext2_inode_large*>(storage_.data()); }
  ext2_inode* small() { return reinterpret_cast<ext2_inode*>(storage_.data()); }
  void Clear();
  int size() const { return size_; }

 private:
  int size_;
  std::vector<uint64_t> storage_;  // >= sizeof(ext2_inode_large), aligned
};

Status ReadInode(const FsContext& c, uint32_t ino, InodeBuf* buf, std::string_view path);
Status WriteInode(const FsContext& c, uint32_t ino, InodeBuf* buf, std::string_view path);

// Sets mode, owners and times (with nanoseconds and i_extra_isize).
void ApplyAttrs(ext2_filsys fs, ext2_inode_large* inode, const Attrs& a);
void SetTime(uint32_t* lo, uint32_t* extra, const Timespec& t);
Timespec GetTime(uint32_t lo, uint32_t extra, bool has_extra);

// Device numbers in i_block (the kernel's old/new encodings).
void EncodeRdev(ext2_inode_large* inode, uint32_t major, uint32_t minor);
void DecodeRdev(const ext2_inode_large* inode, uint32_t* major, uint32_t* minor);

FileType TypeOfMode(uint32_t mode);
uint8_t DirentTypeOfMode(uint32_t mode);  // EXT2_FT_*
uint32_t InodeUid(const ext2_inode_large* i);
uint32_t InodeGid(const ext2_inode_large* i);
uint64_t InodeSize(const ext2_inode_large* i);
void SetInodeSize(ext2_inode_large* i, uint64_t size);

// Splits "/a/b/c" into {"a","b","c"}. InvalidArgument for "." / ".." / empty
// components beyond slashes, or a component longer than 255 bytes.
Result<std::vector<std::string>> SplitPath(std::string_view path);

// Reads every attribute of an inode (xattrs included) into InodeInfo.
Result<InodeInfo> LoadInfo(const FsContext& c, uint32_t ino, std::string_view path);
Result<std::vector<Xattr>> ReadXattrs(const FsContext& c, uint32_t ino, std::string_view path);
Status WriteXattrs(const FsContext& c, uint32_t ino, const std::vector<Xattr>& xattrs,
                   std::string_view path);
// Removes every xattr of an inode (ACLs and security labels included).
Status ClearXattrs(const FsContext& c, uint32_t ino, std::string_view path);

}  // namespace stack::fsbridge

// Read side: List, Stat, ReadFile.
#include <sys/stat.h>

#include <algorithm>

#include "filesystem_impl.h"
#include "fsbridge/names.h"

namespace stack::fsbridge {

namespace {
struct File {
  ext2_file_t f = nullptr;
  ~File() {
    if (f) (void)ext2fs_file_close(f);
  }
};
}  // namespace

// Streams an inode's data (shared with extract).
Status ReadInodeData(const FsContext& c, uint32_t ino, const std::string& path,
                     const std::function<Status(std::span<const uint8_t>)>& sink) {
  File f;
  errcode_t e = ext2fs_file_open2(c.fs, ino, nullptr, 0, &f.f);
  if (e) return c.Err(e, "opening", path);
  __u64 size = 0;
  (void)ext2fs_file_get_lsize(f.f, &size);
  // ext4 addresses at most 2^32 blocks of a file: a larger i_size is damage
  // (or a hostile image asking readers to stream exabytes of zeros).
  const uint64_t max_size = (uint64_t(1) << 32) * c.fs->blocksize;
  if (uint64_t(size) > max_size)
    return Status::Corruption(path + ": size " + std::to_string(uint64_t(size)) +
                              " is larger than a file of this file system can be (" +
                              std::to_string(max_size) + "): run e2fsck");
  std::vector<uint8_t> buf(size_t(std::min<uint64_t>(std::max<uint64_t>(uint64_t(size), 1), 1 << 20)));
  while (true) {
    unsigned int got = 0;
    e = ext2fs_file_read(f.f, buf.data(), unsigned(buf.size()), &got);
    if (e) return c.Err(e, "reading", path);
    if (got == 0) break;
    RETURN_IF_ERROR(sink(std::span<const uint8_t>(buf.data(), got)));
  }
  return Status::Ok();
}

Result<std::vector<DirEntryInfo>> Filesystem::List(const std::string& path) {
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  const FsContext c = impl_->ctx();
  ASSIGN_OR_RETURN(InodeInfo self, LoadInfo(c, ino, path));
  if (self.type != FileType::kDirectory) return Status::InvalidArgument(path + ": not a directory");
  ASSIGN_OR_RETURN(auto entries, ReadableEntries(c, ino, EscapeText(path), impl_->warn, nullptr));
  std::vector<DirEntryInfo> out;
  out.reserve(entries.size());
  for (const DirEntry& e : entries) {
    ASSIGN_OR_RETURN(InodeInfo info, LoadInfo(c, e.ino, ChildShown(EscapeText(path), e.name)));
    out.push_back(DirEntryInfo{e.name, std::move(info)});
  }
  return out;
}

Result<InodeInfo> Filesystem::Stat(const std::string& path) {
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  return LoadInfo(impl_->ctx(), ino, path);
}

Status Filesystem::ReadFile(const std::string& path,
                            const std::function<Status(std::span<const uint8_t>)>& sink) {
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  InodeBuf buf(impl_->fs);
  RETURN_IF_ERROR(ReadInode(impl_->ctx(), ino, &buf, path));
  if (!S_ISREG(buf.large()->i_mode)) return Status::InvalidArgument(path + ": not a regular file");
  return ReadInodeData(impl_->ctx(), ino, path, sink);
}

Status Filesystem::ReadFile(const std::string& path, std::ostream& out) {
  return ReadFile(path, [&](std::span<const uint8_t> d) -> Status {
    out.write(reinterpret_cast<const char*>(d.data()), std::streamsize(d.size()));
    if (!out) return Status::IoError("writing the content of " + path + ": output stream failed");
    return Status::Ok();
  });
}

}  // namespace stack::fsbridge

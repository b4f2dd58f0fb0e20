// Read side: List, Stat, ReadFile.
#include <sys/stat.h>

#include <algorithm>

#include "data_reader.h"
#include "filesystem_impl.h"
#include "fsbridge/names.h"

namespace stack::fsbridge {

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

Status Filesystem::ReadFileTo(const std::string& path, int fd, const std::string& host_name) {
  ASSIGN_OR_RETURN(uint32_t ino, impl_->Lookup(path));
  InodeBuf buf(impl_->fs);
  RETURN_IF_ERROR(ReadInode(impl_->ctx(), ino, &buf, path));
  if (!S_ISREG(buf.large()->i_mode)) return Status::InvalidArgument(path + ": not a regular file");
  return WriteInodeToFd(impl_->ctx(), ino, path, fd, host_name);
}

Status Filesystem::ReadFile(const std::string& path, std::ostream& out) {
  return ReadFile(path, [&](std::span<const uint8_t> d) -> Status {
    out.write(reinterpret_cast<const char*>(d.data()), std::streamsize(d.size()));
    if (!out) return Status::IoError("writing the content of " + path + ": output stream failed");
    return Status::Ok();
  });
}

}  // namespace stack::fsbridge

#include "stack/output_file.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

namespace stack::compose {
namespace {

std::string DirOf(const std::string& target) {
  std::string dir = std::filesystem::path(target).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Existing target: AlreadyExists without overwrite; never a directory or a
// device (a rename would replace the node itself, not write into it), nor
// one of the command's inputs (a symlink to one is replaced itself: safe).
Status CheckTarget(const std::string& target, const OutputFileOptions& opts) {
  const bool overwrite = opts.overwrite;
  struct stat st {};
  if (::lstat(target.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno("stat " + target, errno);
  }
  if (S_ISDIR(st.st_mode)) return Status::InvalidArgument(target + " is a directory");
  for (const std::string& in : opts.inputs) {
    struct stat is {};
    if (S_ISREG(st.st_mode) && ::stat(in.c_str(), &is) == 0 && is.st_dev == st.st_dev &&
        is.st_ino == st.st_ino)
      return Status::InvalidArgument(target + " is a file this command reads (" + in +
                                     "): not replaced");
  }
  if (!overwrite) return Status::AlreadyExists(target + " exists (use --force to overwrite)");
  if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
    return Status::InvalidArgument(target + " is not a regular file: not replaced");
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open directory " + dir, errno);
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  return rc == 0 ? Status::Ok() : Status::FromErrno("fsync directory " + dir, e);
}

}  // namespace

std::string OutputTempPrefix(const std::string& target) {
  // The base name is cut so the temporary name fits NAME_MAX (255) too.
  const std::string base = std::filesystem::path(target).filename().string().substr(0, 200);
  return (std::filesystem::path(DirOf(target)) / ("." + base + ".stack-tmp-")).string();
}

Result<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& target,
                                                       const OutputFileOptions& opts) {
  if (target.empty()) return Status::InvalidArgument("no output file named");
  if (std::filesystem::path(target).filename().empty())
    return Status::InvalidArgument(target + " names a directory, not a file");
  RETURN_IF_ERROR(CheckTarget(target, opts));
  std::string temp = OutputTempPrefix(target) + "XXXXXX";
  // mkostemp: O_CREAT | O_EXCL, mode 0600.
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("create a temporary file in " + DirOf(target), errno);
  OutputFileOptions o = opts;
  if (o.apply_umask) {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    o.mode &= ~mask;
  }
  return std::unique_ptr<OutputFile>(new OutputFile(target, std::move(temp), fd, o));
}

OutputFile::OutputFile(std::string target, std::string temp, int fd,
                       const OutputFileOptions& opts)
    : target_(std::move(target)), temp_(std::move(temp)), fd_(fd), opts_(opts) {}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

Status OutputFile::Commit() {
  if (committed_ || fd_ < 0) return Status::Internal("OutputFile committed twice");
  if (::fchmod(fd_, opts_.mode & 07777) != 0) return Status::FromErrno("chmod " + temp_, errno);
  if (opts_.sync && ::fsync(fd_) != 0) return Status::FromErrno("fsync " + temp_, errno);
  // close() reports write-back errors of some file systems (NFS): check it.
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return Status::FromErrno("close " + temp_, errno);
  RETURN_IF_ERROR(CheckTarget(target_, opts_));
  const unsigned flags = opts_.overwrite ? 0 : RENAME_NOREPLACE;
  if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(), flags) != 0) {
    if (errno == EEXIST) return Status::AlreadyExists(target_ + " appeared while writing it");
    if (errno != EINVAL || flags == 0) return Status::FromErrno("rename to " + target_, errno);
    // A file system without RENAME_NOREPLACE: link() refuses an existing name too.
    if (::link(temp_.c_str(), target_.c_str()) != 0) {
      if (errno == EEXIST) return Status::AlreadyExists(target_ + " appeared while writing it");
      return Status::FromErrno("link to " + target_, errno);
    }
    ::unlink(temp_.c_str());
  }
  committed_ = true;
  if (opts_.sync) RETURN_IF_ERROR(SyncDir(DirOf(target_)));
  return Status::Ok();
}

}  // namespace stack::compose

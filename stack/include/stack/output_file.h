// OutputFile: the one way a command writes a file on the host (export in
// every format and method, fs get, fs extract --tar FILE, blockdev create).
//
// The bytes go to a temporary file ".<name>.stack-tmp-XXXXXX" created with
// O_EXCL and mode 0600 in the target's directory (so the rename stays in one
// file system and nobody reads a half-written secret). Commit() sets the
// final mode, optionally fsyncs the file, renames it over the target and,
// with sync, fsyncs the directory. Until then the target is untouched: a
// failure (NoSpace, a bad passphrase, a kill) leaves the old file as it was,
// or no file. Destroyed without Commit(), the temporary file is unlinked; a
// SIGKILL can leave it behind, under a name nothing else reads or lists
// (spec/composition.md "Host output files"): `rm .*.stack-tmp-*` removes it.
//
// An existing target is refused with AlreadyExists unless overwrite, both at
// Create() and again at Commit() (renameat2 RENAME_NOREPLACE), so a file that
// appears meanwhile is never clobbered. A directory or other non-regular
// target is refused (InvalidArgument) even with overwrite, and so is a
// target that is one of the files the command reads (`inputs`: the pool
// file, a source image), whatever name it goes by: the rename would replace
// it, losing the pool.
//
// Thread-safety: none; one owner. Create() reads the umask (umask(2) has no
// read-only form), so call it before starting other threads that create files.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::compose {

struct OutputFileOptions {
  bool overwrite = false;  // replace an existing regular file (--force)
  bool sync = false;       // Commit() makes file and rename durable (--sync)
  // Final permission bits; with apply_umask they are masked by the umask
  // like open(2)'s mode (0644 -> 0644 under umask 022).
  mode_t mode = 0666;
  bool apply_umask = true;
  // Files the command reads (pool file, source image; non-files such as
  // "rbd:..." are ignored): a target that is one of them (same device and
  // inode) is refused with InvalidArgument, even with overwrite.
  std::vector<std::string> inputs;
};

class OutputFile {
 public:
  // Creates the temporary file next to `target`.
  static Result<std::unique_ptr<OutputFile>> Create(const std::string& target,
                                                    const OutputFileOptions& opts = {});
  ~OutputFile();  // unlinks the temporary file unless committed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // The temporary file, open read-write (valid until Commit or destruction).
  int fd() const { return fd_; }
  // Its path: open it again by name only where an API wants a path.
  const std::string& temp_path() const { return temp_; }
  const std::string& target() const { return target_; }

  // Publishes the file under the target name (see the header comment).
  // REQUIRES: called once; nothing may still write through other handles.
  Status Commit();

 private:
  OutputFile(std::string target, std::string temp, int fd, const OutputFileOptions& opts);
  std::string target_;
  std::string temp_;
  int fd_;
  OutputFileOptions opts_;
  bool committed_ = false;
};

// The temporary name OutputFile uses for `target`'s directory and base name,
// without the random suffix: "<dir>/.<base>.stack-tmp-" (base cut to 200
// bytes, so a 255-byte target name still gets a temporary file).
std::string OutputTempPrefix(const std::string& target);

}  // namespace stack::compose

// RAII holders for libarchive objects and tar path normalisation shared by
// the tar reader (populate) and writer (extract).
// Thread-safety: none.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <string>
#include <vector>

#include "block/status.h"

namespace stack::fsbridge {

struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() {
    if (a) archive_read_free(a);
  }
};
// A libarchive writer onto a file descriptor. Freed without
// archive_write_close (an error stopped the export), it writes nothing
// more: libarchive would otherwise finish the open entry on the way out,
// padding it with zeros up to the size its header declared (gigabytes for
// a hostile size). archive_write_fail instead leaks the output buffers.
class ArchiveWriter {
 public:
  ArchiveWriter() : a(archive_write_new()) {}
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;
  ~ArchiveWriter() {
    stopped_ = true;
    archive_write_free(a);
  }
  // Sends the archive to `fd` (not owned), its last block padded as
  // libarchive's own file and fd writers do. ARCHIVE_OK or an error.
  int OpenFd(int fd) {
    fd_ = fd;
    struct stat st {};
    if (archive_write_get_bytes_in_last_block(a) < 0 && fstat(fd, &st) == 0)
      archive_write_set_bytes_in_last_block(
          a, S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || fd == 1 ? 0 : 1);
    return archive_write_open2(a, this, nullptr, &ArchiveWriter::Write, nullptr, nullptr);
  }
  archive* a;

 private:
  static la_ssize_t Write(archive* ar, void* self, const void* buf, size_t n) {
    auto* w = static_cast<ArchiveWriter*>(self);
    if (w->stopped_) {
      archive_set_error(ar, ECANCELED, "the export stopped");
      return -1;
    }
    const char* p = static_cast<const char*>(buf);
    size_t left = n;
    while (left) {
      const ssize_t k = ::write(w->fd_, p, left);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) {
        archive_set_error(ar, errno, "%s", strerror(errno));
        return -1;
      }
      p += k;
      left -= size_t(k);
    }
    return la_ssize_t(n);
  }
  int fd_ = -1;
  bool stopped_ = false;
};
struct Entry {
  archive_entry* e = archive_entry_new();
  ~Entry() {
    if (e) archive_entry_free(e);
  }
};

// Tar path rules (spec/fsbridge.md): leading '/' and "./" are dropped (the
// archive is confined to the destination), empty and "." components
// removed; any ".." component is rejected with InvalidArgument. Returns
// the components ({} is the destination itself).
Result<std::vector<std::string>> TarPathComponents(const std::string& name);

}  // namespace stack::fsbridge

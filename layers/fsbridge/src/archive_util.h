// RAII holders for libarchive objects and tar path normalisation shared by
// the tar reader (populate) and writer (extract).
// Thread-safety: none.
#pragma once

#include <archive.h>
#include <archive_entry.h>

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
struct ArchiveWriter {
  archive* a = archive_write_new();
  // Failed first: a writer freed while open (an error stopped the export)
  // would finish its current entry, padding it with zeros to the size its
  // header declared. After archive_write_close this changes nothing.
  ~ArchiveWriter() {
    if (a) {
      archive_write_fail(a);
      archive_write_free(a);
    }
  }
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

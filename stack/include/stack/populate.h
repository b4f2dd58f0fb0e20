// Filling a filesystem from a directory tree or a tar stream, with progress.
// Thread-safety: as the Filesystem.
#pragma once

#include <string>

#include "fsbridge/filesystem.h"
#include "stack/progress.h"

namespace stack::compose {

// Total bytes of regular files under a directory (0 for a tarball or
// stdin, whose size is not known up front): the progress total.
uint64_t SourceBytes(const std::string& source);

// Populates `dest` from `source`: a directory, a tarball (any format and
// compression libarchive reads) or "-" for a tar stream on stdin. With a
// progress reporter, file bytes are reported as they are written (the
// total is measured first for a directory, when the reporter is enabled).
Result<fsbridge::PopulateStats> PopulateFrom(fsbridge::Filesystem& fs, const std::string& source,
                                             const std::string& dest,
                                             fsbridge::PopulateOptions opts,
                                             Progress* progress);

}  // namespace stack::compose

// Build: the golden-image pipeline in one call.
//
//   pool (created if missing) -> new volume -> LUKS2 -> ext4 -> populate
//   from a directory or tarball (+ manifest) -> flush -> publish -> snapshot
//
// Atomic publication (stack/publish.h): the volume appears under its name
// only once the filesystem is closed and committed; the snapshot
// <volume>@<snapshot> is taken after that. A failed or killed build leaves
// no visible volume and the pool passes check.
//
// Thread-safety: none (the pool lock keeps other processes out).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fde/luks.h"
#include "fsbridge/types.h"
#include "stack/open_pool.h"
#include "stack/progress.h"

namespace stack::compose {

struct BuildOptions {
  std::string pool_path;
  NewPoolOptions new_pool;         // used only when the pool does not exist yet
  std::string volume;
  uint64_t size_bytes = 0;         // volume size (thin)
  std::string snapshot = "golden"; // snapshot name; empty = none
  std::string source;              // directory, tarball, or "-" (tar on stdin)
  std::string note;
  std::vector<std::string> tags;
  bool encrypt = true;
  // allow-discards on by default: in a thin pool the allocation map shows
  // which blocks are free anyway (spec/security.md D), and without it space
  // freed inside the volume never returns to the pool.
  fde::FormatOptions luks = [] {
    fde::FormatOptions f;
    f.allow_discards = true;
    return f;
  }();
  fsbridge::MkfsOptions mkfs;
  fsbridge::PopulateOptions populate;
  // Shows populate progress (bytes of file data) when enabled; may be null.
  Progress* progress = nullptr;
};

struct BuildReport {
  std::string volume, snapshot;
  bool created_pool = false;
  bool encrypted = false;
  fsbridge::PopulateStats stats;
  fsbridge::DfInfo df;
  double seconds = 0;
};

// REQUIRES: passphrase non-empty when opts.encrypt.
Result<BuildReport> BuildImage(const BuildOptions& opts, const fde::Secret* passphrase);

}  // namespace stack::compose

// Build: the golden-image pipeline in one call.
//
//   pool (created if missing) -> new volume -> LUKS2 -> ext4 -> populate
//   from a directory or tarball (+ manifest) or an OCI image's layers
//   (stack/oci_apply.h) -> flush -> publish -> snapshot
//
// An image's index, manifest and config are read and checked before the
// pool is touched; its digest and runtime config become tags of the volume
// and the snapshot (spec/oci.md "Metadata").
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
  // Directory, tarball, "-" (tar on stdin), or an image reference
  // (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG];
  // stack/oci_image.h).
  std::string source;
  // An image's platform, when its index has several (OS/ARCH[/VARIANT]).
  std::string platform = "linux/amd64";
  // An image is applied layer by layer with a snapshot after each, named
  // by chain id; the build starts from a clone of the deepest existing
  // layer snapshot its layers match (spec/oci.md "Layer snapshots").
  bool layer_snapshots = false;
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

// What an image build applied (BuildOptions::source an image reference).
struct BuildImageInfo {
  std::string digest, image_id;
  size_t layers = 0;
  uint64_t members = 0, skipped_members = 0, skipped_bytes = 0;
  size_t reused_layers = 0;  // taken from a layer snapshot (layer_snapshots)
};

struct BuildReport {
  std::string volume, snapshot;
  std::optional<BuildImageInfo> image;  // set for an image source
  bool created_pool = false;
  bool encrypted = false;
  fsbridge::PopulateStats stats;
  fsbridge::DfInfo df;
  double seconds = 0;
};

// REQUIRES: passphrase non-empty when opts.encrypt.
Result<BuildReport> BuildImage(const BuildOptions& opts, const fde::Secret* passphrase);

}  // namespace stack::compose

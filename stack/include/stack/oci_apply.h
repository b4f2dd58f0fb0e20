// Applying an image's layers to a file system, with the OCI layer rules
// (spec/oci.md "Layers"): whiteouts, opaque directories, later entries
// replacing earlier ones of any type, hard links, owners, modes, times,
// xattrs, device nodes. Member names are resolved inside the image root
// ("../x" and "/x" are "x").
//
// Two passes over the layers. The first reads every member header and
// builds the merged tree in memory (path -> the layer member that supplies
// it), checking each layer's digests as it goes and copying its
// uncompressed tar to an anonymous temporary file in $TMPDIR (default
// /var/tmp); the second reads those back in order and writes only the
// members that survive into the file system, as one tar stream (so a file
// an upper layer deletes or replaces costs no data write, nor a second
// decompression). Nothing is written before every layer passed its checks.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fsbridge/filesystem.h"
#include "stack/oci_image.h"
#include "stack/progress.h"

namespace stack::compose::oci {

struct ApplyReport {
  size_t layers = 0;
  uint64_t members = 0;           // tar members read, whiteouts included
  uint64_t skipped_members = 0;   // members deleted or replaced by a later one
  uint64_t skipped_bytes = 0;     // their regular-file bytes: not written
  fsbridge::PopulateStats stats;  // what was written
};

// Applies every layer of `image` at the root of `fs`. Errors name the
// layer (and the member): Corruption for a bad or tampered layer, NoSpace
// naming the layer and file when the file system fills up. With progress,
// reports file bytes written against the total that survives.
Result<ApplyReport> ApplyImage(ImageSource& image, fsbridge::Filesystem& fs,
                               const fsbridge::PopulateOptions& opts, Progress* progress);

// Applies layer k alone to `fs`, which holds layers 0..k-1 (applied by
// ApplyImage of those layers or by ApplyLayer): its whiteouts and opaque
// directories delete from what is there, entries of another type are
// replaced, then its surviving members are written (two passes over this
// layer only). The result equals ApplyImage of layers 0..k, except that a
// hard link to a file of a lower layer is Corruption here. For per-layer
// snapshots (spec/oci.md "Layer snapshots").
Result<ApplyReport> ApplyLayer(ImageSource& image, size_t k, fsbridge::Filesystem& fs,
                               const fsbridge::PopulateOptions& opts, Progress* progress);

// The chain id of each layer prefix (OCI image-spec config.md):
// chain[0] = diff_id[0], chain[i] = sha256(chain[i-1] + " " + diff_id[i]).
std::vector<std::string> ChainIds(const Image& image);

}  // namespace stack::compose::oci

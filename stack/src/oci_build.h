// Image builds with per-layer snapshots (spec/oci.md "Layer snapshots"):
// a snapshot of the hidden volume after each layer, named and tagged by the
// layer's chain id, and a later build whose first layers have the same
// chain ids starting from a clone of the deepest such snapshot.
// Thread-safety: as the Pool.
#pragma once

#include <string>

#include "fde/luks.h"
#include "pool/pool.h"
#include "stack/build.h"
#include "stack/oci_image.h"

namespace stack::compose {

struct LayerReuse {
  std::string snapshot;  // the snapshot to clone; "" = build from scratch
  size_t layers = 0;     // the image's layers it already holds
};

// The snapshot name a layer prefix gets (within the volume): "oci-" and
// the chain id's first 32 hex digits.
std::string LayerSnapshotName(const std::string& chain_id);

// The deepest layer snapshot in the pool that this build can start from:
// tagged with the chain id of one of the image's layer prefixes, of the
// build's size, encrypted exactly when the build is, and (encrypted) opened
// by the build's passphrase. None: an empty LayerReuse.
Result<LayerReuse> FindLayerSnapshot(VolumeStore& pool, const oci::Image& image,
                                     const BuildOptions& o, const fde::Secret* passphrase);

// Fills hidden volume `tmp` (new, or a clone of reuse.snapshot) with the
// image's layers from reuse.layers on, one at a time, snapshotting it after
// each as tmp@LayerSnapshotName(chain id).
Status FillLayered(VolumeStore& pool, const std::string& tmp, const BuildOptions& o,
                   const fde::Secret* passphrase, oci::ImageSource& image, const LayerReuse& reuse,
                   BuildReport* rep);

}  // namespace stack::compose

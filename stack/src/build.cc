#include "stack/build.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "fsbridge/filesystem.h"
#include "pool/pool.h"
#include "stack/bulk_data.h"
#include "stack/oci_apply.h"
#include "stack/oci_image.h"
#include "stack/populate.h"
#include "oci_build.h"
#include "stack/control.h"
#include "stack/open_pool.h"
#include "stack/publish.h"
#include "stack/sizes.h"

namespace stack::compose {
namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Everything between "volume exists" and "filesystem closed".
Status FillVolume(VolumeStore& pool, const std::string& tmp, const BuildOptions& o,
                  const fde::Secret* passphrase, oci::ImageSource* image, BuildReport* rep) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, pool.OpenVolume(tmp, false));
  if (o.encrypt) {
    ASSIGN_OR_RETURN(auto crypt, fde::Format(std::move(dev), *passphrase, o.luks));
    dev = std::move(crypt);
  }
  // Encryption and the pool work on a second thread while the populate
  // reads and packs the next files (Close flushes it): stack/bulk_data.h.
  dev = BulkWriteDevice(std::move(dev));
  fsbridge::MkfsOptions mkfs = o.mkfs;
  mkfs.fresh_device = true;  // the volume was created by this build
  ASSIGN_OR_RETURN(auto fs, fsbridge::Filesystem::Mkfs(std::move(dev), mkfs));
  if (image) {
    ASSIGN_OR_RETURN(oci::ApplyReport ar, oci::ApplyImage(*image, *fs, o.populate, o.progress));
    rep->stats = ar.stats;
    rep->image = BuildImageInfo{image->image().digest, image->image().config_digest, ar.layers,
                                ar.members, ar.skipped_members, ar.skipped_bytes};
  } else if (!o.source.empty()) {
    ASSIGN_OR_RETURN(rep->stats, PopulateFrom(*fs, o.source, "/", o.populate, o.progress));
  }
  ASSIGN_OR_RETURN(rep->df, fs->Df());
  RETURN_IF_ERROR(fs->Close());
  return Status::Ok();
}

}  // namespace

Result<BuildReport> BuildImage(const BuildOptions& o, const fde::Secret* passphrase) {
  const double t0 = Seconds();
  if (o.encrypt && (!passphrase || passphrase->empty()))
    return Status::InvalidArgument("an encrypted build needs a passphrase");
  if (o.size_bytes == 0) return Status::InvalidArgument("volume size is required (--size)");
  // An image's index, manifest and config are checked before the pool is
  // touched; its layers as they are applied.
  if (o.layer_snapshots && !oci::IsImageReference(o.source))
    return Status::InvalidArgument("--layer-snapshots needs an image (--from oci:...)");
  // Layer snapshots are shared by later builds of other images: a manifest
  // of this build's would be baked into them.
  if (o.layer_snapshots && !o.populate.manifest_path.empty())
    return Status::InvalidArgument("--manifest cannot be used with --layer-snapshots");
  std::unique_ptr<oci::ImageSource> image;
  std::vector<std::string> tags = o.tags;
  if (oci::IsImageReference(o.source)) {
    ASSIGN_OR_RETURN(oci::Platform platform, oci::ParsePlatform(o.platform));
    ASSIGN_OR_RETURN(image, oci::ImageSource::Open(o.source, platform));
    ASSIGN_OR_RETURN(tags, oci::MetadataTags(image->image(), o.tags));
  } else if (!o.source.empty() && o.source != "-" && !std::filesystem::exists(o.source)) {
    return Status::NotFound("source " + o.source + " does not exist");
  }
  BuildReport rep;
  rep.volume = o.volume;
  rep.encrypted = o.encrypt;
  ASSIGN_OR_RETURN(auto pool,
                   OpenOrCreatePool(o.pool_path, o.new_pool, o.size_bytes, &rep.created_pool));
  CreatedPoolUndo undo;  // a failed build leaves no pool it made
  if (rep.created_pool) undo.Arm(o.pool_path);
  // Read-only commands on the pool are answered by this build until it
  // returns (destroyed before `pool`).
  auto server = ServeWhileHolding(pool, o.pool_path);
  RETURN_IF_ERROR(RequireWholeBlocks(o.size_bytes, pool->block_size(), "--size"));
  const pool::EntryMeta meta{o.note, tags};
  const bool layered = image && o.layer_snapshots;
  LayerReuse reuse;
  if (layered) {
    ASSIGN_OR_RETURN(reuse, FindLayerSnapshot(*pool, image->image(), o, passphrase));
  }
  auto make = [&](const std::string& tmp) {
    if (reuse.snapshot.empty()) return pool->CreateVolume(tmp, o.size_bytes, meta);
    return pool->Clone(reuse.snapshot, tmp, meta);
  };
  RETURN_IF_ERROR(PublishEntry(*pool, o.volume, make, [&](const std::string& tmp) {
    RETURN_IF_ERROR(layered ? FillLayered(*pool, tmp, o, passphrase, *image, reuse, &rep)
                            : FillVolume(*pool, tmp, o, passphrase, image.get(), &rep));
    // The snapshot is taken of the hidden volume, so the rename that
    // publishes the volume publishes it too, in the same commit: a build
    // killed at any point leaves both or neither.
    if (o.snapshot.empty()) return Status::Ok();
    return pool->Snapshot(tmp, tmp + "@" + o.snapshot, meta);
  }));
  if (!o.snapshot.empty()) rep.snapshot = o.volume + "@" + o.snapshot;
  rep.seconds = Seconds() - t0;
  undo.Keep();
  return rep;
}

}  // namespace stack::compose

// Layer snapshots (oci_build.h).
#include "oci_build.h"

#include "fsbridge/filesystem.h"
#include "stack/bulk_data.h"
#include "stack/oci_apply.h"
#include "stack/publish.h"

namespace stack::compose {
namespace {

constexpr const char* kChainTag = "oci.chain-id=";

std::string ChainTag(const pool::EntryInfo& e) {
  for (const auto& t : e.tags)
    if (t.rfind(kChainTag, 0) == 0) return t.substr(std::char_traits<char>::length(kChainTag));
  return "";
}

// Whether the build can open the snapshot as it would its own volume.
Result<bool> Usable(VolumeStore& pool, const std::string& name, const BuildOptions& o,
                    const fde::Secret* passphrase) {
  ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(name, true));
  ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*dev));
  if ((kind != fde::ContainerKind::kNone) != o.encrypt) return false;
  if (!o.encrypt) return true;
  Result<int> slot = fde::TestPassphrase(*dev, *passphrase);
  if (slot.ok()) return true;
  if (slot.status().Is(Code::kAuthFailed)) return false;
  return slot.status();
}

}  // namespace

std::string LayerSnapshotName(const std::string& chain_id) {
  const size_t c = chain_id.find(':');
  return "oci-" + chain_id.substr(c == std::string::npos ? 0 : c + 1, 32);
}

Result<LayerReuse> FindLayerSnapshot(VolumeStore& pool, const oci::Image& image,
                                     const BuildOptions& o, const fde::Secret* passphrase) {
  const std::vector<std::string> chains = oci::ChainIds(image);
  ASSIGN_OR_RETURN(std::vector<pool::EntryInfo> entries, pool.List());
  for (size_t k = chains.size(); k-- > 0;) {
    for (const auto& e : entries) {
      if (e.kind != pool::EntryKind::kSnapshot || IsHiddenEntry(e.name) ||
          e.size_bytes != o.size_bytes || ChainTag(e) != chains[k])
        continue;
      ASSIGN_OR_RETURN(bool ok, Usable(pool, e.name, o, passphrase));
      if (ok) return LayerReuse{e.name, k + 1};
    }
  }
  return LayerReuse{};
}

Status FillLayered(VolumeStore& pool, const std::string& tmp, const BuildOptions& o,
                   const fde::Secret* passphrase, oci::ImageSource& image, const LayerReuse& reuse,
                   BuildReport* rep) {
  const oci::Image& img = image.image();
  const std::vector<std::string> chains = oci::ChainIds(img);
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, pool.OpenVolume(tmp, false));
  std::unique_ptr<fsbridge::Filesystem> fs;
  if (reuse.layers == 0) {
    if (o.encrypt) {
      ASSIGN_OR_RETURN(auto crypt, fde::Format(std::move(dev), *passphrase, o.luks));
      dev = std::move(crypt);
    }
    fsbridge::MkfsOptions mkfs = o.mkfs;
    mkfs.fresh_device = true;
    ASSIGN_OR_RETURN(fs, fsbridge::Filesystem::Mkfs(BulkWriteDevice(std::move(dev)), mkfs));
  } else {
    // A clone of the layer snapshot: its LUKS header and file system.
    if (o.encrypt) {
      ASSIGN_OR_RETURN(auto crypt, fde::Open(std::move(dev), *passphrase));
      dev = std::move(crypt);
    }
    ASSIGN_OR_RETURN(fs, fsbridge::Filesystem::Open(BulkWriteDevice(std::move(dev)), true));
  }
  BuildImageInfo info{img.digest, img.config_digest, img.layers.size(), 0, 0, 0};
  info.reused_layers = reuse.layers;
  for (size_t k = reuse.layers; k < img.layers.size(); k++) {
    ASSIGN_OR_RETURN(oci::ApplyReport ar, oci::ApplyLayer(image, k, *fs, o.populate, o.progress));
    info.members += ar.members;
    info.skipped_members += ar.skipped_members;
    info.skipped_bytes += ar.skipped_bytes;
    rep->stats.files += ar.stats.files;
    rep->stats.directories += ar.stats.directories;
    rep->stats.symlinks += ar.stats.symlinks;
    rep->stats.hardlinks += ar.stats.hardlinks;
    rep->stats.specials += ar.stats.specials;
    rep->stats.bytes += ar.stats.bytes;
    if (k + 1 == img.layers.size()) break;  // the last: closed below, snapshot too
    RETURN_IF_ERROR(fs->Close());
    std::unique_ptr<BlockDevice> held = fs->Release();
    const pool::EntryMeta meta{"", {kChainTag + chains[k]}};
    RETURN_IF_ERROR(pool.Snapshot(tmp, tmp + "@" + LayerSnapshotName(chains[k]), meta));
    ASSIGN_OR_RETURN(fs, fsbridge::Filesystem::Open(std::move(held), true));
  }
  ASSIGN_OR_RETURN(rep->df, fs->Df());
  RETURN_IF_ERROR(fs->Close());
  fs.reset();
  if (!chains.empty()) {
    const pool::EntryMeta meta{"", {kChainTag + chains.back()}};
    const std::string last = tmp + "@" + LayerSnapshotName(chains.back());
    // Reusing every layer: the clone is that snapshot's content, and its
    // snapshot is there already under the base volume's name.
    RETURN_IF_ERROR(pool.Snapshot(tmp, last, meta));
  }
  rep->image = info;
  return Status::Ok();
}

}  // namespace stack::compose

// CloneEntry (see stack/clone.h).
#include "stack/clone.h"

#include "stack/address.h"
#include "stack/publish.h"
#include "stack/sizes.h"

namespace stack::compose {

Result<CloneReport> CloneEntry(VolumeStore& pool, const CloneRequest& req) {
  ASSIGN_OR_RETURN(auto src, ParseEntryAddress(req.source));
  ASSIGN_OR_RETURN(auto dst, ParseEntryAddress(req.name));
  if (dst.is_snapshot()) return Status::InvalidArgument("a clone is a volume: no '@' in its name");
  if (req.new_passphrase && !req.source_passphrase)
    return Status::InvalidArgument("a new passphrase needs the source's passphrase too");
  CloneReport rep;
  ASSIGN_OR_RETURN(rep.source, pool.Lookup(src.name()));
  if (req.size_bytes) {
    RETURN_IF_ERROR(RequireWholeBlocks(req.size_bytes, pool.block_size(), "--size"));
    if (req.size_bytes < rep.source.size_bytes)
      return Status::InvalidArgument("a clone can grow, not shrink (source is " +
                                     std::to_string(rep.source.size_bytes) + " bytes)");
  }
  // Secrets are asked for only once the header says they can be used, and
  // checked against the source before the clone exists.
  std::optional<fde::Secret> old_pass, new_pass;
  const bool grows = req.size_bytes > rep.source.size_bytes;
  if (req.new_passphrase || (req.source_passphrase && grows && req.grow_fs)) {
    ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(src.name(), true));
    ASSIGN_OR_RETURN(auto kind, fde::Probe(*dev));
    if (kind == fde::ContainerKind::kNone && req.new_passphrase)
      return Status::InvalidArgument(src.name() + " is not encrypted: --new-key-file needs LUKS");
    if (kind != fde::ContainerKind::kNone) {  // a plain source needs no passphrase to grow
      RETURN_IF_ERROR(fde::CheckOpenable(*dev));
      ASSIGN_OR_RETURN(old_pass, ObtainSecret(*req.source_passphrase));
      RETURN_IF_ERROR(fde::TestPassphrase(*dev, *old_pass).status());
    }
    if (req.new_passphrase) {
      ASSIGN_OR_RETURN(new_pass, ObtainSecret(*req.new_passphrase));
    }
  }
  // The file system is opened with the source's keyslots, still in the
  // clone's header when it grows.
  const SecretGetter old_getter = [&]() { return old_pass->Clone(); };
  pool::EntryMeta meta = req.meta;
  if (meta.note.empty()) meta.note = "clone of " + src.name();
  RETURN_IF_ERROR(PublishEntry(
      pool, dst.name(),
      [&](const std::string& hidden) { return pool.Clone(src.name(), hidden, meta); },
      [&](const std::string& hidden) -> Status {
        if (grows) {
          ASSIGN_OR_RETURN(rep.growth, GrowVolume(pool, hidden, req.size_bytes, req.grow_fs,
                                                  old_pass ? &old_getter : nullptr));
        }
        if (new_pass) {
          ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(hidden, false));
          RETURN_IF_ERROR(fde::ReplaceKeyslots(*dev, *old_pass, *new_pass, req.kdf));
          RETURN_IF_ERROR(dev->Flush());
        }
        if (req.read_only) RETURN_IF_ERROR(pool.SetReadOnly(hidden, true));
        return Status::Ok();
      }));
  ASSIGN_OR_RETURN(rep.clone, pool.Stat(dst.name()));
  rep.own_passphrase = new_pass.has_value();
  return rep;
}

}  // namespace stack::compose

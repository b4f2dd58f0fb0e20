// Server: opens the pool and every export before serving (see server.h).
#include "server.h"

#include <unistd.h>

#include <algorithm>

#include "fde/crypt_device.h"
#include "stack/open_pool.h"
#include "stack/unlock.h"

namespace stack::nbd {
namespace {

using compose::PoolAccess;

// How Delete/Rollback/Rename of a served entry name its user (Busy). No
// pid: devices opened before nbdkit forks and after would disagree; the
// pool's holder note names the serving process.
std::string UserLabel(const std::string& export_name) {
  return "NBD export '" + export_name + "' (stack serve)";
}

// The first device of a plain-view export, and a factory for more: each
// further device is a CryptDevice with the same geometry and a copy of the
// volume key over a fresh volume device, so no KDF runs after startup.
Result<std::unique_ptr<Export>> OpenPlain(VolumeStore& pool, ExportParams params,
                                          const std::optional<fde::Secret>& pass) {
  const std::string name = params.name;
  const bool ro = params.read_only;
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> vol, pool.OpenVolume(name, ro, UserLabel(name)));
  compose::SecretGetter get = [&]() -> Result<fde::Secret> {
    if (!pass) {
      return Status::InvalidArgument("'" + name +
                                     "' is encrypted: give its passphrase (keyfile=, keyfd= or "
                                     "password=) or serve the stored view");
    }
    return pass->Clone();
  };
  auto unlocked = compose::Unlock(std::move(vol), get, !ro);
  if (!unlocked.ok()) return unlocked.status().WithContext("'" + name + "'");
  std::unique_ptr<BlockDevice> first = std::move(unlocked->device);
  auto* crypt = dynamic_cast<fde::CryptDevice*>(first.get());
  if (!crypt) {  // not encrypted: the volume is its own plain view
    params.can_trim = first->capabilities().discard_supported;
    DeviceFactory more = [&pool, name, ro] { return pool.OpenVolume(name, ro, UserLabel(name)); };
    return std::make_unique<Export>(std::move(params), std::move(first), std::move(more));
  }
  fde::CryptDevice::Params cp;
  cp.kind = crypt->kind();
  cp.data_offset = crypt->data_offset();
  cp.data_size = crypt->size_bytes();
  cp.sector_size = crypt->block_size();
  cp.iv_tweak = crypt->iv_tweak();
  cp.allow_discards = crypt->allow_discards();
  cp.read_only = ro || crypt->capabilities().read_only;
  cp.keyslot = crypt->keyslot();
  ASSIGN_OR_RETURN(fde::Secret key, crypt->CopyVolumeKey());
  auto shared_key = std::make_shared<fde::Secret>(std::move(key));
  params.can_trim = crypt->allow_discards();
  params.lower_block_size = pool.block_size();
  params.read_only = cp.read_only;
  DeviceFactory more = [&pool, name, cp, shared_key]() -> Result<std::unique_ptr<BlockDevice>> {
    ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> v, pool.OpenVolume(name, cp.read_only, UserLabel(name)));
    ASSIGN_OR_RETURN(fde::Secret k, shared_key->Clone());
    ASSIGN_OR_RETURN(std::unique_ptr<fde::CryptDevice> c,
                     fde::CryptDevice::Create(std::move(v), std::move(k), cp));
    return std::unique_ptr<BlockDevice>(std::move(c));
  };
  return std::make_unique<Export>(std::move(params), std::move(first), std::move(more));
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Open(ServerConfig config) {
  if (config.pool_path.empty()) return Status::InvalidArgument("no pool given (pool=PATH)");
  if (config.exports.empty()) return Status::InvalidArgument("no export given (export=NAME)");
  for (size_t i = 0; i < config.exports.size(); ++i) {
    const std::string& n = config.exports[i];
    if (std::find(config.exports.begin(), config.exports.begin() + i, n) !=
        config.exports.begin() + i) {
      return Status::InvalidArgument("export '" + n + "' given twice");
    }
  }
  // Which entries are read-only decides how the pool is opened: look first
  // with a read-only open (never writes), then open for good.
  std::vector<pool::EntryInfo> infos;
  {
    ASSIGN_OR_RETURN(auto probe, compose::OpenPool(config.pool_path, PoolAccess::kReadOnly));
    for (const std::string& n : config.exports) {
      auto info = probe->Stat(n);
      if (!info.ok()) return info.status().WithContext("export '" + n + "'");
      infos.push_back(std::move(*info));
    }
  }
  const bool writable = std::any_of(infos.begin(), infos.end(), [](const pool::EntryInfo& e) {
    return !e.read_only && e.kind != pool::EntryKind::kSnapshot;
  });
  std::unique_ptr<Server> s(new Server());
  s->view_ = config.view;
  s->writable_ = writable;
  s->pool_path_ = config.pool_path;
  // Clients decide when data must be durable (flush, FUA); the kernel's
  // writeback batches the rest (PoolOpenOptions::write_behind).
  pool::PoolOpenOptions open_options;
  open_options.write_behind = false;
  ASSIGN_OR_RETURN(s->pool_,
                   compose::OpenPool(config.pool_path,
                                     writable ? PoolAccess::kWritable : PoolAccess::kReadOnly,
                                     open_options));
  for (const std::string& n : config.exports) {
    // Stat again: the entry may have changed between the two opens.
    ASSIGN_OR_RETURN(pool::EntryInfo e, s->pool_->Stat(n));
    ExportParams p;
    p.name = n;
    p.read_only = !writable || e.read_only || e.kind == pool::EntryKind::kSnapshot;
    std::unique_ptr<Export> ex;
    if (config.view == View::kStored) {
      ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> first, s->pool_->OpenVolume(n, p.read_only, UserLabel(n)));
      p.can_trim = first->capabilities().discard_supported;
      VolumeStore* pool = s->pool_.get();
      const bool ro = p.read_only;
      DeviceFactory more = [pool, n, ro] { return pool->OpenVolume(n, ro, UserLabel(n)); };
      ex = std::make_unique<Export>(std::move(p), std::move(first), std::move(more));
    } else {
      ASSIGN_OR_RETURN(ex, OpenPlain(*s->pool_, std::move(p), config.passphrase));
    }
    s->exports_.push_back(std::move(ex));
    s->names_.push_back(n);
  }
  return s;
}

Server::~Server() {
  // No forwarded command may run on the pool below; devices before the pool
  // they point into.
  control_.reset();
  exports_.clear();
}

void Server::StartControl() {
  if (!writable_ || control_) return;
  std::shared_ptr<pool::Pool> file_pool = pool_->file_pool();
  if (!file_pool) return;  // only a pool file has a control socket
  file_pool->RefreshLockNote();  // after nbdkit's fork: the note names this process
  compose::ControlOptions o;
  o.policy = compose::ControlPolicy::kAll;
  o.holder = "stack serve (pid " + std::to_string(::getpid()) + ")";
  for (const auto& e : exports_)
    if (!e->read_only()) o.busy_entries.push_back(e->name());
  auto c = compose::ControlServer::Start(file_pool, pool_path_, std::move(o));
  if (c.ok()) control_ = std::move(*c);
}

void Server::StopControl() { control_.reset(); }

Export* Server::Find(const std::string& name) {
  for (auto& e : exports_) {
    if (e->name() == name) return e.get();
  }
  return nullptr;
}

Status Server::Commit() { return writable_ ? pool_->Commit() : Status::Ok(); }

}  // namespace stack::nbd

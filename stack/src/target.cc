#include "stack/target.h"

#include "block/file_device.h"
#include "pool/pool.h"
#include "stack/address.h"
#include "stack/control.h"
#include "stack/open_pool.h"
#include "stack/volume_store.h"

namespace stack::compose {

Target::~Target() {
  server_.reset();  // no forwarded command runs while the chain goes
  device_.reset();  // before the pool it lives in
}

Result<std::unique_ptr<Target>> Target::Open(const TargetSpec& spec) {
  const bool has_pool = !spec.pool_path.empty();
  const bool has_image = !spec.image_path.empty();
  if (has_pool == has_image) {
    return Status::InvalidArgument(
        "name a target: --pool FILE with VOLUME[@SNAPSHOT] (or $STACK_POOL), or --image FILE");
  }
  std::unique_ptr<Target> t(new Target());
  t->writable_ = spec.writable;
  if (has_image) {
    FileDeviceOptions o;
    o.block_size = 512;  // any image made of whole sectors
    o.read_only = !spec.writable;
    o.lock = spec.writable;
    ASSIGN_OR_RETURN(auto dev, FileDevice::Open(spec.image_path, o));
    t->describe_ = "image " + spec.image_path;
    t->device_ = std::move(dev);
    return t;
  }
  ASSIGN_OR_RETURN(EntryAddress addr, ParseEntryAddress(spec.entry));
  if (addr.is_snapshot() && spec.writable) {
    return Status::ReadOnly("snapshot " + addr.name() +
                            " is read-only: clone it (stack clone) to change it");
  }
  pool::PoolOpenOptions po;
  if (spec.cache_bytes) po.cache_bytes = spec.cache_bytes;
  const PoolAccess access = spec.writable ? PoolAccess::kWritable : PoolAccess::kReadOnly;
  // Inside a forwarded command: the holder's pool, unless it is writing this entry.
  ASSIGN_OR_RETURN(std::shared_ptr<pool::Pool> held,
                   HeldPoolFor(spec.pool_path, access, addr.name()));
  if (held) {
    t->pool_ = std::make_shared<PoolVolumeStore>(std::move(held), spec.pool_path);
  } else {
    ASSIGN_OR_RETURN(t->pool_, OpenPool(spec.pool_path, access, po));
    if (spec.writable) t->server_ = ServeWhileHolding(t->pool_, spec.pool_path, {addr.name()});
  }
  ASSIGN_OR_RETURN(t->device_, t->pool_->OpenVolume(addr.name(), !spec.writable));
  t->describe_ = addr.is_snapshot() ? "snapshot " + addr.name() : "volume " + addr.name();
  return t;
}

Status Target::Finish() {
  server_.reset();
  device_.reset();
  if (pool_ && writable_) return pool_->Commit();
  return Status::Ok();
}

}  // namespace stack::compose

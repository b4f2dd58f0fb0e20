// OpenPool (see stack/open_pool.h).
#include "stack/open_pool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "stack/control.h"
#include "stack/publish.h"
#include "stack/rbd_volume_store.h"
#include "stack/sizes.h"

namespace stack::compose {
bool IsRbdPool(const std::string& path) { return path.rfind("rbd:", 0) == 0; }

Result<std::shared_ptr<VolumeStore>> OpenPool(const std::string& path, PoolAccess access,
                                              pool::PoolOpenOptions options, int* removed_stale,
                                              const std::string& entry) {
  if (path.empty()) return Status::InvalidArgument("name the pool: --pool FILE (or set STACK_POOL)");
  if (removed_stale) *removed_stale = 0;
  std::shared_ptr<VolumeStore> store;
  if (IsRbdPool(path)) {
    ASSIGN_OR_RETURN(store, OpenRbdStore(path, access));
  } else {
    ASSIGN_OR_RETURN(std::shared_ptr<pool::Pool> held, HeldPoolFor(path, access, entry));
    if (held) return std::shared_ptr<VolumeStore>(std::make_shared<PoolVolumeStore>(held, path));
    options.read_only = access == PoolAccess::kReadOnly;
    ASSIGN_OR_RETURN(auto pool, pool::Pool::Open(path, options));
    store = std::make_shared<PoolVolumeStore>(std::shared_ptr<pool::Pool>(std::move(pool)), path);
  }
  int removed = 0;
  if (access == PoolAccess::kWritable) {
    ASSIGN_OR_RETURN(removed, CleanupStaleBuilds(*store));
  }
  if (removed_stale) *removed_stale = removed;
  return store;
}

Result<std::shared_ptr<VolumeStore>> OpenOrCreatePool(const std::string& path,
                                                      const NewPoolOptions& options,
                                                      uint64_t volume_bytes, bool* created) {
  *created = false;
  if (path.empty()) return Status::InvalidArgument("name the pool: --pool FILE (or set STACK_POOL)");
  if (IsRbdPool(path)) {
    ASSIGN_OR_RETURN(auto store, OpenPool(path, PoolAccess::kWritable));
    if (volume_bytes) RETURN_IF_ERROR(RequireWholeBlocks(volume_bytes, store->block_size(), "--size"));
    return store;
  }
  std::error_code ec;
  if (std::filesystem::exists(path, ec) || ec) return OpenPool(path, PoolAccess::kWritable);
  pool::PoolCreateOptions c;
  if (options.block_size) c.block_size = options.block_size;
  if (options.size_bytes) c.size_bytes = options.size_bytes;
  // One size rule (spec/composition.md "Sizes"): a maximum below the pool's
  // size is refused, never raised; without a size, the pool starts at the
  // smaller of the default and the maximum.
  if (options.max_bytes) {
    if (options.size_bytes && options.max_bytes < options.size_bytes)
      return Status::InvalidArgument("--pool-max-size " + std::to_string(options.max_bytes) +
                                     " is below the new pool's size " +
                                     std::to_string(options.size_bytes));
    if (!options.size_bytes) c.size_bytes = std::min(c.size_bytes, options.max_bytes);
    c.max_bytes = options.max_bytes;
  }
  // Sizes are checked before the pool file exists: a refused command leaves nothing.
  if (volume_bytes) RETURN_IF_ERROR(RequireWholeBlocks(volume_bytes, c.block_size, "--size"));
  if (c.max_bytes) RETURN_IF_ERROR(RequireWholeBlocks(c.max_bytes, c.block_size, "--pool-max-size"));
  ASSIGN_OR_RETURN(auto pool, pool::Pool::Create(path, c));
  *created = true;
  return std::shared_ptr<VolumeStore>(
      std::make_shared<PoolVolumeStore>(std::shared_ptr<pool::Pool>(std::move(pool)), path));
}

void CreatedPoolUndo::Arm(const std::string& path) {
  struct stat st {};
  if (IsRbdPool(path) || ::lstat(path.c_str(), &st) != 0) return;
  path_ = path;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
}

CreatedPoolUndo::~CreatedPoolUndo() {
  struct stat st {};
  if (path_.empty() || ::lstat(path_.c_str(), &st) != 0) return;
  if (st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
}

}  // namespace stack::compose

// OpenPool (see stack/open_pool.h).
#include "stack/open_pool.h"

#include "stack/control.h"
#include "stack/publish.h"

namespace stack::compose {

Result<std::shared_ptr<pool::Pool>> OpenPool(const std::string& path, PoolAccess access,
                                             pool::PoolOpenOptions options, int* removed_stale) {
  if (path.empty()) return Status::InvalidArgument("name the pool: --pool FILE (or set STACK_POOL)");
  if (removed_stale) *removed_stale = 0;
  ASSIGN_OR_RETURN(std::shared_ptr<pool::Pool> held, HeldPoolFor(path, access));
  if (held) return held;
  options.read_only = access == PoolAccess::kReadOnly;
  ASSIGN_OR_RETURN(auto pool, pool::Pool::Open(path, options));
  int removed = 0;
  if (access == PoolAccess::kWritable) {
    ASSIGN_OR_RETURN(removed, CleanupStaleBuilds(*pool));
  }
  if (removed_stale) *removed_stale = removed;
  return std::shared_ptr<pool::Pool>(std::move(pool));
}

}  // namespace stack::compose

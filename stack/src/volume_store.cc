// RequireFilePool (see stack/volume_store.h).
#include "stack/volume_store.h"

namespace stack {

Result<std::shared_ptr<pool::Pool>> RequireFilePool(VolumeStore& store, const std::string& what) {
  if (auto p = store.file_pool()) return p;
  return Status::Unsupported(what + " is not available on " + store.describe() +
                             " (a pool file only)");
}

}  // namespace stack

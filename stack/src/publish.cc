#include "stack/publish.h"

#include <algorithm>

namespace stack::compose {

Result<int> CleanupStaleBuilds(pool::Pool& pool) {
  ASSIGN_OR_RETURN(auto names, pool.Names());
  int n = 0;
  for (auto& name : names) {
    if (IsHiddenBuild(name)) {
      RETURN_IF_ERROR(pool.Delete(name));
      ++n;
    }
  }
  if (n) RETURN_IF_ERROR(pool.Commit());
  return n;
}

Status PublishVolume(pool::Pool& pool, const std::string& name, uint64_t size_bytes,
                     const pool::EntryMeta& meta,
                     const std::function<Status(const std::string& hidden_name)>& fill) {
  ASSIGN_OR_RETURN(auto names, pool.Names());
  if (std::find(names.begin(), names.end(), name) != names.end())
    return Status::AlreadyExists("volume " + name + " already exists");
  const std::string hidden = std::string(kBuildPrefix) + name;
  RETURN_IF_ERROR(pool.CreateVolume(hidden, size_bytes, meta));
  Status st = fill(hidden);
  if (st.ok()) st = pool.Commit();
  if (st.ok()) st = pool.Rename(hidden, name);  // commits
  if (!st.ok()) {
    (void)pool.Delete(hidden);  // best effort; a leftover goes at the next open
    (void)pool.Commit();
  }
  return st;
}

}  // namespace stack::compose

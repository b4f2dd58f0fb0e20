#include "stack/publish.h"

#include <algorithm>

namespace stack::compose {

Status RefuseHiddenEntry(const std::string& name) {
  const std::string volume = name.substr(0, name.find('@'));
  if (!IsHiddenEntry(volume)) return Status::Ok();
  if (IsHiddenBuild(volume))
    return Status::InvalidArgument("'" + name +
                                   "' is an unfinished build (hidden): the next writable open "
                                   "of the pool removes it");
  const std::string target = volume.substr(std::string(kReceivePrefix).size());
  return Status::InvalidArgument("'" + name + "' is a partial receive into '" + target +
                                 "' (hidden): stack receive --abort " + target + " drops it");
}

Result<int> CleanupStaleBuilds(VolumeStore& pool) {
  // The pool counts hidden entries: with none (the usual case) this reads
  // nothing, so opening for writing costs the same with 10 or 10^5 entries.
  ASSIGN_OR_RETURN(auto names, pool.HiddenNames());
  int n = 0;
  for (auto& name : names) {
    if (IsHiddenBuild(name)) {
      Status st = pool.Delete(name);
      // A store without one pool-wide writer (RBD, spec/ceph.md) can hold a
      // build another live process is still making: its image is Busy
      // (locked or watched) and stays; or another writer removed it (or
      // published it) first: NotFound. An image under that reserved name
      // that stack did not make stays: ReadOnly. A pool file says none of
      // these here.
      if (st.Is(Code::kBusy) || st.Is(Code::kNotFound) || st.Is(Code::kReadOnly)) continue;
      RETURN_IF_ERROR(st);
      ++n;
    }
  }
  if (n) RETURN_IF_ERROR(pool.Commit());
  return n;
}

Status PublishEntry(VolumeStore& pool, const std::string& name,
                    const std::function<Status(const std::string& hidden_name)>& make,
                    const std::function<Status(const std::string& hidden_name)>& fill) {
  // One name lookup, not a listing.
  auto existing = pool.Lookup(name);
  if (existing.ok()) return Status::AlreadyExists("volume " + name + " already exists");
  if (existing.status().code() != Code::kNotFound) return existing.status();
  const std::string hidden = std::string(kBuildPrefix) + name;
  if (Status m = make(hidden); !m.ok()) {
    // Only a store without one pool-wide writer (RBD) gets here: the
    // cleanup at open left a build of the same name that a live client is
    // making, or a killed one's whose watch has not timed out yet.
    if (m.Is(Code::kAlreadyExists))
      return Status::Busy("another build of " + name + " is in progress in " +
                          pool.describe() + " (or one was killed moments ago: retry once "
                          "Ceph has timed out its client)");
    return m;
  }
  Status st = fill(hidden);
  if (st.ok()) st = pool.Commit();
  if (st.ok()) st = pool.Rename(hidden, name);  // commits
  if (!st.ok()) {
    // Best effort: the hidden volume and any snapshot fill took of it; a
    // leftover goes at the next writable open (CleanupStaleBuilds).
    if (auto hidden_names = pool.HiddenNames(); hidden_names.ok()) {
      for (auto& n : *hidden_names)
        if (n.rfind(hidden + "@", 0) == 0) (void)pool.Delete(n);
    }
    (void)pool.Delete(hidden);
    (void)pool.Commit();
  }
  return st;
}

Status PublishVolume(VolumeStore& pool, const std::string& name, uint64_t size_bytes,
                     const pool::EntryMeta& meta,
                     const std::function<Status(const std::string& hidden_name)>& fill) {
  return PublishEntry(
      pool, name,
      [&](const std::string& hidden) { return pool.CreateVolume(hidden, size_bytes, meta); }, fill);
}

}  // namespace stack::compose

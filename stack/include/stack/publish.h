// Atomic publication of new volumes (build, import, clone, receive).
//
// A new volume is made under a hidden name ".build-<name>", filled, the pool
// committed, and only then renamed to <name>. A failure deletes the hidden
// volume; a killed process leaves it, and the next writer removes every
// hidden volume (CleanupStaleBuilds): only one writer can hold the pool, so
// such an entry is always stale. Listings never show hidden volumes.
//
// Thread-safety: as the store.
#pragma once

#include <functional>
#include <string>

#include "block/status.h"
#include "pool/pool.h"
#include "stack/volume_store.h"

namespace stack::compose {

inline constexpr const char* kBuildPrefix = ".build-";
// Partial receives (stack/send.h): hidden too, but kept across opens for a
// resume, so CleanupStaleBuilds leaves them.
inline constexpr const char* kReceivePrefix = ".recv-";

// True for the hidden names of unfinished builds and imports.
inline bool IsHiddenBuild(const std::string& name) { return name.rfind(kBuildPrefix, 0) == 0; }
// True for every name listings hide: unfinished builds and partial receives.
inline bool IsHiddenEntry(const std::string& name) {
  return IsHiddenBuild(name) || name.rfind(kReceivePrefix, 0) == 0;
}

// For commands that take an entry by name (volume rm, rename, set, resize,
// flatten): InvalidArgument saying what `name` is when it, or its volume part
// (before '@'), is hidden, and how it goes away; OK otherwise. Hidden
// entries belong to an unfinished operation: renaming `.recv-V` would
// publish an unverified volume, a new note would replace its resume token.
// Only these prefixes: a merely odd name an older version let in (`V@-x`)
// stays operable, so nothing becomes undeletable.
Status RefuseHiddenEntry(const std::string& name);

// Deletes hidden volumes left by killed builds. Returns how many.
Result<int> CleanupStaleBuilds(VolumeStore& pool);

// Publishes volume `name` atomically: make(hidden_name) creates it under the
// hidden name, fill(hidden_name) writes it, the pool commits, and only then
// is it renamed to `name`. Snapshots fill takes of the hidden volume
// (`hidden_name@S`) are renamed with it in that one commit. AlreadyExists
// (before any change) if `name` is taken; any error from make, fill or the
// pool deletes the hidden volume and its snapshots and is returned.
Status PublishEntry(VolumeStore& pool, const std::string& name,
                    const std::function<Status(const std::string& hidden_name)>& make,
                    const std::function<Status(const std::string& hidden_name)>& fill);

// PublishEntry of a new empty volume (size_bytes, meta).
Status PublishVolume(VolumeStore& pool, const std::string& name, uint64_t size_bytes,
                     const pool::EntryMeta& meta,
                     const std::function<Status(const std::string& hidden_name)>& fill);

}  // namespace stack::compose

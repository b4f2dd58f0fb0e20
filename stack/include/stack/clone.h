// Clone with overrides, as one atomic publication (spec/composition.md
// "Atomic publication"): the clone is made under a hidden name, grown,
// given its own passphrase and marked read-only there, committed, and only
// then renamed to its public name. A refused or killed clone leaves nothing
// visible: never a clone that opens with the source's passphrase when a new
// one was asked for.
//
// Thread-safety: as the Pool.
#pragma once

#include <optional>
#include <string>

#include "block/status.h"
#include "fde/luks.h"
#include "pool/pool.h"
#include "stack/volume_store.h"
#include "stack/secrets.h"

namespace stack::compose {

struct CloneRequest {
  std::string source;       // "vol" or "vol@snap"
  std::string name;         // the new volume
  pool::EntryMeta meta;     // note defaults to "clone of <source>"
  uint64_t size_bytes = 0;  // 0: the source's size; else whole blocks, >= the source's
  bool read_only = false;
  // A passphrase of its own (keyslots replaced; the volume key stays the
  // source's): both set, or neither.
  std::optional<SecretSource> source_passphrase, new_passphrase;
  fde::KdfParams kdf;
};

struct CloneReport {
  pool::EntryInfo source, clone;
  bool own_passphrase = false;
};

// Checks everything that can be checked first (names, sizes, that the source
// is a LUKS container this build can open, before any passphrase is asked
// for, and that the passphrase opens it), then publishes the clone.
Result<CloneReport> CloneEntry(VolumeStore& pool, const CloneRequest& req);

}  // namespace stack::compose

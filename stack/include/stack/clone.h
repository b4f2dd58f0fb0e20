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
#include "stack/resize.h"
#include "stack/volume_store.h"
#include "stack/secrets.h"

namespace stack::compose {

struct CloneRequest {
  std::string source;       // "vol" or "vol@snap"
  std::string name;         // the new volume
  pool::EntryMeta meta;     // note defaults to "clone of <source>"
  uint64_t size_bytes = 0;  // 0: the source's size; else whole blocks, >= the source's
  bool read_only = false;
  // A clone grown by size_bytes has the ext4 it holds grown to fill it
  // (GrowVolume), unless grow_fs is false. An encrypted one needs
  // source_passphrase for that; without it only the volume grows
  // (CloneReport::growth.fs_note says so).
  bool grow_fs = true;
  // The source's passphrase: to give the clone its own (new_passphrase:
  // keyslots replaced and a new LUKS2 UUID; the volume key stays the
  // source's), and to grow the file system inside. new_passphrase needs it.
  std::optional<SecretSource> source_passphrase, new_passphrase;
  fde::KdfParams kdf;
};

struct CloneReport {
  pool::EntryInfo source, clone;
  bool own_passphrase = false;
  std::optional<GrowReport> growth;  // when the clone was grown
};

// Checks everything that can be checked first (names, sizes, that the source
// is a LUKS container this build can open, before any passphrase is asked
// for, and that the passphrase opens it), then publishes the clone.
Result<CloneReport> CloneEntry(VolumeStore& pool, const CloneRequest& req);

}  // namespace stack::compose

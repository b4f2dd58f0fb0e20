// The one way every command opens its volume store (spec/composition.md
// "Opening a pool"): `rbd:CEPHPOOL[/NAMESPACE]` names a Ceph RBD pool
// (spec/ceph.md), anything else a pool file. New front ends (a server)
// open stores here too, so the rules below hold for all of them:
//   - a read-only open never writes;
//   - a writable open removes the hidden entries that killed builds,
//     imports and clones left (CleanupStaleBuilds) before returning: only
//     one writer can hold a pool, so such an entry is always stale;
//   - inside a command forwarded to the process holding the pool
//     (stack/control.h) the held pool is returned, shared, after the
//     holder's policy allowed `access` (Busy otherwise); nothing is opened
//     or cleaned up (the holder's own hidden entry is not stale).
//
// Thread-safety: a free function; the store it returns is as its class says.
#pragma once

#include <memory>
#include <string>

#include "block/status.h"
#include "pool/pool.h"
#include "stack/volume_store.h"

namespace stack::compose {

enum class PoolAccess { kReadOnly, kWritable };

// True when `path` names an RBD pool (`rbd:...`), not a pool file.
bool IsRbdPool(const std::string& path);

// Opens `path`. For a pool file `options.read_only` is set from `access`;
// the rest (cache size, accept_lost_generation) is the caller's. When `removed_stale` is
// given it receives how many stale hidden entries a writable open removed.
// `entry` names the entry a command will change when that is one: inside a
// forwarded command, Busy if the holder is writing it (an NBD export).
Result<std::shared_ptr<VolumeStore>> OpenPool(const std::string& path, PoolAccess access,
                                              pool::PoolOpenOptions options = {},
                                              int* removed_stale = nullptr,
                                              const std::string& entry = {});

// How a command that creates its pool on demand (build, import) makes it.
struct NewPoolOptions {
  uint32_t block_size = 0;  // 0 = pool default
  uint64_t size_bytes = 0;  // initial size; 0 = pool default
  uint64_t max_bytes = 0;   // grows on demand up to this; 0 = pool default
};

// The one rule for commands that write a new volume into a pool: `path`
// is opened writable (OpenPool) when a file is there (or it names an RBD
// pool, which is never created here), else created with `options`. `volume_bytes` (0: none) is checked to be whole blocks of the
// new pool before the file is made, so a refused command leaves nothing.
// `*created` says which happened.
Result<std::shared_ptr<VolumeStore>> OpenOrCreatePool(const std::string& path,
                                                      const NewPoolOptions& options,
                                                      uint64_t volume_bytes, bool* created);

// Removes the pool file a command created (OpenOrCreatePool, `*created`)
// when the command fails, so the retry meets neither AlreadyExists nor an
// empty pool. Declare it after the store it guards: destroyed first, it
// unlinks the file while the command still holds the pool's lock (no other
// writer can have used it), and only while the path still names the file
// that was created (same device and inode).
class CreatedPoolUndo {
 public:
  CreatedPoolUndo() = default;
  ~CreatedPoolUndo();
  CreatedPoolUndo(const CreatedPoolUndo&) = delete;
  CreatedPoolUndo& operator=(const CreatedPoolUndo&) = delete;
  // Arms the undo for the pool file at `path` (does nothing for an RBD pool).
  void Arm(const std::string& path);
  // The command succeeded: the pool stays.
  void Keep() { path_.clear(); }

 private:
  std::string path_;
  uint64_t dev_ = 0, ino_ = 0;
};

}  // namespace stack::compose

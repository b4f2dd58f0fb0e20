// Pool: a crash-safe copy-on-write block pool in one backing store, holding
// thin volumes, O(1) snapshots and clones (spec/pool-format.md).
//
// Names form one flat namespace: a volume is `name`, a snapshot of volume
// V named S is the entry `V@S` (always read-only). Names use
// [A-Za-z0-9._:+-], at most 255 bytes, at most one '@'. Clones are
// ordinary volumes. Provenance (parent uuid) is recorded, never enforced:
// any entry can be deleted in any order.
//
// Durability: volume writes become durable at the next commit. Commit runs
// on Commit(), on any volume device's Flush(), and inside Snapshot, Clone,
// Rollback, Delete, Rename, Resize, SetReadOnly, SetMeta, CreateVolume and
// Grow; the pool may also commit on its own at a request boundary to bound
// memory. After a crash the pool opens at the last commit. If an I/O or
// corruption error interrupts a mutating call, the pool abandons the
// running transaction and reloads the last commit (unflushed writes are
// lost, as in a crash).
//
// Space: a request that would not fit fails with NoSpace before changing
// anything. Blocks for a commit's metadata are always held in reserve, so
// Commit and Delete never fail for lack of space; Snapshot and Clone are
// refused (NoSpace) when free space falls below the reserve threshold.
//
// Superblock damage: open recovers from a commit torn by a crash on its
// own, opens a generation from its intact copy when the other is damaged,
// and refuses (Corruption) when a committed generation may be lost, unless
// PoolOpenOptions::accept_lost_generation. Every damaged or torn copy is
// reported: open_warnings(), the warning sink, and Check().
//
// Locking: Create/Open take an exclusive lock on the store (shared when
// read-only); another opener gets Busy naming the holder.
//
// Thread-safety: every method (and every volume device) may be called
// from any thread; calls are serialised by one mutex, except that a read
// reads and checks its data outside it (its mappings are looked up under
// it), so reads run in parallel; a block a concurrent rewrite moved fails
// its checksum there and is read again under the mutex, and only that
// second mismatch is Corruption. A volume device checks its bounds again
// under the mutex that performs the I/O, so a Resize on another thread
// cannot let a write land past the new end (OutOfRange instead).
//
// Volume devices share the pool's state: a device may outlive its Pool
// (destroying the Pool commits and closes the store; every later call on
// the device fails with IoError saying the pool is closed, its size reads
// 0). While a device is open on an entry, Delete, Rollback and Rename of
// that entry fail with Busy naming the device's user (OpenVolume's label).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/status.h"
#include "pool/store.h"

namespace stack::pool {

struct PoolCreateOptions {
  uint32_t block_size = 4096;  // 4 KiB .. 1 MiB, power of two (see spec: default)
  // Initial backing size; the pool grows the store on demand up to
  // max_bytes (0 = same as size_bytes: fixed size).
  uint64_t size_bytes = 64ull << 20;
  uint64_t max_bytes = 0;
  size_t cache_bytes = 64ull << 20;  // metadata cache budget
};

struct PoolOpenOptions {
  bool read_only = false;
  size_t cache_bytes = 64ull << 20;
  // When both copies of the superblock slot that would hold the next
  // generation are unreadable, that generation may have been committed and
  // the pool refuses to open (Corruption). true: open the newest readable
  // generation anyway (a warning says what is lost); a writer then commits
  // at once, making the loss final and the pool whole.
  bool accept_lost_generation = false;
  // Large data writes start their writeback at once (a hint to the pool
  // file's kernel), so a command that streams a volume and then commits
  // finds most of it on its way to the disk. A server whose clients decide
  // when to flush turns it off: the hint made every request submit its own
  // I/O (a fifth of a served volume's write CPU), where the kernel's
  // writeback batches it. Either way every 64 MiB of large writes is made
  // durable in the background (fdatasync on a thread of the store), so a
  // commit's own flush, which holds the pool, has at most that much left.
  bool write_behind = true;
};

struct EntryMeta {
  std::string note;
  std::vector<std::string> tags;
};

enum class EntryKind { kVolume, kSnapshot };

// The identity a new entry takes instead of fresh values, so that a
// receive recreates an entry under its sender's uuids (these are fields
// every entry record already has). Empty or zero fields: as usual. The
// pool does not require uuids to be unique; callers that need it check.
struct EntryIdentity {
  std::string uuid;             // 8-4-4-4-12 hex; "" = a new random uuid
  std::string parent_uuid;      // "" = as usual (none for a volume, the source for a copy)
  int64_t created_unix_ns = 0;  // 0 = now; else > 0
};

struct EntryInfo {
  std::string name;
  std::string uuid;         // 8-4-4-4-12 hex
  EntryKind kind = EntryKind::kVolume;
  uint64_t size_bytes = 0;
  int64_t created_unix_ns = 0;
  std::string parent_uuid;  // empty: none
  std::string note;
  std::vector<std::string> tags;
  bool read_only = false;
  uint64_t mapped_bytes = 0;
  uint64_t exclusive_bytes = 0;  // what deleting this entry frees
  uint64_t shared_bytes = 0;     // mapped - exclusive
};

struct PoolInfo {
  std::string uuid;
  uint32_t block_size = 0;
  uint64_t size_bytes = 0;      // blocks the pool currently spans
  uint64_t max_bytes = 0;
  uint64_t used_bytes = 0;      // blocks with a non-zero reference count
  uint64_t free_bytes = 0;      // allocatable now (excludes blocks freed since the last commit)
  uint64_t reserved_bytes = 0;  // kept back for commits
  uint64_t generation = 0;      // last committed transaction
  // What the backing file occupies on its host (0 with host_known false:
  // not a file). Freed runs of 64 KiB and more are punched out by the
  // entry operation that frees them, else one data-path commit later or at
  // the close (a rewrite reuses them first); host_unused_bytes is what is
  // allocated on the host beyond the pool's used blocks (free blocks not
  // punched: short runs and the last commit's, kept for reuse), an upper
  // bound of what could still be given back.
  bool host_known = false;
  uint64_t host_allocated_bytes = 0;
  uint64_t host_unused_bytes = 0;
  uint64_t entries = 0;
  size_t cache_bytes = 0;
};

struct CheckReport {
  bool ok = true;
  std::vector<std::string> errors;  // one line each, naming the block/entry
  // Findings that do not make the pool unclean: superblock copies torn by
  // an interrupted commit (recovered; a writer rewrites them).
  std::vector<std::string> warnings;
  uint64_t entries = 0;
  uint64_t btree_nodes = 0;
  uint64_t data_blocks = 0;     // distinct data blocks referenced
  uint64_t metadata_blocks = 0; // superblocks, space map, index, entry tree, name index
  uint64_t leaked_blocks = 0;   // count > references
  uint64_t refcount_errors = 0; // count != references
  std::string ToJson() const;
};

struct VerifyReport {
  bool ok = true;
  uint64_t blocks_checked = 0;
  uint64_t bad_blocks = 0;
  std::vector<std::string> errors;  // "volume V logical block L physical block P: ..."
  std::string ToJson() const;
};

// A run of an entry's data held contiguously in the backing store.
struct StoredRun {
  uint64_t offset = 0;        // bytes into the entry
  uint64_t store_offset = 0;  // bytes into the backing store
  uint64_t length = 0;        // bytes (whole pool blocks)
  bool zero = false;          // every byte is zero (a copy may leave a hole)
};

enum class DiffKind { kWritten, kDiscarded };
struct DiffRange {
  uint64_t offset = 0;   // bytes, a multiple of block_size()
  uint64_t length = 0;   // bytes, a multiple of block_size()
  DiffKind kind = DiffKind::kWritten;
};
struct DiffStats {
  bool by_address = true;     // false: unrelated lineages, mappings compared block by block
  uint64_t written_bytes = 0;
  uint64_t discarded_bytes = 0;
  uint64_t nodes_visited = 0; // metadata nodes read (O(changed) evidence)
};

class Pool {
 public:
  static Result<std::unique_ptr<Pool>> Create(const std::string& path,
                                              const PoolCreateOptions& options);
  static Result<std::unique_ptr<Pool>> Create(std::unique_ptr<Store> store,
                                              const PoolCreateOptions& options);
  static Result<std::unique_ptr<Pool>> Open(const std::string& path,
                                            const PoolOpenOptions& options);
  static Result<std::unique_ptr<Pool>> Open(std::unique_ptr<Store> store,
                                            const PoolOpenOptions& options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  uint32_t block_size() const;
  // What Open found wrong with the superblock copies (one line each, naming
  // the copy and the generation opened); empty when all four agreed.
  const std::vector<std::string>& open_warnings() const;

  // A new empty thin volume. size_bytes: a multiple of block_size().
  Status CreateVolume(const std::string& name, uint64_t size_bytes, const EntryMeta& meta);
  // The same, with the given identity (InvalidArgument for a malformed uuid).
  Status CreateVolume(const std::string& name, uint64_t size_bytes, const EntryMeta& meta,
                      const EntryIdentity& identity);
  // The volume or snapshot as a BlockDevice (block_size() = pool block size).
  // A snapshot, a read-only entry or a read-only pool gives a read-only
  // device; asking for a writable one then fails with ReadOnly.
  Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only);
  // The same; `user_label` says who holds the device ("NBD export vm1"):
  // while the device is open, Delete, Rollback and Rename of the entry
  // fail with Busy naming it. The overload above labels "an open device".
  Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only,
                                                  const std::string& user_label);
  // snap_name is the full `V@S`; V must be the source's volume part.
  Status Snapshot(const std::string& source, const std::string& snap_name, const EntryMeta& meta);
  // The same, with the given identity (InvalidArgument for a malformed uuid).
  Status Snapshot(const std::string& source, const std::string& snap_name, const EntryMeta& meta,
                  const EntryIdentity& identity);
  // A writable volume sharing source's blocks (source: volume or snapshot).
  Status Clone(const std::string& source, const std::string& new_name, const EntryMeta& meta);
  // volume takes snapshot's content and size. snapshot: `V@S` or just `S`.
  Status Rollback(const std::string& volume, const std::string& snapshot);
  Status Delete(const std::string& name);
  // Renaming V renames every V@* too; a snapshot keeps its volume part.
  Status Rename(const std::string& old_name, const std::string& new_name);
  // Grow or shrink (shrinking frees the tail). Snapshots cannot be resized.
  Status Resize(const std::string& name, uint64_t new_size_bytes);
  Status SetReadOnly(const std::string& name, bool read_only);
  Status SetMeta(const std::string& name, const EntryMeta& meta);
  // Every entry with its space accounting (walks each entry's tree: cost
  // grows with mapped data). Names() is the cheap alternative.
  Result<std::vector<EntryInfo>> List();
  // Entry names in creation order (a walk of the entry tree, no accounting).
  Result<std::vector<std::string>> Names();
  // Names of the hidden entries: those whose name starts with '.' (the
  // layer above makes unfinished builds so). The superblock counts them,
  // so with none this reads nothing; otherwise it walks the entries until
  // it has found them all.
  Result<std::vector<std::string>> HiddenNames();
  // The entries whose uuid is `uuid` (8-4-4-4-12 hex; InvalidArgument if
  // malformed), found in the uuid index: O(log entries). Uuids are not
  // required to be unique, hence a list (usually 0 or 1). No accounting:
  // exclusive_bytes and shared_bytes are 0 (Stat gives them).
  Result<std::vector<EntryInfo>> FindByUuid(const std::string& uuid);
  Result<EntryInfo> Stat(const std::string& name);
  // Stat without the accounting (exclusive_bytes and shared_bytes are 0):
  // one name lookup, no tree walked and no reference count read, where
  // Stat's accounting walks the entry's tree (send, receive and import ask
  // for names, sizes and uuids only).
  Result<EntryInfo> Lookup(const std::string& name);
  Result<PoolInfo> Info();
  // Full consistency check (reference counts, trees, metadata checksums).
  Result<CheckReport> Check();
  // Reads every referenced data block and verifies its checksum.
  // `progress`, if given, is called with the bytes of each block read.
  Result<VerifyReport> Verify(const std::function<void(uint64_t)>& progress = {});
  // Where `name`'s mapped data within [offset, offset + length) lies in the
  // backing store, as runs in entry order (unmapped ranges read as zeros
  // and are not listed). Every block is read and checked against its
  // checksum first (Corruption naming the block otherwise), so a copy made
  // by store offset (reflink, copy_file_range) keeps the guarantee a Read
  // gives. The offsets stay valid while the pool is open and unchanged
  // (nothing can change it while a reader holds it read-only).
  // offset and length: multiples of block_size().
  Result<std::vector<StoredRun>> StoredRuns(const std::string& name, uint64_t offset,
                                            uint64_t length);
  // For each block of `data`, the bytes `name` would store at `offset` and
  // on: 1 if the entry maps that block with the same data checksum, else 0
  // (unmapped: 0). Only the mappings are read, not the data: for finding
  // what changed without reading what did not (import --into). The checksum
  // is XXH3-64 seeded with the block's location: equal bytes always match;
  // different bytes match with probability 2^-64 unless chosen to collide,
  // so `data` must not be under an adversary's control (ciphertext under a
  // key its author does not hold is not). A corrupt stored block is not
  // detected here. offset and data.size(): multiples of block_size(),
  // inside the entry (InvalidArgument / OutOfRange otherwise).
  Result<std::vector<uint8_t>> SameStored(const std::string& name, uint64_t offset,
                                          std::span<const uint8_t> data);
  // The ranges where `to` differs from `from` (entries of this pool; `from`
  // empty = an empty volume, so every mapped range of `to` is kWritten).
  // kWritten: `to` maps a block there that is not `from`'s block at that
  // offset (its data must be shipped); kDiscarded: `from` maps a block there
  // and `to` maps none (now a hole). Ascending offsets, adjacent ranges of one
  // kind merged, nothing past to's size; a size change is not a range (the
  // caller compares sizes). Shared subtrees (same node address) are skipped
  // without being read. NotFound naming a missing entry.
  // by_address is false when both entries map something and share no node
  // and no data block: unrelated lineages (the answer is still exact; the
  // walk compared every mapping). The sink runs under the pool's lock: it
  // must not call back into the Pool (collect, then read). A sink error
  // stops the walk and is returned.
  Status Diff(const std::string& from, const std::string& to,
              const std::function<Status(const DiffRange&)>& sink, DiffStats* stats = nullptr);
  // The backing store's local file (Store::local_path), or "".
  std::string StorePath() const;
  // Names the calling process in the lock's holder note (after a fork that
  // kept the lock, as nbdkit --fork does: the note named the parent).
  void RefreshLockNote();
  Status Grow(uint64_t new_max_bytes);
  Status Commit();

  class Impl;  // the shared state (layers/pool/src/pool_impl.h)

 private:
  explicit Pool(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // shared with every volume device
};

// Where Pool::Open also sends each of its open_warnings() (the CLI prints
// them on stderr). Set it once, before pools are opened; unset by default.
void SetPoolWarningSink(std::function<void(const std::string&)> sink);

// True if `name` is a valid entry name (see above).
bool ValidEntryName(const std::string& name);

}  // namespace stack::pool

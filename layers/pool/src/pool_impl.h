// Pool::Impl: the pool's state and every operation on it. The Pool object
// and each volume device share one Impl (std::shared_ptr), so a device
// that outlives its Pool holds valid memory: Close() (run by ~Pool) commits,
// releases the store and its lock, and every later call on a device fails
// with IoError "pool ... is closed" instead of touching freed state.
//
// Split over the files that own its parts: pool.cc (lifecycle, the
// transaction scope, the entry operations behind the public API),
// volume_io.cc (volume read/write/discard and the volume BlockDevice),
// diff.cc (Diff) and check.cc (check, verify, accounting). The state is
// private; Pool and VolumeDevice call only the public methods below.
//
// Layers below (dm persistent-data's model): the TransactionManager owns
// the block cache, the space map and the commit sequence; the trees (BTree
// for volume mappings, EntryTable for entries) work through it; Impl is
// their client and owns the superblock and the pool-wide rules (names,
// space reserve, entries in use).
//
// Thread-safety: every public method takes the pool mutex itself.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "block/text.h"
#include "btree.h"
#include "mapping_cache.h"
#include "entry_table.h"
#include "pool/pool.h"
#include "superblock.h"
#include "transaction.h"

namespace stack::pool {

using LogicalMapping = std::pair<uint64_t, Mapping>;  // logical block, mapping

class Pool::Impl : public std::enable_shared_from_this<Pool::Impl> {
 public:
  // A new pool in `store` (options already validated) / the pool in
  // `store`. The store is locked here.
  static Result<std::shared_ptr<Impl>> Create(std::unique_ptr<Store> store,
                                              const PoolCreateOptions& o);
  static Result<std::shared_ptr<Impl>> Open(std::unique_ptr<Store> store,
                                            const PoolOpenOptions& o);
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Commits a writer's transaction (best effort, like an unmount), then
  // releases the metadata and the store (and with it the store's lock).
  // Later calls fail with IoError naming the closed pool. Idempotent.
  void Close();

  // Fixed after Create/Open (no lock needed).
  uint32_t block_size() const { return bs_; }
  const std::vector<std::string>& open_warnings() const { return open_warnings_; }
  // The store's local file (Store::local_path), "" once closed.
  std::string store_path() const;
  void RefreshLockNote();

  // The public API (pool.h says what each does).
  Status CreateVolume(const std::string& name, uint64_t size_bytes, const EntryMeta& meta,
                      const EntryIdentity& identity);
  Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only,
                                                  const std::string& user);
  Status Copy(const std::string& source, const std::string& name, bool snapshot,
              const EntryMeta& meta, const EntryIdentity& identity);
  Status Rollback(const std::string& volume, const std::string& snapshot);
  Status Delete(const std::string& name);
  Status Rename(const std::string& old_name, const std::string& new_name);
  Status Resize(const std::string& name, uint64_t new_size);
  Status SetReadOnly(const std::string& name, bool read_only);
  Status SetMeta(const std::string& name, const EntryMeta& meta);
  Status Grow(uint64_t new_max_bytes);
  Status Commit();
  Result<std::vector<EntryInfo>> List();
  Result<std::vector<std::string>> Names();
  Result<std::vector<std::string>> HiddenNames();
  Result<std::vector<EntryInfo>> FindByUuid(const std::string& uuid);
  Result<EntryInfo> Stat(const std::string& name, bool accounting);
  Result<std::vector<uint8_t>> SameStored(const std::string& name, uint64_t offset,
                                          std::span<const uint8_t> data);
  Result<std::vector<StoredRun>> StoredRuns(const std::string& name, uint64_t offset,
                                            uint64_t length);
  Status Diff(const std::string& from, const std::string& to,
              const std::function<Status(const DiffRange&)>& sink, DiffStats* stats);
  Result<PoolInfo> Info();
  Result<CheckReport> Check();
  Result<VerifyReport> Verify(const std::function<void(uint64_t)>& progress);

  // Volume device I/O by entry id (volume_io.cc). first/count in pool
  // blocks; each checks [first, first + count) against the entry's size
  // under the lock that performs the I/O (OutOfRange), so a Resize on
  // another thread cannot let a write land past the end.
  // A read looks its mappings up under the lock and reads and checks the
  // data outside it, so reads run in parallel; a checksum that does not
  // match there (a concurrent rewrite may have moved the block) is read
  // again under the lock, and only a mismatch there is Corruption.
  Status ReadBlocks(uint64_t id, uint64_t first, std::span<uint8_t> out);
  Status WriteBlocks(uint64_t id, uint64_t first, std::span<const uint8_t> data);
  Status DiscardBlocks(uint64_t id, uint64_t first, uint64_t count);
  Result<std::vector<Extent>> Extents(uint64_t id, uint64_t first, uint64_t count);
  // Flush of a device: a commit (writable) or a check that the pool is usable.
  Status FlushVolume(bool read_only);
  // The entry's size in blocks (0 if it is gone or unreadable) and a label
  // for messages.
  uint64_t VolumeBlocks(uint64_t id);
  std::string DescribeVolume(uint64_t id);
  // A device on entry `id` ends (see OpenVolume): the entry may be deleted,
  // rolled back and renamed again once no device uses it.
  void ReleaseUser(uint64_t token);

 private:
  class Txn;

  // Lifecycle (pool.cc). REQUIRES for every private method: mu_ held.
  void InitComponents();
  // Reads the superblock copies and takes the generation they designate
  // (superblock_copies.h); a writer rewrites disagreeing copies first.
  Status Load();
  // Punches the pool file's free blocks when it holds much more
  // than the used blocks: what a writer killed before its commit wrote is
  // free in the committed state but still on the host. Cheap test (one
  // fstat) on every writable open; the scan of the space map only when the
  // excess is at least 8 MiB and 1/32 of the used bytes. A hint: errors
  // are ignored (pool check reports damage).
  void ReclaimUncommitted();
  // Writes the changed entries into the entry tree, then lets the
  // transaction manager commit (transaction.h). A failure abandons the
  // running transaction.
  Status CommitLocked();
  // A writer's open of a format-3 pool: builds the uuid index and the
  // hidden count (one walk of the entries) and commits format 4.
  Status Upgrade();
  // Abandons the running transaction: reloads the last commit.
  Status Abort(Status cause);
  Status Usable() const;
  Status Writable() const;

  // Space.
  uint64_t Reserve() const;
  Status EnsureSpace(uint64_t need, const char* what);
  // OK if another entry id can be handed out.
  Status NewId();

  // The entry, or NotFound naming what was asked for (`what`: "volume",
  // "snapshot", "volume or snapshot").
  Result<TableEntry*> Find(const std::string& name, const char* what = "volume or snapshot");
  // AlreadyExists if an entry is called `name`.
  Status NameFree(const std::string& name);
  // Busy naming the user if a device is open on entry `id` (`doing`: what
  // was refused, for the message).
  Status NotInUse(const TableEntry& e, const char* doing) const;
  // Writes the changed entries into the entry tree (before walking it);
  // a failure abandons the transaction.
  Status FlushEntries();
  // nullptr if the entry is gone (deleted while a device held it).
  Result<TableEntry*> FindId(uint64_t id) { return table_->Get(id); }
  // accounting: also walk the tree for exclusive/shared bytes.
  Result<EntryInfo> InfoOf(const TableEntry& e, bool accounting = true);

  // Volume I/O helpers (volume_io.cc).
  Status InBounds(const TableEntry& e, uint64_t first, uint64_t count, const char* op);
  // Makes room for removing [first, end) of e's mappings (NoSpace, nothing
  // changed); RemoveMappings then removes them (a failure leaves the
  // transaction to be abandoned by the caller).
  Status PrepareRemove(TableEntry& e, uint64_t first, uint64_t end);
  Status RemoveMappings(uint64_t id, uint64_t first, uint64_t end);
  Result<std::vector<StoredRun>> Runs(const TableEntry& e, uint64_t first, uint64_t count);
  Result<std::vector<LogicalMapping>> Mappings(const TableEntry& e, uint64_t first, uint64_t end);
  // Reads the mapped blocks of [first, first + out.size() / bs_) (maps:
  // their mappings, in key order) into out, zeros elsewhere, checking each
  // block's checksum. Needs no lock (the store's reads are thread-safe);
  // the caller keeps the store alive (io_in_flight_).
  Status ReadMapped(const std::string& label, std::span<const LogicalMapping> maps,
                    uint64_t first, std::span<uint8_t> out);
  Status ReadRun(const std::string& label, std::span<const LogicalMapping> run,
                 std::span<uint8_t> dst);
  Status ReadBlocksLocked(uint64_t id, uint64_t first, std::span<uint8_t> out);
  // Returns once no write holds unmapped fresh blocks (releasing `lock`,
  // which holds mu_, while waiting). Every commit runs after it.
  void WaitUnmappedWrites(std::unique_lock<std::mutex>& lock);
  // A commit for a caller holding mu_ through `lock`: waits for unmapped
  // writes first.
  Status CommitWhenMapped(std::unique_lock<std::mutex>& lock);
  // The data path's bound on a transaction: commits when its per-block
  // state has passed max_txn_entries_. Requests that meet the bound
  // together commit once: a caller that waited for unmapped writes
  // commits only if the bound is still passed when its turn comes.
  Status CommitIfOverBound(std::unique_lock<std::mutex>& lock);
  // The chunk of map_cache_ holding e's block `key`, filled from the tree
  // if absent; nullptr when a mapping there is outside the data area (the
  // caller reads through the tree, which reports it).
  Result<const MappingCache::Chunk*> MappingChunk(const TableEntry& e, uint64_t key);

  // Check and accounting (check.cc).
  // visits: nodes read so far in this walk (bounded by the pool's size).
  Result<uint64_t> ExclusiveBlocks(uint64_t root, int level = -1, uint64_t* visits = nullptr);
  Result<CheckReport> CheckLocked();
  Result<VerifyReport> VerifyLocked(const std::function<void(uint64_t)>& progress);

  SpaceMap& sm() { return tm_->sm(); }
  const SpaceMap& sm() const { return tm_->sm(); }

  mutable std::mutex mu_;
  // Reads running outside mu_; Close waits for none before the store goes.
  // Counted under mu_ going up; going down without it (the last one of a
  // closing pool takes mu_ to wake Close).
  std::atomic<uint64_t> io_in_flight_ = 0;
  std::atomic<bool> closing_ = false;
  std::condition_variable io_idle_;
  // Writes whose fresh blocks are allocated but not yet mapped (their data
  // being written with mu_ released, volume_io.cc): no commit may run
  // meanwhile, or it would record those blocks allocated and unreferenced.
  // Under mu_.
  uint64_t unmapped_writes_ = 0;
  std::condition_variable unmapped_done_;
  // Callers waiting in WaitUnmappedWrites: while any waits, writes stay
  // under the lock, so a stream of writes cannot starve a commit.
  uint64_t commits_waiting_ = 0;
  // Bumped by every Load: a write that left the lock finds its
  // transaction abandoned (and its fresh blocks gone with it) by a change.
  uint64_t load_epoch_ = 0;
  // Blocks promised to the mapping inserts of unmapped writes (their tree
  // may need new nodes then): EnsureSpace keeps them free for them.
  uint64_t promised_meta_ = 0;
  std::unique_ptr<Store> store_;
  uint32_t bs_ = 0;
  bool read_only_ = false;
  size_t cache_bytes_ = 0;
  std::unique_ptr<TransactionManager> tm_;  // cache, space map, commit
  std::unique_ptr<BTree> tree_;        // volume trees
  std::unique_ptr<EntryTable> table_;  // entries: entry tree + name index
  // Decoded volume-tree leaves for one-block reads; every change to an
  // entry's mappings erases what it touches (see mapping_cache.h).
  std::unique_ptr<MappingCache> map_cache_;
  Superblock sb_;                      // the last committed superblock
  uint64_t max_blocks_ = 0;            // current (Grow changes it before commit)
  uint64_t next_id_ = 1;
  bool dirty_ = false;                 // changed since the last commit
  Status broken_;                      // set when even reloading failed, or closed
  bool accept_lost_generation_ = false;  // PoolOpenOptions
  uint64_t lost_generation_ = 0;       // the last Load gave up this generation (accepted)
  std::vector<std::string> warnings_;  // the last Load's findings on the superblock copies
  std::vector<std::string> open_warnings_;  // those of the Load at open
  size_t max_txn_entries_ = 0;
  // Open devices: token -> (entry id, who uses it).
  std::map<uint64_t, std::pair<uint64_t, std::string>> users_;
  uint64_t next_token_ = 1;
  // After Close: the sizes (blocks) of the entries devices were open on.
  std::map<uint64_t, uint64_t> closed_sizes_;
};

// The device behind Pool::OpenVolume (volume_io.cc). `token`: its entry in
// the pool's users, released when the device is destroyed.
std::unique_ptr<BlockDevice> MakeVolumeDevice(std::shared_ptr<Pool::Impl> impl, uint64_t id,
                                              bool read_only, uint64_t token);

}  // namespace stack::pool

// Pool::Impl: the pool's state and the operations behind the public API,
// split over pool.cc (lifecycle, commit, table operations), volume_io.cc
// (volume read/write/discard and the volume BlockDevice) and check.cc
// (check, verify, accounting).
//
// Commit protocol (spec/pool-format.md, "Commit"):
//   1. write the entries changed since the last commit into the entry tree
//      (shadowed like every other tree node);
//   2. fold reference-count deltas into shadowed space-map/index blocks;
//   3. write every dirty metadata block; flush;
//   4. write the superblock (generation + 1) into slot (generation + 1) % 2:
//      primary copy, flush, mirror copy, flush;
//   5. the transaction's freed blocks become allocatable; long runs of them
//      are discarded from the store (the pool file gives the space back).
// Nothing the previous superblock references is written before step 4
// completes, so a crash at any point leaves one of the two slots valid in
// both copies, and at most one copy torn (superblock_copies.h).
//
// REQUIRES for every method: mu held (public entry points take it).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "block_cache.h"
#include "btree.h"
#include "pool/pool.h"
#include "space_map.h"
#include "superblock.h"
#include "transaction.h"
#include "entry_table.h"

namespace stack::pool {

struct Pool::Impl {
  std::mutex mu;
  std::unique_ptr<Store> store;
  uint32_t bs = 0;
  bool read_only = false;
  size_t cache_bytes = 0;
  std::unique_ptr<BlockCache> cache;
  std::unique_ptr<SpaceMap> sm;
  std::unique_ptr<TransactionManager> tm;
  std::unique_ptr<BTree> tree;        // volume trees
  std::unique_ptr<EntryTable> table;  // entries: entry tree + name index
  Superblock sb;                     // the last committed superblock
  uint64_t max_blocks = 0;           // current (Grow changes it before commit)
  uint64_t next_id = 1;
  bool dirty = false;                // changed since the last commit
  Status broken;                     // set when even reloading failed
  bool accept_lost_generation = false;  // PoolOpenOptions
  uint64_t lost_generation = 0;      // the last Load gave up this generation (accepted)
  std::vector<std::string> warnings; // the last Load's findings on the superblock copies
  std::vector<std::string> open_warnings;  // those of the Load at open
  size_t max_txn_entries = 0;

  // Lifecycle (pool.cc).
  void InitComponents();
  // Reads the superblock copies and takes the generation they designate
  // (superblock_copies.h); a writer rewrites disagreeing copies first.
  Status Load();
  Status CommitLocked();
  // Discards (punches out of a file store) long runs of blocks a durable
  // commit freed.
  void ReleaseSpace(const std::vector<uint64_t>& blocks);
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
  // Writes the changed entries into the entry tree (before walking it);
  // a failure abandons the transaction.
  Status FlushEntries();
  // nullptr if the entry is gone (deleted while a device held it).
  Result<TableEntry*> FindId(uint64_t id) { return table->Get(id); }

  // Volume I/O (volume_io.cc). first/count in pool blocks; each checks
  // [first, first + count) against the entry's size itself (OutOfRange).
  Status InBounds(const TableEntry& e, uint64_t first, uint64_t count, const char* op);
  Status ReadBlocks(uint64_t id, uint64_t first, std::span<uint8_t> out);
  Status WriteBlocks(uint64_t id, uint64_t first, std::span<const uint8_t> data);
  Status RemoveRange(TableEntry& e, uint64_t first, uint64_t end);
  Status DiscardBlocks(uint64_t id, uint64_t first, uint64_t count);
  Result<std::vector<Extent>> Extents(uint64_t id, uint64_t first, uint64_t count);
  Result<std::vector<StoredRun>> Runs(const TableEntry& e, uint64_t first, uint64_t count);

  // Check and accounting (check.cc).
  // visits: nodes read so far in this walk (bounded by the pool's size).
  Result<uint64_t> ExclusiveBlocks(uint64_t root, int level = -1, uint64_t* visits = nullptr);
  Result<CheckReport> CheckLocked();
  Result<VerifyReport> VerifyLocked(const std::function<void(uint64_t)>& progress);
};

std::string FormatUuid(const std::array<uint8_t, 16>& u);
std::unique_ptr<BlockDevice> MakeVolumeDevice(Pool::Impl* impl, uint64_t id, bool read_only);

}  // namespace stack::pool

// VolumeStore: where a command's volumes and snapshots live. Two stores
// implement it: a pool file (PoolVolumeStore, layers/pool) and a Ceph RBD
// pool (RbdVolumeStore, stack/rbd_volume_store.h, spec/ceph.md). Commands
// open one through compose::OpenPool (stack/open_pool.h), which picks the
// store from the pool argument, and then use only this interface, so every
// flow (build, clone, snapshot, fs edits, export, import) runs on both.
//
// Names, kinds and contracts are pool::Pool's (layers/pool/include/pool/pool.h):
// one flat namespace, a volume `V`, a snapshot `V@S` (read-only), clones
// are volumes, entries are peers (any delete order), names starting with
// '.' are hidden (unfinished builds). Each method below says only where a
// store may differ. Durability: changes are durable at Commit() or a
// device's Flush() (RBD: at once; Commit is then a no-op).
//
// What only a pool file has (check, verify, grow, stored runs for reflink
// exports, the control socket) is reached through file_pool(), which is
// nullptr for other stores; callers then fail with Unsupported.
//
// Thread-safety: as the store says (a pool file: every method from any
// thread; RBD: every method from any thread, the store serialises them).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/status.h"
#include "pool/pool.h"

namespace stack {

class VolumeStore {
 public:
  virtual ~VolumeStore() = default;

  // Names the store in messages: "pool FILE" or "rbd:CEPHPOOL[/NS]".
  virtual std::string describe() const = 0;
  // The unit of volume sizes (a pool file's block size; RBD: 4096).
  virtual uint32_t block_size() const = 0;
  // Warnings the open produced (a pool file's superblock findings).
  virtual std::vector<std::string> open_warnings() const { return {}; }

  virtual Status CreateVolume(const std::string& name, uint64_t size_bytes,
                              const pool::EntryMeta& meta) = 0;
  // With the given identity (a receive); a store that cannot keep it
  // returns Unsupported.
  virtual Status CreateVolume(const std::string& name, uint64_t size_bytes,
                              const pool::EntryMeta& meta, const pool::EntryIdentity& identity) = 0;
  // The entry as a BlockDevice. A snapshot or a read-only entry gives a
  // read-only device (ReadOnly when a writable one is asked for).
  // `user_label` names the holder in a Busy another user gets.
  virtual Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only,
                                                          const std::string& user_label) = 0;
  Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only) {
    return OpenVolume(name, read_only, "an open device");
  }
  virtual Status Snapshot(const std::string& source, const std::string& snap_name,
                          const pool::EntryMeta& meta) = 0;
  virtual Status Snapshot(const std::string& source, const std::string& snap_name,
                          const pool::EntryMeta& meta, const pool::EntryIdentity& identity) = 0;
  virtual Status Clone(const std::string& source, const std::string& new_name,
                       const pool::EntryMeta& meta) = 0;
  virtual Status Rollback(const std::string& volume, const std::string& snapshot) = 0;
  virtual Status Delete(const std::string& name) = 0;
  virtual Status Rename(const std::string& old_name, const std::string& new_name) = 0;
  virtual Status Resize(const std::string& name, uint64_t new_size_bytes) = 0;
  virtual Status SetReadOnly(const std::string& name, bool read_only) = 0;
  virtual Status SetMeta(const std::string& name, const pool::EntryMeta& meta) = 0;
  // Every entry, hidden ones included, with its space accounting as the
  // store reports it.
  virtual Result<std::vector<pool::EntryInfo>> List() = 0;
  virtual Result<std::vector<std::string>> Names() = 0;
  virtual Result<std::vector<std::string>> HiddenNames() = 0;
  virtual Result<std::vector<pool::EntryInfo>> FindByUuid(const std::string& uuid) = 0;
  virtual Result<pool::EntryInfo> Stat(const std::string& name) = 0;
  // Stat without the space accounting (mapped, exclusive and shared bytes
  // may be 0), for callers that want the record only (names, sizes, kinds,
  // uuids): the accounting walks the entry's tree on a pool file and reads
  // the image's allocation (a diff) on RBD. Default: Stat.
  virtual Result<pool::EntryInfo> Lookup(const std::string& name) { return Stat(name); }
  virtual Result<pool::PoolInfo> Info() = 0;
  // As Pool::Diff. The sink must not call back into the store.
  virtual Status Diff(const std::string& from, const std::string& to,
                      const std::function<Status(const pool::DiffRange&)>& sink,
                      pool::DiffStats* stats = nullptr) = 0;
  virtual Status Commit() = 0;
  // Makes a clone independent of its source (RBD: copies the parent's
  // data into the image, so reads stop walking the parent chain). true in
  // *flattened when there was something to do. A pool file's clones read
  // their shared blocks directly: nothing to do.
  virtual Status Flatten(const std::string& name, bool* flattened) {
    (void)name;
    *flattened = false;
    return Status::Ok();
  }

  // The longest parent chain a clone may read through before Clone
  // flattens it (RBD: pool metadata, spec/ceph.md; 0 = the store has no
  // such limit, as a pool file, whose clones read shared blocks directly).
  virtual Result<int> CloneDepthLimit() { return 0; }
  // Sets it (>= 1). Unsupported on a store without one.
  virtual Status SetCloneDepthLimit(int limit) {
    (void)limit;
    return Status::Unsupported(describe() + " has no clone depth limit (a pool file's clones "
                               "read their shared blocks directly)");
  }

  // The pool file behind this store, or nullptr (another kind of store).
  virtual std::shared_ptr<pool::Pool> file_pool() { return nullptr; }
};

// pool::Pool as a VolumeStore: every call forwards as is.
class PoolVolumeStore final : public VolumeStore {
 public:
  explicit PoolVolumeStore(std::shared_ptr<pool::Pool> pool, std::string path = "")
      : pool_(std::move(pool)), path_(std::move(path)) {}

  std::string describe() const override { return "pool " + path_; }
  uint32_t block_size() const override { return pool_->block_size(); }
  std::vector<std::string> open_warnings() const override { return pool_->open_warnings(); }
  Status CreateVolume(const std::string& name, uint64_t size_bytes,
                      const pool::EntryMeta& meta) override {
    return pool_->CreateVolume(name, size_bytes, meta);
  }
  Status CreateVolume(const std::string& name, uint64_t size_bytes, const pool::EntryMeta& meta,
                      const pool::EntryIdentity& identity) override {
    return pool_->CreateVolume(name, size_bytes, meta, identity);
  }
  using VolumeStore::OpenVolume;
  Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only,
                                                  const std::string& user_label) override {
    return pool_->OpenVolume(name, read_only, user_label);
  }
  Status Snapshot(const std::string& source, const std::string& snap_name,
                  const pool::EntryMeta& meta) override {
    return pool_->Snapshot(source, snap_name, meta);
  }
  Status Snapshot(const std::string& source, const std::string& snap_name,
                  const pool::EntryMeta& meta, const pool::EntryIdentity& identity) override {
    return pool_->Snapshot(source, snap_name, meta, identity);
  }
  Status Clone(const std::string& source, const std::string& new_name,
               const pool::EntryMeta& meta) override {
    return pool_->Clone(source, new_name, meta);
  }
  Status Rollback(const std::string& volume, const std::string& snapshot) override {
    return pool_->Rollback(volume, snapshot);
  }
  Status Delete(const std::string& name) override { return pool_->Delete(name); }
  Status Rename(const std::string& old_name, const std::string& new_name) override {
    return pool_->Rename(old_name, new_name);
  }
  Status Resize(const std::string& name, uint64_t new_size_bytes) override {
    return pool_->Resize(name, new_size_bytes);
  }
  Status SetReadOnly(const std::string& name, bool read_only) override {
    return pool_->SetReadOnly(name, read_only);
  }
  Status SetMeta(const std::string& name, const pool::EntryMeta& meta) override {
    return pool_->SetMeta(name, meta);
  }
  Result<std::vector<pool::EntryInfo>> List() override { return pool_->List(); }
  Result<std::vector<std::string>> Names() override { return pool_->Names(); }
  Result<std::vector<std::string>> HiddenNames() override { return pool_->HiddenNames(); }
  Result<std::vector<pool::EntryInfo>> FindByUuid(const std::string& uuid) override {
    return pool_->FindByUuid(uuid);
  }
  Result<pool::EntryInfo> Stat(const std::string& name) override { return pool_->Stat(name); }
  Result<pool::EntryInfo> Lookup(const std::string& name) override { return pool_->Lookup(name); }
  Result<pool::PoolInfo> Info() override { return pool_->Info(); }
  Status Diff(const std::string& from, const std::string& to,
              const std::function<Status(const pool::DiffRange&)>& sink,
              pool::DiffStats* stats = nullptr) override {
    return pool_->Diff(from, to, sink, stats);
  }
  Status Commit() override { return pool_->Commit(); }
  std::shared_ptr<pool::Pool> file_pool() override { return pool_; }

 private:
  std::shared_ptr<pool::Pool> pool_;
  std::string path_;
};

// file_pool() or Unsupported naming `what` ("pool check") and the store.
Result<std::shared_ptr<pool::Pool>> RequireFilePool(VolumeStore& store, const std::string& what);

}  // namespace stack

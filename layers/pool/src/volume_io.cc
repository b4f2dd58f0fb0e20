// Volume reads, writes and discards, and the volume BlockDevice.
#include <algorithm>
#include <cstring>

#include "pool_impl.h"
#include "block/zero.h"

namespace stack::pool {
namespace {

std::string EntryLabel(const TableEntry& e) {
  return std::string(e.snapshot ? "snapshot '" : "volume '") + e.name + "'";
}

// End (exclusive) of the run starting at maps[i]: logically and physically
// consecutive, at most `cap` blocks.
size_t RunEnd(std::span<const LogicalMapping> maps, size_t i, size_t cap) {
  size_t j = i + 1;
  while (j < maps.size() && j - i < cap && maps[j].first == maps[j - 1].first + 1 &&
         maps[j].second.phys == maps[j - 1].second.phys + 1) {
    ++j;
  }
  return j;
}

}  // namespace

// The entry's mappings with keys in [first, end), in key order.
Result<std::vector<LogicalMapping>> Pool::Impl::Mappings(const TableEntry& e,
                                                                     uint64_t first, uint64_t end) {
  std::vector<LogicalMapping> maps;
  Status st = tree_->ForEach(e.root, first, end, [&](uint64_t k, const Mapping& m) {
    maps.emplace_back(k, m);
    return true;
  });
  if (!st.ok()) return st.WithContext(EntryLabel(e));
  return maps;
}

// Reads one physically contiguous run into dst (run.size() blocks) and
// checks every block's checksum.
Status Pool::Impl::ReadRun(const std::string& label, std::span<const LogicalMapping> run,
                           std::span<uint8_t> dst) {
  const uint64_t phys0 = run.front().second.phys;
  RETURN_IF_ERROR(store_->Read(phys0 * bs_, dst));
  for (size_t k = 0; k < run.size(); ++k) {
    if (DataChecksum(dst.subspan(k * bs_, bs_), run[k].second.phys) != run[k].second.csum) {
      return Status::Corruption(label + " logical block " + std::to_string(run[k].first) +
                                " (physical block " + std::to_string(run[k].second.phys) +
                                "): data checksum mismatch");
    }
  }
  return Status::Ok();
}

Status Pool::Impl::ReadMapped(const std::string& label, std::span<const LogicalMapping> maps,
                              uint64_t first, std::span<uint8_t> out) {
  // Unmapped blocks read as zeros; only they are cleared (a full range is
  // read straight into `out`).
  uint64_t filled = first;  // blocks below this are read or cleared
  auto clear_to = [&](uint64_t block) {
    if (block > filled) std::memset(out.data() + (filled - first) * bs_, 0, (block - filled) * bs_);
  };
  for (size_t i = 0; i < maps.size();) {
    const size_t j = RunEnd(maps, i, 256);
    clear_to(maps[i].first);
    RETURN_IF_ERROR(ReadRun(label, maps.subspan(i, j - i),
                            out.subspan((maps[i].first - first) * bs_, (j - i) * bs_)));
    filled = maps[j - 1].first + 1;
    i = j;
  }
  clear_to(first + out.size() / bs_);
  return Status::Ok();
}

// Bounds are checked here, under the lock that performs the I/O: the
// BlockDevice wrapper's own check ran under an earlier acquisition, and a
// Resize on another thread may have shrunk the entry since.
Status Pool::Impl::InBounds(const TableEntry& e, uint64_t first, uint64_t count, const char* op) {
  const uint64_t blocks = e.size_bytes / bs_;
  if (first > blocks || count > blocks - first) {
    return Status::OutOfRange(std::string(op) + " of blocks " + std::to_string(first) + "+" +
                              std::to_string(count) + " is past the end of " + EntryLabel(e) +
                              " (" + std::to_string(blocks) + " blocks)");
  }
  return Status::Ok();
}

namespace {
// The mappings of a read, checked to lie inside the pool.
Status CheckInPool(const std::string& label, std::span<const LogicalMapping> maps,
                   uint64_t nr_blocks) {
  for (const LogicalMapping& m : maps) {
    if (m.second.phys < kFirstFreeBlock || m.second.phys >= nr_blocks) {
      return Status::Corruption(label + " logical block " + std::to_string(m.first) +
                                " maps outside the pool (physical block " +
                                std::to_string(m.second.phys) + ")");
    }
  }
  return Status::Ok();
}
}  // namespace

Status Pool::Impl::ReadBlocks(uint64_t id, uint64_t first, std::span<uint8_t> out) {
  // Nothing allocated on the way for a one-block read (the random-read
  // case): its mapping lives here, and names for messages are only made
  // when something failed (by the locked read, which says the same).
  LogicalMapping one;
  std::vector<LogicalMapping> many;
  std::span<const LogicalMapping> maps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(Usable());
    ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
    if (!e) return Status::NotFound("volume was deleted");
    const uint64_t n = out.size() / bs_;
    RETURN_IF_ERROR(InBounds(*e, first, n, "read"));
    if (n == 1) {
      ASSIGN_OR_RETURN(const MappingCache::Chunk* c, MappingChunk(*e, first));
      if (!c) return ReadBlocksLocked(id, first, out);  // a bad mapping: named there
      if (c->Has(first)) {
        one = LogicalMapping(first, c->Get(first));
        maps = std::span(&one, 1);
      }
    } else {
      ASSIGN_OR_RETURN(many, Mappings(*e, first, first + n));
      maps = many;
    }
    if (!CheckInPool("", maps, sm().nr_blocks()).ok()) return ReadBlocksLocked(id, first, out);
    io_in_flight_.fetch_add(1);
  }
  Status st = ReadMapped("", maps, first, out);
  if (io_in_flight_.fetch_sub(1) == 1 && closing_.load()) {
    std::lock_guard<std::mutex> lock(mu_);  // Close waits on it: no lost wake-up
    io_idle_.notify_all();
  }
  // Outside the lock a concurrent rewrite may have moved a block (and its
  // old place been reused): only a mismatch under the lock is damage.
  if (st.code() == Code::kCorruption) {
    std::lock_guard<std::mutex> lock(mu_);
    return ReadBlocksLocked(id, first, out);
  }
  return st;
}

Result<const MappingCache::Chunk*> Pool::Impl::MappingChunk(const TableEntry& e, uint64_t key) {
  if (const MappingCache::Chunk* c = map_cache_->Find(e.id, key)) return c;
  const uint64_t base = key / MappingCache::kChunkBlocks * MappingCache::kChunkBlocks;
  const uint64_t end = std::min(base + MappingCache::kChunkBlocks, e.size_bytes / bs_);
  MappingCache::Chunk* c = map_cache_->Insert(e.id, key);
  if (!c) return nullptr;  // no cache memory: the caller walks the tree
  bool cacheable = true;
  Status st = tree_->ForEach(e.root, base, end, [&](uint64_t k, const Mapping& m) {
    // phys 0 marks a hole in a chunk; a mapping below the first data
    // block is damage, reported by the tree walk of the locked read.
    cacheable = m.phys >= kFirstFreeBlock;
    if (cacheable) c->Set(k, m);
    return cacheable;
  });
  if (!st.ok() || !cacheable) map_cache_->EraseRange(e.id, key, key + 1);
  if (!st.ok()) return st.WithContext(EntryLabel(e));
  if (!cacheable) return nullptr;
  return c;
}

Status Pool::Impl::ReadBlocksLocked(uint64_t id, uint64_t first, std::span<uint8_t> out) {
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  const uint64_t n = out.size() / bs_;
  RETURN_IF_ERROR(InBounds(*e, first, n, "read"));
  ASSIGN_OR_RETURN(std::vector<LogicalMapping> maps, Mappings(*e, first, first + n));
  RETURN_IF_ERROR(CheckInPool(EntryLabel(*e), maps, sm().nr_blocks()));
  return ReadMapped(EntryLabel(*e), maps, first, out);
}

Result<std::vector<StoredRun>> Pool::Impl::Runs(const TableEntry& e, uint64_t first,
                                               uint64_t count) {
  ASSIGN_OR_RETURN(std::vector<LogicalMapping> maps, Mappings(e, first, first + count));
  std::vector<StoredRun> runs;
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < maps.size();) {
    const size_t j = RunEnd(maps, i, 256);
    buf.resize((j - i) * bs_);
    RETURN_IF_ERROR(CheckInPool(EntryLabel(e), std::span(maps).subspan(i, j - i), sm().nr_blocks()));
    RETURN_IF_ERROR(ReadRun(EntryLabel(e), std::span(maps).subspan(i, j - i), buf));
    for (size_t k = i; k < j; ++k) {
      const bool zero = IsAllZero(std::span(buf).subspan((k - i) * bs_, bs_));
      StoredRun* last = runs.empty() ? nullptr : &runs.back();
      if (last && last->zero == zero && last->offset + last->length == maps[k].first * bs_ &&
          last->store_offset + last->length == maps[k].second.phys * bs_) {
        last->length += bs_;
      } else {
        runs.push_back(StoredRun{maps[k].first * bs_, maps[k].second.phys * bs_, bs_, zero});
      }
    }
    i = j;
  }
  return runs;
}

namespace {
// A write of at least this many fresh bytes writes them with the pool lock
// released (other requests' tree work and encryption go on meanwhile);
// smaller ones stay under it (the hand-over would cost more than it frees).
constexpr uint64_t kUnlockedWriteBytes = 64 << 10;
}  // namespace

Status Pool::Impl::WriteBlocks(uint64_t id, uint64_t first, std::span<const uint8_t> data) {
  // Which blocks are all zero (holes) depends on the data alone: found
  // before the lock, so other requests do not wait on the scan.
  const uint64_t n = data.size() / bs_;
  std::vector<uint8_t> zero(n);
  for (uint64_t i = 0; i < n; ++i) zero[i] = IsAllZero(data.subspan(i * bs_, bs_));
  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Writable());
  RETURN_IF_ERROR(CommitIfOverBound(lock));
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  if (e->read_only || e->snapshot) return Status::ReadOnly(EntryLabel(*e) + " is read-only");
  RETURN_IF_ERROR(InBounds(*e, first, n, "write"));
  // What is mapped now, and which blocks can be overwritten in place (a
  // data block allocated in this transaction and referenced once).
  std::vector<Mapping> existing(n);
  std::vector<bool> mapped(n, false);
  Status st = tree_->ForEach(e->root, first, first + n, [&](uint64_t k, const Mapping& m) {
    existing[k - first] = m;
    mapped[k - first] = true;
    return true;
  });
  if (!st.ok()) return st.WithContext(EntryLabel(*e));
  enum Kind : uint8_t { kHole, kInPlace, kNew };
  std::vector<Kind> kind(n);
  uint64_t need_new = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (zero[i]) {
      kind[i] = kHole;
      continue;
    }
    kind[i] = kNew;
    if (mapped[i] && sm().IsNew(existing[i].phys)) {
      ASSIGN_OR_RETURN(uint32_t c, sm().Get(existing[i].phys));
      if (c == 1) kind[i] = kInPlace;
    }
    if (kind[i] == kNew) ++need_new;
  }
  ASSIGN_OR_RETURN(uint64_t meta_cost, tree_->CostBound(e->root, first, first + n, n));
  const bool unlocked = need_new * bs_ >= kUnlockedWriteBytes && commits_waiting_ == 0;
  // An unlocked write's inserts may meet a tree other writes reshaped
  // meanwhile: twice the bound computed now is kept free for them.
  const uint64_t promised = unlocked ? 2 * meta_cost : 0;
  // Dirty before the space check, so the reserve counts its record.
  table_->MarkDirty(e);
  RETURN_IF_ERROR(EnsureSpace(need_new + meta_cost + promised, "the write"));
  std::vector<uint64_t> fresh;
  RETURN_IF_ERROR(sm().AllocMany(need_new, &fresh));
  std::vector<uint64_t> phys(n, 0);
  for (uint64_t i = 0, f = 0; i < n; ++i) {
    if (kind[i] == kNew) phys[i] = fresh[f++];
    if (kind[i] == kInPlace) phys[i] = existing[i].phys;
  }
  // Nothing references the fresh blocks until their mappings go in: a
  // failure gives them back.
  auto give_back = [&](Status cause) {
    for (uint64_t b : fresh) {
      auto d = sm().Dec(b);
      if (!d.ok()) return Abort(d.status());
    }
    return cause;
  };
  // Writes the runs of blocks of kind `k`, physically contiguous.
  auto write_runs = [&](Kind k) -> Status {
    for (uint64_t i = 0; i < n;) {
      if (kind[i] != k) {
        ++i;
        continue;
      }
      uint64_t j = i + 1;
      while (j < n && kind[j] == k && phys[j] == phys[j - 1] + 1) ++j;
      RETURN_IF_ERROR(store_->Write(phys[i] * bs_, data.subspan(i * bs_, (j - i) * bs_)));
      i = j;
    }
    return Status::Ok();
  };
  // In place and holes first, completely, under the lock: another write
  // may replace (and free) these blocks as soon as the lock is released.
  if (Status w = write_runs(kInPlace); !w.ok()) return give_back(w);
  if (!unlocked) {
    if (Status w = write_runs(kNew); !w.ok()) return give_back(w);
  }
  dirty_ = true;
  map_cache_->EraseRange(id, first, first + n);
  std::vector<Mapping> maps(n);
  // Maps the runs of consecutive blocks that `go` selects (maps[i] set),
  // one tree insert per run.
  auto map_runs = [&](auto go) -> Status {
    for (uint64_t i = 0; i < n;) {
      if (!go(i)) {
        ++i;
        continue;
      }
      uint64_t j = i + 1;
      while (j < n && go(j)) ++j;
      uint64_t added = 0;
      const Status s =
          tree_->InsertRun(&e->root, first + i, std::span(maps).subspan(i, j - i), &added);
      if (!s.ok()) return Abort(s.WithContext(EntryLabel(*e)));
      e->mapped_blocks += added;
      i = j;
    }
    return Status::Ok();
  };
  for (uint64_t i = 0; i < n; ++i) {
    if (kind[i] == kHole) {
      if (!mapped[i]) continue;
      bool removed = false;
      st = tree_->Remove(&e->root, first + i, &removed);
      if (!st.ok()) return Abort(st.WithContext(EntryLabel(*e)));
      if (removed) --e->mapped_blocks;
      continue;
    }
    if (kind[i] == kNew && unlocked) continue;  // mapped after its data is written
    maps[i] = Mapping{phys[i], DataChecksum(data.subspan(i * bs_, bs_), phys[i])};
  }
  RETURN_IF_ERROR(map_runs(
      [&](uint64_t i) { return kind[i] == kInPlace || (kind[i] == kNew && !unlocked); }));
  if (!unlocked) return Status::Ok();

  // The fresh blocks' data, with the lock released. No commit runs until
  // they are mapped (unmapped_writes_); Close waits for the store's users.
  const uint64_t epoch = load_epoch_;
  promised_meta_ += promised;
  ++unmapped_writes_;
  io_in_flight_.fetch_add(1);
  lock.unlock();
  Status w = write_runs(kNew);
  for (uint64_t i = 0; w.ok() && i < n; ++i) {
    if (kind[i] == kNew) {
      maps[i] = Mapping{phys[i], DataChecksum(data.subspan(i * bs_, bs_), phys[i])};
    }
  }
  lock.lock();
  io_in_flight_.fetch_sub(1);
  if (closing_.load()) io_idle_.notify_all();
  if (--unmapped_writes_ == 0) unmapped_done_.notify_all();
  promised_meta_ -= promised;
  // A failure elsewhere abandoned the transaction meanwhile: the fresh
  // blocks were allocated in it and went with it.
  if (epoch != load_epoch_) {
    return w.ok() ? Status::IoError("the pool abandoned its transaction during the write "
                                    "(an error in another request)")
                  : w;
  }
  if (!w.ok()) return give_back(w);
  if (Status u = Usable(); !u.ok()) return give_back(u);
  // The entry may have been shrunk meanwhile (deleted and rolled back it
  // cannot be: this device holds it).
  ASSIGN_OR_RETURN(e, FindId(id));
  if (!e) return give_back(Status::NotFound("volume was deleted"));
  if (Status b = InBounds(*e, first, n, "write"); !b.ok()) return give_back(b);
  table_->MarkDirty(e);
  map_cache_->EraseRange(id, first, first + n);
  return map_runs([&](uint64_t i) { return kind[i] == kNew; });
}

Status Pool::Impl::PrepareRemove(TableEntry& e, uint64_t first, uint64_t end) {
  ASSIGN_OR_RETURN(uint64_t cost, tree_->CostBound(e.root, first, end, 0));
  // Dirty before the space check, so the reserve counts its record.
  table_->MarkDirty(&e);
  return EnsureSpace(cost, "the discard");
}

Status Pool::Impl::RemoveMappings(uint64_t id, uint64_t first, uint64_t end) {
  uint64_t pos = first;
  while (pos < end) {
    ASSIGN_OR_RETURN(TableEntry * cur, FindId(id));
    if (!cur) return Status::Internal("entry vanished");
    std::vector<uint64_t> keys;
    RETURN_IF_ERROR(tree_->ForEach(cur->root, pos, end, [&](uint64_t k, const Mapping&) {
      keys.push_back(k);
      return keys.size() < 4096;
    }));
    if (keys.empty()) break;
    dirty_ = true;
    map_cache_->EraseRange(id, keys.front(), keys.back() + 1);
    for (uint64_t k : keys) {
      bool removed = false;
      RETURN_IF_ERROR(tree_->Remove(&cur->root, k, &removed));
      if (removed) --cur->mapped_blocks;
    }
    pos = keys.back() + 1;
  }
  return Status::Ok();
}

Status Pool::Impl::DiscardBlocks(uint64_t id, uint64_t first, uint64_t count) {
  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Writable());
  RETURN_IF_ERROR(CommitIfOverBound(lock));
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  if (e->read_only || e->snapshot) return Status::ReadOnly(EntryLabel(*e) + " is read-only");
  RETURN_IF_ERROR(InBounds(*e, first, count, "discard"));
  RETURN_IF_ERROR(PrepareRemove(*e, first, first + count));
  Status st = RemoveMappings(id, first, first + count);
  return st.ok() ? st : Abort(st);
}

Result<std::vector<Extent>> Pool::Impl::Extents(uint64_t id, uint64_t first, uint64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  RETURN_IF_ERROR(InBounds(*e, first, count, "allocation query"));
  std::vector<Extent> out;
  RETURN_IF_ERROR(tree_->ForEach(e->root, first, first + count, [&](uint64_t k, const Mapping&) {
    uint64_t off = k * bs_;
    if (!out.empty() && out.back().end() == off) {
      out.back().length += bs_;
    } else {
      out.push_back(Extent{off, bs_});
    }
    return true;
  }));
  return out;
}

Status Pool::Impl::FlushVolume(bool read_only) {
  std::unique_lock<std::mutex> lock(mu_);
  return read_only ? Usable() : CommitWhenMapped(lock);
}

uint64_t Pool::Impl::VolumeBlocks(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  // A deleted entry has no blocks; an unreadable one reports none either
  // (every I/O then fails with the reason). On a closed pool the size at
  // close, so I/O fails saying the pool is closed.
  if (!tm_) {
    auto it = closed_sizes_.find(id);
    return it == closed_sizes_.end() ? 0 : it->second;
  }
  auto e = FindId(id);
  return e.ok() && *e ? (*e)->size_bytes / bs_ : 0;
}

std::string Pool::Impl::DescribeVolume(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!tm_) return "pool volume on a closed pool";
  auto e = FindId(id);
  if (!e.ok()) return "pool volume (entry unreadable: " + e.status().message() + ")";
  return *e ? "pool volume " + (*e)->name : "deleted pool volume";
}

// ---------------------------------------------------------------- device

namespace {

// A pool volume or snapshot as a BlockDevice. Holds the entry by id, so a
// rename is seen and a delete makes further calls NotFound; holds the
// pool's state by shared_ptr, so it may outlive the Pool (calls then fail:
// the pool is closed). While it lives, the entry is in use (pool.h).
class VolumeDevice final : public BlockDevice {
 public:
  VolumeDevice(std::shared_ptr<Pool::Impl> p, uint64_t id, bool ro, uint64_t token)
      : p_(std::move(p)), id_(id), ro_(ro), token_(token), bs_(p_->block_size()) {}
  ~VolumeDevice() override { p_->ReleaseUser(token_); }

  uint32_t block_size() const override { return bs_; }
  uint64_t block_count() const override { return p_->VolumeBlocks(id_); }
  DeviceCapabilities capabilities() const override {
    DeviceCapabilities c;
    c.read_only = ro_;
    c.unwritten_reads_zero = true;
    c.discard_supported = true;
    c.discard_zeroes = true;
    c.holes_read_zero = true;
    c.persistent = true;
    return c;
  }
  std::string describe() const override { return p_->DescribeVolume(id_); }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override {
    return p_->ReadBlocks(id_, offset / bs_, out);
  }
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    return p_->WriteBlocks(id_, offset / bs_, data);
  }
  Status DoFlush() override { return p_->FlushVolume(ro_); }
  Status DoDiscard(uint64_t offset, uint64_t length) override {
    return p_->DiscardBlocks(id_, offset / bs_, length / bs_);
  }
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override {
    return DoDiscard(offset, length);
  }
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override {
    return p_->Extents(id_, offset / bs_, length / bs_);
  }

 private:
  const std::shared_ptr<Pool::Impl> p_;
  const uint64_t id_;
  const bool ro_;
  const uint64_t token_;
  const uint32_t bs_;
};

}  // namespace

std::unique_ptr<BlockDevice> MakeVolumeDevice(std::shared_ptr<Pool::Impl> impl, uint64_t id,
                                              bool read_only, uint64_t token) {
  return std::make_unique<VolumeDevice>(std::move(impl), id, read_only, token);
}

}  // namespace stack::pool

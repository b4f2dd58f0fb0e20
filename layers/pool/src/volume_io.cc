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

using LogicalMapping = std::pair<uint64_t, Mapping>;  // logical block, mapping

// The entry's mappings with keys in [first, end), in key order.
Result<std::vector<LogicalMapping>> Mappings(Pool::Impl& p, const TableEntry& e, uint64_t first,
                                             uint64_t end) {
  std::vector<LogicalMapping> maps;
  Status st = p.tree->ForEach(e.root, first, end, [&](uint64_t k, const Mapping& m) {
    maps.emplace_back(k, m);
    return true;
  });
  if (!st.ok()) return st.WithContext(EntryLabel(e));
  return maps;
}

// End (exclusive) of the run starting at maps[i]: logically and physically
// consecutive, at most `cap` blocks.
size_t RunEnd(const std::vector<LogicalMapping>& maps, size_t i, size_t cap) {
  size_t j = i + 1;
  while (j < maps.size() && j - i < cap && maps[j].first == maps[j - 1].first + 1 &&
         maps[j].second.phys == maps[j - 1].second.phys + 1) {
    ++j;
  }
  return j;
}

// Reads one physically contiguous run into dst (run.size() blocks) and
// checks every block's checksum.
Status ReadRun(Pool::Impl& p, const TableEntry& e, std::span<const LogicalMapping> run,
               std::span<uint8_t> dst) {
  const uint64_t phys0 = run.front().second.phys;
  if (phys0 < kFirstFreeBlock || run.back().second.phys >= p.sm->nr_blocks()) {
    return Status::Corruption(EntryLabel(e) + " logical block " +
                              std::to_string(run.front().first) +
                              " maps outside the pool (physical block " + std::to_string(phys0) +
                              ")");
  }
  RETURN_IF_ERROR(p.store->Read(phys0 * p.bs, dst));
  for (size_t k = 0; k < run.size(); ++k) {
    if (DataChecksum(dst.subspan(k * p.bs, p.bs), run[k].second.phys) != run[k].second.csum) {
      return Status::Corruption(EntryLabel(e) + " logical block " +
                                std::to_string(run[k].first) + " (physical block " +
                                std::to_string(run[k].second.phys) +
                                "): data checksum mismatch");
    }
  }
  return Status::Ok();
}

}  // namespace

// Bounds are checked here, under the lock that performs the I/O: the
// BlockDevice wrapper's own check ran under an earlier acquisition, and a
// Resize on another thread may have shrunk the entry since.
Status Pool::Impl::InBounds(const TableEntry& e, uint64_t first, uint64_t count, const char* op) {
  const uint64_t blocks = e.size_bytes / bs;
  if (first > blocks || count > blocks - first) {
    return Status::OutOfRange(std::string(op) + " of blocks " + std::to_string(first) + "+" +
                              std::to_string(count) + " is past the end of " + EntryLabel(e) +
                              " (" + std::to_string(blocks) + " blocks)");
  }
  return Status::Ok();
}

Status Pool::Impl::ReadBlocks(uint64_t id, uint64_t first, std::span<uint8_t> out) {
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  uint64_t n = out.size() / bs;
  RETURN_IF_ERROR(InBounds(*e, first, n, "read"));
  if (n == 1) {
    // One block (the common random-read case): a plain lookup, without the
    // range walk's callback and vector.
    auto found = tree->Lookup(e->root, first);
    if (!found.ok()) return found.status().WithContext(EntryLabel(*e));
    if (!found->has_value()) {
      std::memset(out.data(), 0, out.size());
      return Status::Ok();
    }
    const Mapping m = **found;
    if (m.phys < kFirstFreeBlock || m.phys >= sm->nr_blocks()) {
      return Status::Corruption(EntryLabel(*e) + " logical block " + std::to_string(first) +
                                " maps outside the pool (physical block " +
                                std::to_string(m.phys) + ")");
    }
    RETURN_IF_ERROR(store->Read(m.phys * bs, out));
    if (DataChecksum(out, m.phys) != m.csum) {
      return Status::Corruption(EntryLabel(*e) + " logical block " + std::to_string(first) +
                                " (physical block " + std::to_string(m.phys) +
                                "): data checksum mismatch");
    }
    return Status::Ok();
  }
  std::memset(out.data(), 0, out.size());
  ASSIGN_OR_RETURN(std::vector<LogicalMapping> maps, Mappings(*this, *e, first, first + n));
  for (size_t i = 0; i < maps.size();) {
    const size_t j = RunEnd(maps, i, 256);
    RETURN_IF_ERROR(ReadRun(*this, *e, std::span(maps).subspan(i, j - i),
                            out.subspan((maps[i].first - first) * bs, (j - i) * bs)));
    i = j;
  }
  return Status::Ok();
}

Result<std::vector<StoredRun>> Pool::Impl::Runs(const TableEntry& e, uint64_t first,
                                               uint64_t count) {
  ASSIGN_OR_RETURN(std::vector<LogicalMapping> maps, Mappings(*this, e, first, first + count));
  std::vector<StoredRun> runs;
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < maps.size();) {
    const size_t j = RunEnd(maps, i, 256);
    buf.resize((j - i) * bs);
    RETURN_IF_ERROR(ReadRun(*this, e, std::span(maps).subspan(i, j - i), buf));
    for (size_t k = i; k < j; ++k) {
      const bool zero = IsAllZero(std::span(buf).subspan((k - i) * bs, bs));
      StoredRun* last = runs.empty() ? nullptr : &runs.back();
      if (last && last->zero == zero && last->offset + last->length == maps[k].first * bs &&
          last->store_offset + last->length == maps[k].second.phys * bs) {
        last->length += bs;
      } else {
        runs.push_back(StoredRun{maps[k].first * bs, maps[k].second.phys * bs, bs, zero});
      }
    }
    i = j;
  }
  return runs;
}

Status Pool::Impl::WriteBlocks(uint64_t id, uint64_t first, std::span<const uint8_t> data) {
  RETURN_IF_ERROR(Writable());
  if (sm->txn_entries() > max_txn_entries) RETURN_IF_ERROR(CommitLocked());
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  if (e->read_only || e->snapshot) return Status::ReadOnly(EntryLabel(*e) + " is read-only");
  uint64_t n = data.size() / bs;
  RETURN_IF_ERROR(InBounds(*e, first, n, "write"));
  // What is mapped now, and which blocks can be overwritten in place (a
  // data block allocated in this transaction and referenced once).
  std::vector<Mapping> existing(n);
  std::vector<bool> mapped(n, false);
  Status st = tree->ForEach(e->root, first, first + n, [&](uint64_t k, const Mapping& m) {
    existing[k - first] = m;
    mapped[k - first] = true;
    return true;
  });
  if (!st.ok()) return st.WithContext(EntryLabel(*e));
  enum Kind : uint8_t { kHole, kInPlace, kNew };
  std::vector<Kind> kind(n);
  uint64_t need_new = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (IsAllZero(data.subspan(i * bs, bs))) {
      kind[i] = kHole;
      continue;
    }
    kind[i] = kNew;
    if (mapped[i] && sm->IsNew(existing[i].phys)) {
      ASSIGN_OR_RETURN(uint32_t c, sm->Get(existing[i].phys));
      if (c == 1) kind[i] = kInPlace;
    }
    if (kind[i] == kNew) ++need_new;
  }
  ASSIGN_OR_RETURN(uint64_t meta_cost, tree->CostBound(e->root, first, first + n, n));
  // Dirty before the space check, so the reserve counts its record.
  table->MarkDirty(e);
  RETURN_IF_ERROR(EnsureSpace(need_new + meta_cost, "the write"));
  std::vector<uint64_t> fresh;
  RETURN_IF_ERROR(sm->AllocMany(need_new, &fresh));
  std::vector<uint64_t> phys(n, 0);
  for (uint64_t i = 0, f = 0; i < n; ++i) {
    if (kind[i] == kNew) phys[i] = fresh[f++];
    if (kind[i] == kInPlace) phys[i] = existing[i].phys;
  }
  // Data first, in runs of physically contiguous blocks.
  for (uint64_t i = 0; i < n;) {
    if (kind[i] == kHole) {
      ++i;
      continue;
    }
    uint64_t j = i + 1;
    while (j < n && kind[j] != kHole && phys[j] == phys[j - 1] + 1) ++j;
    Status w = store->Write(phys[i] * bs, data.subspan(i * bs, (j - i) * bs));
    if (!w.ok()) {
      // Nothing references the fresh blocks yet: give them back.
      for (uint64_t b : fresh) {
        auto d = sm->Dec(b);
        if (!d.ok()) return Abort(d.status());
      }
      return w;
    }
    i = j;
  }
  // Then the mappings.
  dirty = true;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t key = first + i;
    if (kind[i] == kHole) {
      if (!mapped[i]) continue;
      bool removed = false;
      st = tree->Remove(&e->root, key, &removed);
      if (!st.ok()) return Abort(st.WithContext(EntryLabel(*e)));
      if (removed) --e->mapped_blocks;
      continue;
    }
    Mapping m{phys[i], DataChecksum(data.subspan(i * bs, bs), phys[i])};
    bool added = false;
    st = tree->Insert(&e->root, key, m, &added);
    if (!st.ok()) return Abort(st.WithContext(EntryLabel(*e)));
    if (added) ++e->mapped_blocks;
  }
  return Status::Ok();
}

Status Pool::Impl::RemoveRange(TableEntry& e, uint64_t first, uint64_t end) {
  ASSIGN_OR_RETURN(uint64_t cost, tree->CostBound(e.root, first, end, 0));
  table->MarkDirty(&e);
  RETURN_IF_ERROR(EnsureSpace(cost, "the discard"));
  uint64_t id = e.id;
  uint64_t pos = first;
  while (pos < end) {
    auto found = FindId(id);
    if (!found.ok() || !*found) return Abort(found.ok() ? Status::Internal("entry vanished") : found.status());
    TableEntry* cur = *found;
    std::vector<uint64_t> keys;
    Status st = tree->ForEach(cur->root, pos, end, [&](uint64_t k, const Mapping&) {
      keys.push_back(k);
      return keys.size() < 4096;
    });
    if (!st.ok()) return Abort(st);
    if (keys.empty()) break;
    dirty = true;
    for (uint64_t k : keys) {
      bool removed = false;
      st = tree->Remove(&cur->root, k, &removed);
      if (!st.ok()) return Abort(st);
      if (removed) --cur->mapped_blocks;
    }
    pos = keys.back() + 1;
  }
  return Status::Ok();
}

Status Pool::Impl::DiscardBlocks(uint64_t id, uint64_t first, uint64_t count) {
  RETURN_IF_ERROR(Writable());
  if (sm->txn_entries() > max_txn_entries) RETURN_IF_ERROR(CommitLocked());
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  if (e->read_only || e->snapshot) return Status::ReadOnly(EntryLabel(*e) + " is read-only");
  RETURN_IF_ERROR(InBounds(*e, first, count, "discard"));
  return RemoveRange(*e, first, first + count);
}

Result<std::vector<Extent>> Pool::Impl::Extents(uint64_t id, uint64_t first, uint64_t count) {
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, FindId(id));
  if (!e) return Status::NotFound("volume was deleted");
  RETURN_IF_ERROR(InBounds(*e, first, count, "allocation query"));
  std::vector<Extent> out;
  RETURN_IF_ERROR(tree->ForEach(e->root, first, first + count, [&](uint64_t k, const Mapping&) {
    uint64_t off = k * bs;
    if (!out.empty() && out.back().end() == off) {
      out.back().length += bs;
    } else {
      out.push_back(Extent{off, bs});
    }
    return true;
  }));
  return out;
}

// ---------------------------------------------------------------- device

namespace {

// A pool volume or snapshot as a BlockDevice. Holds the entry by id, so a
// rename is seen and a delete makes further calls NotFound.
class VolumeDevice final : public BlockDevice {
 public:
  VolumeDevice(Pool::Impl* p, uint64_t id, bool ro) : p_(p), id_(id), ro_(ro) {}

  uint32_t block_size() const override { return p_->bs; }
  uint64_t block_count() const override {
    std::lock_guard<std::mutex> lock(p_->mu);
    // A deleted entry has no blocks; an unreadable one reports none either
    // (every I/O then fails with the reason).
    auto e = p_->FindId(id_);
    return e.ok() && *e ? (*e)->size_bytes / p_->bs : 0;
  }
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
  std::string describe() const override {
    std::lock_guard<std::mutex> lock(p_->mu);
    auto e = p_->FindId(id_);
    if (!e.ok()) return "pool volume (entry unreadable: " + e.status().message() + ")";
    return *e ? "pool volume " + (*e)->name : "deleted pool volume";
  }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override {
    std::lock_guard<std::mutex> lock(p_->mu);
    return p_->ReadBlocks(id_, offset / p_->bs, out);
  }
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard<std::mutex> lock(p_->mu);
    return p_->WriteBlocks(id_, offset / p_->bs, data);
  }
  Status DoFlush() override {
    std::lock_guard<std::mutex> lock(p_->mu);
    if (ro_) return p_->Usable();
    return p_->CommitLocked();
  }
  Status DoDiscard(uint64_t offset, uint64_t length) override {
    std::lock_guard<std::mutex> lock(p_->mu);
    return p_->DiscardBlocks(id_, offset / p_->bs, length / p_->bs);
  }
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override {
    return DoDiscard(offset, length);
  }
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override {
    std::lock_guard<std::mutex> lock(p_->mu);
    return p_->Extents(id_, offset / p_->bs, length / p_->bs);
  }

 private:
  Pool::Impl* p_;
  uint64_t id_;
  bool ro_;
};

}  // namespace

std::unique_ptr<BlockDevice> MakeVolumeDevice(Pool::Impl* impl, uint64_t id, bool read_only) {
  return std::make_unique<VolumeDevice>(impl, id, read_only);
}

}  // namespace stack::pool

#include "entry_table.h"

#include <algorithm>
#include <cstring>

#include "block/endian.h"
#include "block/text.h"

namespace stack::pool {
namespace {


uint64_t PieceKey(uint64_t id, uint64_t piece) { return (id << EntryTable::kPieceBits) | piece; }

Mapping PieceValue(const uint8_t* p) { return Mapping{GetLE64(p), GetLE64(p + 8)}; }

void AppendPiece(std::vector<uint8_t>* out, const Mapping& m) {
  size_t o = out->size();
  out->resize(o + EntryTable::kPieceBytes);
  PutLE64(out->data() + o, m.phys);
  PutLE64(out->data() + o + 8, m.csum);
}

std::vector<uint8_t> PaddedRecord(const TableEntry& e) {
  std::vector<uint8_t> r = EncodeRecord(e);
  r.resize((r.size() + EntryTable::kPieceBytes - 1) / EntryTable::kPieceBytes *
           EntryTable::kPieceBytes);
  return r;
}

uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

EntryTable::EntryTable(TransactionManager* tm, uint32_t block_size)
    : tm_(tm), entries_(tm, block_size, kEntryTree),
      names_(tm, block_size, kNameTree) {}

void EntryTable::Reset(uint64_t entry_root, uint64_t name_root, uint64_t count,
                       uint64_t hidden_count, bool indexed) {
  entry_root_ = entry_root;
  name_root_ = name_root;
  count_ = count;
  hidden_ = indexed ? hidden_count : 0;
  indexed_ = indexed;
  loaded_.clear();
  dirty_.clear();
}

uint64_t EntryTable::NameBucket(const std::string& name) {
  const uint64_t h = Checksum(
      std::span(reinterpret_cast<const uint8_t*>(name.data()), name.size()), 0x6e616d65);
  // Below 2^63, so bucket + kSlots never wraps.
  return (h >> 1) & ~(kSlots - 1);
}

uint64_t EntryTable::UuidBucket(const std::array<uint8_t, 16>& uuid) {
  const uint64_t h = Checksum(uuid, 0x75756964);
  // Top bit set (names have it clear); below 2^63 + 2^62, so no wrap.
  return kUuidKeyBit | ((h >> 2) & ~(kSlots - 1));
}

uint64_t EntryTable::FamilyKey(const std::string& volume, uint64_t id) {
  const uint64_t h = Checksum(
      std::span(reinterpret_cast<const uint8_t*>(volume.data()), volume.size()), 0x66616d69);
  return kFamilyKeyBits | ((h >> 50) << 48) | id;  // id < 2^48
}

Result<std::vector<uint8_t>> EntryTable::ReadRecord(uint64_t id) {
  std::vector<uint8_t> rec;
  uint64_t next = 0;
  bool gap = false;
  RETURN_IF_ERROR(entries_.ForEach(entry_root_, PieceKey(id, 0), PieceKey(id + 1, 0),
                                   [&](uint64_t k, const Mapping& m) {
                                     if (k != PieceKey(id, next)) {
                                       gap = true;
                                       return false;
                                     }
                                     ++next;
                                     AppendPiece(&rec, m);
                                     return true;
                                   }));
  if (gap) {
    return Status::Corruption("entry tree: record of entry id " + std::to_string(id) +
                              " misses piece " + std::to_string(next));
  }
  return rec;
}

Result<TableEntry*> EntryTable::Get(uint64_t id) {
  auto it = loaded_.find(id);
  if (it != loaded_.end()) return &it->second.e;
  if (id == 0 || id >= kMaxId) return static_cast<TableEntry*>(nullptr);
  ASSIGN_OR_RETURN(std::vector<uint8_t> rec, ReadRecord(id));
  if (rec.empty()) return static_cast<TableEntry*>(nullptr);
  auto decoded = DecodeRecord(rec, tm_->sm().nr_blocks());
  if (!decoded.ok()) {
    return decoded.status().WithContext("entry tree: entry id " + std::to_string(id));
  }
  if (decoded->id != id || rec.size() != PaddedRecord(*decoded).size()) {
    return Status::Corruption("entry tree: record under entry id " + std::to_string(id) +
                              " does not belong there");
  }
  Loaded& l = loaded_[id];
  l.e = std::move(decoded).value();
  l.stored = std::move(rec);
  return &l.e;
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> EntryTable::Bucket(uint64_t b) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  RETURN_IF_ERROR(names_.ForEach(name_root_, b, b + kSlots, [&](uint64_t k, const Mapping& m) {
    out.emplace_back(m.phys, k);
    return true;
  }));
  return out;
}

Result<TableEntry*> EntryTable::Find(const std::string& name) {
  ASSIGN_OR_RETURN(auto slots, Bucket(NameBucket(name)));
  for (const auto& [id, key] : slots) {
    ASSIGN_OR_RETURN(TableEntry * e, Get(id));
    if (!e) {
      return Status::Corruption("name index: slot " + std::to_string(key) +
                                " names entry id " + std::to_string(id) + ", which does not exist");
    }
    if (e->name == name) return e;
  }
  return static_cast<TableEntry*>(nullptr);
}

Result<std::vector<TableEntry*>> EntryTable::FindUuid(const std::array<uint8_t, 16>& uuid) {
  std::vector<uint64_t> ids;
  if (indexed_) {
    ASSIGN_OR_RETURN(auto slots, Bucket(UuidBucket(uuid)));
    for (const auto& [id, key] : slots) ids.push_back(id);
  } else {
    RETURN_IF_ERROR(ForEach([&](const TableEntry& e) {
      if (e.uuid == uuid) ids.push_back(e.id);
      return Status::Ok();
    }));
  }
  std::vector<TableEntry*> out;
  for (uint64_t id : ids) {
    ASSIGN_OR_RETURN(TableEntry * e, Get(id));
    if (!e) {
      return Status::Corruption("uuid index: a slot names entry id " + std::to_string(id) +
                                ", which does not exist");
    }
    if (e->uuid == uuid) out.push_back(e);
  }
  return out;
}

Result<std::vector<uint64_t>> EntryTable::Family(const std::string& volume) {
  std::vector<uint64_t> ids;
  if (!indexed_) {
    RETURN_IF_ERROR(ForEach([&](const TableEntry& e) {
      if (VolumeOf(e.name) == volume) ids.push_back(e.id);
      return Status::Ok();
    }));
    return ids;
  }
  const uint64_t lo = FamilyKey(volume, 0), hi = lo + kMaxId;
  std::vector<uint64_t> candidates;
  RETURN_IF_ERROR(names_.ForEach(name_root_, lo, hi, [&](uint64_t, const Mapping& m) {
    candidates.push_back(m.phys);
    return true;
  }));
  for (uint64_t id : candidates) {
    ASSIGN_OR_RETURN(TableEntry * e, Get(id));
    if (!e) {
      return Status::Corruption("family index: a key names entry id " + std::to_string(id) +
                                ", which does not exist");
    }
    if (VolumeOf(e->name) == volume) ids.push_back(id);
  }
  return ids;
}

Result<std::vector<std::string>> EntryTable::HiddenNames() {
  std::vector<std::string> out;
  if (indexed_ && hidden_ == 0) return out;
  const uint64_t want = hidden_;
  bool done = false;  // stopped the walk early: every hidden entry found
  Status st = ForEach([&](const TableEntry& e) {
    if (IsHidden(e.name)) out.push_back(e.name);
    if (indexed_ && out.size() == want) {
      done = true;
      return Status::Internal("stop");
    }
    return Status::Ok();
  });
  if (!st.ok() && !done) return st;
  // The walk saw every entry and found fewer than counted: the count was
  // wrong (check reports it); take what the walk proves.
  if (!done) hidden_ = out.size();
  return out;
}

Result<uint64_t> EntryTable::UpgradeCost() {
  // Two new keys per entry (uuid and family): at most every name index
  // node is shadowed once, plus the leaves and splits the new keys need.
  ASSIGN_OR_RETURN(uint64_t whole, names_.CostBound(name_root_, 0, UINT64_MAX, 2 * count_));
  return whole + TreeWriteCost(2 * count_, Height(names_, name_root_), names_);
}

Status EntryTable::Upgrade() {
  struct Item {
    uint64_t id;
    std::array<uint8_t, 16> uuid;
    std::string name;
  };
  std::vector<Item> all;
  uint64_t hidden = 0;
  RETURN_IF_ERROR(ForEach([&](const TableEntry& e) {
    all.push_back({e.id, e.uuid, e.name});
    hidden += IsHidden(e.name);
    return Status::Ok();
  }));
  if (hidden > kMaxHidden) return Status::NoSpace("more hidden entries than format 4 counts");
  // Remove stray uuid and family keys (none in a sound format-3 pool).
  std::vector<uint64_t> stray;
  RETURN_IF_ERROR(names_.ForEach(name_root_, kUuidKeyBit, UINT64_MAX,
                                 [&](uint64_t k, const Mapping&) {
                                   stray.push_back(k);
                                   return true;
                                 }));
  for (uint64_t k : stray) {
    bool removed = false;
    RETURN_IF_ERROR(names_.Remove(&name_root_, k, &removed));
  }
  for (const Item& i : all) {
    RETURN_IF_ERROR(AddUuid(i.uuid, i.id));
    RETURN_IF_ERROR(AddFamily(i.name, i.id));
  }
  hidden_ = hidden;
  indexed_ = true;
  return Status::Ok();
}

Status EntryTable::AddSlot(uint64_t b, uint64_t id, const std::string& what) {
  ASSIGN_OR_RETURN(auto slots, Bucket(b));
  uint64_t key = b;
  for (const auto& s : slots) {
    if (s.second != key) break;  // slots come sorted: the first gap is free
    ++key;
  }
  if (key == b + kSlots) return Status::Internal("name index: bucket of " + what + " is full");
  bool added = false;
  return names_.Insert(&name_root_, key, Mapping{id, 0}, &added);
}

Status EntryTable::RemoveSlot(uint64_t b, uint64_t id, const std::string& what) {
  ASSIGN_OR_RETURN(auto slots, Bucket(b));
  for (const auto& [sid, key] : slots) {
    if (sid != id) continue;
    bool removed = false;
    return names_.Remove(&name_root_, key, &removed);
  }
  return Status::Corruption("name index: no slot for " + what + " (entry id " +
                            std::to_string(id) + ")");
}

Status EntryTable::AddName(const std::string& name, uint64_t id) {
  return AddSlot(NameBucket(name), id, "'" + name + "'");
}
Status EntryTable::RemoveName(const std::string& name, uint64_t id) {
  return RemoveSlot(NameBucket(name), id, "'" + name + "'");
}
Status EntryTable::AddFamily(const std::string& name, uint64_t id) {
  bool added = false;
  return names_.Insert(&name_root_, FamilyKey(VolumeOf(name), id), Mapping{id, 0}, &added);
}
Status EntryTable::RemoveFamily(const std::string& name, uint64_t id) {
  bool removed = false;
  RETURN_IF_ERROR(names_.Remove(&name_root_, FamilyKey(VolumeOf(name), id), &removed));
  if (!removed) {
    return Status::Corruption("family index: no key for '" + name + "' (entry id " +
                              std::to_string(id) + ")");
  }
  return Status::Ok();
}
Status EntryTable::AddUuid(const std::array<uint8_t, 16>& uuid, uint64_t id) {
  return AddSlot(UuidBucket(uuid), id, "uuid " + FormatUuid(uuid));
}
Status EntryTable::RemoveUuid(const std::array<uint8_t, 16>& uuid, uint64_t id) {
  return RemoveSlot(UuidBucket(uuid), id, "uuid " + FormatUuid(uuid));
}

Result<TableEntry*> EntryTable::Add(TableEntry e) {
  const uint64_t id = e.id;
  const bool hidden = IsHidden(e.name);
  if (hidden && hidden_ >= kMaxHidden) {
    return Status::NoSpace("pool holds " + std::to_string(hidden_) + " hidden entries, the most it counts");
  }
  RETURN_IF_ERROR(AddName(e.name, id));
  if (indexed_) {
    RETURN_IF_ERROR(AddUuid(e.uuid, id));
    RETURN_IF_ERROR(AddFamily(e.name, id));
  }
  hidden_ += hidden;
  Loaded& l = loaded_[id];
  l.e = std::move(e);
  l.stored.clear();
  dirty_.insert(id);
  ++count_;
  return &l.e;
}

Status EntryTable::Remove(uint64_t id) {
  ASSIGN_OR_RETURN(TableEntry * e, Get(id));
  if (!e) return Status::Internal("entry table: removing a missing entry");
  RETURN_IF_ERROR(RemoveName(e->name, id));
  if (indexed_) {
    RETURN_IF_ERROR(RemoveUuid(e->uuid, id));
    RETURN_IF_ERROR(RemoveFamily(e->name, id));
  }
  hidden_ -= IsHidden(e->name) && hidden_ > 0;
  const uint64_t pieces = loaded_[id].stored.size() / kPieceBytes;
  for (uint64_t i = 0; i < pieces; ++i) {
    bool removed = false;
    RETURN_IF_ERROR(entries_.Remove(&entry_root_, PieceKey(id, i), &removed));
  }
  loaded_.erase(id);
  dirty_.erase(id);
  --count_;
  return Status::Ok();
}

Status EntryTable::Rename(TableEntry* e, const std::string& new_name) {
  const bool was = IsHidden(e->name), is = IsHidden(new_name);
  if (is && !was && hidden_ >= kMaxHidden) {
    return Status::NoSpace("pool holds " + std::to_string(hidden_) + " hidden entries, the most it counts");
  }
  RETURN_IF_ERROR(RemoveName(e->name, e->id));
  RETURN_IF_ERROR(AddName(new_name, e->id));
  if (indexed_ && VolumeOf(e->name) != VolumeOf(new_name)) {
    RETURN_IF_ERROR(RemoveFamily(e->name, e->id));
    RETURN_IF_ERROR(AddFamily(new_name, e->id));
  }
  if (was != is) hidden_ = is ? hidden_ + 1 : hidden_ - (hidden_ > 0);
  e->name = new_name;
  MarkDirty(e);
  return Status::Ok();
}

Status EntryTable::WriteRecord(Loaded& l) {
  std::vector<uint8_t> rec = PaddedRecord(l.e);
  const uint64_t id = l.e.id;
  const size_t n_new = rec.size() / kPieceBytes, n_old = l.stored.size() / kPieceBytes;
  for (size_t i = 0; i < n_new; ++i) {
    const uint8_t* p = rec.data() + i * kPieceBytes;
    if (i < n_old && std::memcmp(p, l.stored.data() + i * kPieceBytes, kPieceBytes) == 0) continue;
    bool added = false;
    RETURN_IF_ERROR(entries_.Insert(&entry_root_, PieceKey(id, i), PieceValue(p), &added));
  }
  for (size_t i = n_new; i < n_old; ++i) {
    bool removed = false;
    RETURN_IF_ERROR(entries_.Remove(&entry_root_, PieceKey(id, i), &removed));
  }
  l.stored = std::move(rec);
  return Status::Ok();
}

Status EntryTable::Flush() {
  for (uint64_t id : dirty_) {
    auto it = loaded_.find(id);
    if (it == loaded_.end()) return Status::Internal("entry table: dirty entry not loaded");
    RETURN_IF_ERROR(WriteRecord(it->second));
  }
  dirty_.clear();
  return Status::Ok();
}

void EntryTable::Trim() {
  // Entries in use come back with one tree lookup; a bound on what is
  // held keeps memory independent of the number of entries.
  constexpr size_t kKeep = 1024;
  if (loaded_.size() > kKeep && dirty_.empty()) loaded_.clear();
}

Status EntryTable::ForEachRecord(
    const std::function<bool(uint64_t, std::span<const uint8_t>)>& fn) {
  uint64_t cur = 0, next = 0;
  bool broken = false, more = true;
  std::vector<uint8_t> rec;
  auto emit = [&] {
    if (cur != 0 && more)
      more = fn(cur, broken ? std::span<const uint8_t>() : std::span<const uint8_t>(rec));
    return more;
  };
  RETURN_IF_ERROR(entries_.ForEach(entry_root_, 0, UINT64_MAX, [&](uint64_t k, const Mapping& m) {
    const uint64_t id = k >> kPieceBits, piece = k & ((uint64_t(1) << kPieceBits) - 1);
    if (id != cur) {
      if (!emit()) return false;
      cur = id;
      next = 0;
      broken = false;
      rec.clear();
    }
    if (piece != next) broken = true;
    ++next;
    AppendPiece(&rec, m);
    return true;
  }));
  emit();
  return Status::Ok();
}

Status EntryTable::ForEach(const std::function<Status(const TableEntry&)>& fn) {
  RETURN_IF_ERROR(Flush());
  Status first;
  RETURN_IF_ERROR(ForEachRecord([&](uint64_t id, std::span<const uint8_t> rec) {
    if (rec.empty()) {
      first = Status::Corruption("entry tree: record of entry id " + std::to_string(id) +
                                 " has missing pieces");
      return false;
    }
    auto e = DecodeRecord(rec, tm_->sm().nr_blocks());
    if (!e.ok()) {
      first = e.status().WithContext("entry tree: entry id " + std::to_string(id));
    } else if (e->id != id) {
      first = Status::Corruption("entry tree: record under entry id " + std::to_string(id) +
                                 " does not belong there");
    } else {
      first = fn(*e);
    }
    return first.ok();
  }));
  return first;
}

uint32_t EntryTable::Height(const BTree& t, uint64_t root) {
  if (root == 0) return 0;
  auto b = tm_->ReadNode(root, t.kind());
  // An unreadable root fails the operation elsewhere; assume a tall tree.
  if (!b.ok()) return 32;
  return node::Level(**b) + 1;
}

uint64_t EntryTable::TreeWriteCost(uint64_t keys, uint32_t height, const BTree& t) {
  // Inserting `keys` adjacent keys: one shadowed root-to-leaf path; new
  // leaves (each split leaves at least half a leaf free for the next
  // keys); at each level above, at most one split plus one per half an
  // internal node of new children; a new root.
  const uint64_t half = std::max<uint64_t>(1, t.leaf_capacity() / 2);
  const uint64_t int_half = std::max<uint64_t>(1, t.internal_capacity() / 2);
  const uint64_t leaves = CeilDiv(keys, half) + 1;
  return (uint64_t(height) + 1) + leaves + uint64_t(height) * (1 + CeilDiv(leaves, int_half)) + 1;
}

uint64_t EntryTable::WriteCost(uint64_t record_bytes) {
  return TreeWriteCost(CeilDiv(record_bytes, kPieceBytes), Height(entries_, entry_root_), entries_);
}

uint64_t EntryTable::AddCost(const TableEntry& e) {
  // Its name slot, its uuid slot and its family key.
  return WriteCost(RecordBytes(e)) + 3 * TreeWriteCost(1, Height(names_, name_root_), names_);
}

uint64_t EntryTable::Allowance() {
  // Removing one record (its pieces in at most two leaves under one
  // shadowed path) and its name.
  // name, uuid slot and family key.
  return (uint64_t(Height(entries_, entry_root_)) + 2) +
         3 * (uint64_t(Height(names_, name_root_)) + 1);
}

uint64_t EntryTable::ReserveBlocks() {
  uint64_t total = 0;
  for (uint64_t id : dirty_) {
    auto it = loaded_.find(id);
    if (it != loaded_.end()) total += WriteCost(RecordBytes(it->second.e));
  }
  return total + Allowance();
}

Result<uint64_t> EntryTable::RemoveCost(uint64_t id) {
  ASSIGN_OR_RETURN(uint64_t nodes,
                   entries_.RangeNodes(entry_root_, PieceKey(id, 0), PieceKey(id + 1, 0)));
  return nodes + 3 * (uint64_t(Height(names_, name_root_)) + 1);
}

uint64_t EntryTable::RenameCost(const TableEntry& e, const std::string& new_name) {
  TableEntry renamed = e;
  renamed.name = new_name;
  // Each of the four name-index changes shadows a path and may split a
  // node at every level.
  return WriteCost(std::max(RecordBytes(e), RecordBytes(renamed))) +
         4 * (2 * uint64_t(Height(names_, name_root_)) + 2);
}

Result<uint64_t> EntryTable::ChangeCost(uint64_t lo_id, uint64_t hi_id, uint64_t n) {
  // Each node holding pieces of the records may be shadowed once; longer
  // names add pieces, which may split leaves.
  ASSIGN_OR_RETURN(uint64_t rec, entries_.CostBound(entry_root_, PieceKey(lo_id, 0),
                                                    PieceKey(hi_id + 1, 0),
                                                    n * CeilDiv(kMaxNameLen, kPieceBytes)));
  // Name slots and family keys: removed and added again.
  ASSIGN_OR_RETURN(uint64_t whole, names_.CostBound(name_root_, 0, UINT64_MAX, 4 * n));
  return rec + std::min<uint64_t>(whole, n * 8 * (uint64_t(Height(names_, name_root_)) + 2));
}

}  // namespace stack::pool

// EntryTable: the pool's volumes and snapshots, kept on disk in two
// copy-on-write btrees that go through the block cache like every other
// metadata block (spec/pool-format.md, "Entry tree" and "Name index"):
//   entry tree  key (id << 16) | piece   value: 16 bytes of the entry's record
//   name index  key bucket(name) | slot  value: {entry id, 0}   (top bit 0)
//               key ubucket(uuid) | slot value: {entry id, 0}   (top bits 10:
//               the uuid index, format 4)
//               key family(V) | id       value: {entry id, 0}   (top bits 11:
//               the family index of volume V and its snapshots V@*, format 4)
// and the superblock keeps the number of hidden entries (names starting
// with '.'), so finding an entry by name or uuid, and learning that there
// is no hidden entry, cost a lookup whatever the number of entries; a
// commit writes the few nodes a change touched, whatever the number of
// entries, and memory holds only the entries in use.
//
// Entries are handed out as pointers into an in-memory set of loaded
// entries; a caller changes one and calls MarkDirty, and Flush (commit step
// 1) writes every dirty record back into the entry tree, piece by piece,
// only the pieces that changed. The name index is updated at once by Add,
// Remove and Rename. Pointers stay valid until Trim, Reset or Remove of
// that entry.
//
// On error the transaction must be abandoned (the pool reloads the last
// commit, which Resets the table).
// Thread-safety: none; the pool serialises access.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "btree.h"
#include "entry_record.h"

namespace stack::pool {

class EntryTable {
 public:
  EntryTable(TransactionManager* tm, uint32_t block_size);

  // Forgets everything in memory and takes the committed state. indexed:
  // the state has the uuid index and hidden_count is exact (format 4);
  // otherwise (format 3) hidden_count is ignored, FindUuid and HiddenNames
  // walk the entry tree, and Upgrade builds both.
  void Reset(uint64_t entry_root, uint64_t name_root, uint64_t count, uint64_t hidden_count,
             bool indexed);
  uint64_t entry_root() const { return entry_root_; }
  uint64_t name_root() const { return name_root_; }
  uint64_t count() const { return count_; }
  uint64_t hidden_count() const { return hidden_; }
  bool indexed() const { return indexed_; }

  // Hidden entries: names starting with '.' (unfinished builds, which the
  // layer above names so). The superblock counts them.
  static bool IsHidden(const std::string& name) { return !name.empty() && name[0] == '.'; }
  // Most hidden entries a pool holds (the superblock's u32).
  static constexpr uint64_t kMaxHidden = UINT32_MAX;

  // The entry with this id or name; nullptr if there is none.
  Result<TableEntry*> Get(uint64_t id);
  Result<TableEntry*> Find(const std::string& name);
  // The entries with this uuid (uuids are not required to be unique), in
  // slot order. Indexed: one bucket of the uuid index; else a walk.
  Result<std::vector<TableEntry*>> FindUuid(const std::array<uint8_t, 16>& uuid);
  // Ids of the entries of volume `volume`'s family: itself and every
  // `volume@S`, in id order. Indexed: one range of the family index (its
  // entries, plus the rare ones whose volume part shares the 14-bit hash);
  // else a walk.
  Result<std::vector<uint64_t>> Family(const std::string& volume);
  // Names of the hidden entries: nothing read when the count is 0; else a
  // walk of the entry tree that stops once it has found them all (a walk
  // that reaches the end corrects a count found too high).
  Result<std::vector<std::string>> HiddenNames();
  // Format 3 -> 4: adds every entry's uuid slot and counts the hidden
  // entries (one walk). REQUIRES: !indexed(); UpgradeCost() blocks free.
  Status Upgrade();
  Result<uint64_t> UpgradeCost();
  // Adds a new entry. REQUIRES: no entry has e.id or e.name; e.id < 2^48.
  // NoSpace past kMaxHidden hidden entries.
  Result<TableEntry*> Add(TableEntry e);
  // Removes the entry (its record and its name). REQUIRES: it exists.
  Status Remove(uint64_t id);
  // REQUIRES: e from Get/Find; no entry is named new_name.
  Status Rename(TableEntry* e, const std::string& new_name);
  void MarkDirty(const TableEntry* e) { dirty_.insert(e->id); }
  // Writes every dirty entry's changed pieces into the entry tree.
  Status Flush();
  // Drops loaded entries from memory (after a commit, when many are held).
  // REQUIRES: nothing dirty; no pointer from Get/Find is used afterwards.
  void Trim();

  // Every entry in creation order (Flush first). Stops at fn's first error
  // (reading no further).
  Status ForEach(const std::function<Status(const TableEntry&)>& fn);
  // Every record in the entry tree, reassembled, in id order: fn(id,
  // bytes) with bytes empty if its pieces are not numbered 0, 1, 2, ...;
  // fn returns false to stop. Reads only what is on the tree (no Flush).
  Status ForEachRecord(const std::function<bool(uint64_t, std::span<const uint8_t>)>& fn);

  // What the pool keeps in reserve for the table: blocks that writing the
  // dirty entries, plus Allowance(), may allocate.
  uint64_t ReserveBlocks();
  // Blocks removing one record of the usual shape may allocate (so a
  // delete needs no free space; ChangeCost gives the exact bound).
  uint64_t Allowance();
  // Blocks writing a record of this size (new or grown) may allocate.
  uint64_t WriteCost(uint64_t record_bytes);
  // Blocks adding e (its record and its name) may allocate.
  uint64_t AddCost(const TableEntry& e);
  // Blocks removing entry `id` (record and name) may allocate.
  Result<uint64_t> RemoveCost(uint64_t id);
  // Blocks renaming e to new_name may allocate: its record rewritten, its
  // name slot and family key moved (reads only the two roots).
  uint64_t RenameCost(const TableEntry& e, const std::string& new_name);
  // Blocks that rewriting and renaming the `n` records with ids in
  // [lo_id, hi_id] may allocate (reads the nodes involved).
  Result<uint64_t> ChangeCost(uint64_t lo_id, uint64_t hi_id, uint64_t n);

  BTree& entry_tree() { return entries_; }
  BTree& name_tree() { return names_; }
  // The name index bucket of `name`: the key of slot 0 (slots 0..255).
  static uint64_t NameBucket(const std::string& name);
  // The uuid index bucket of `uuid`: the key of slot 0 (top bit set).
  static uint64_t UuidBucket(const std::array<uint8_t, 16>& uuid);
  static constexpr uint64_t kUuidKeyBit = uint64_t(1) << 63;
  static constexpr uint64_t kFamilyKeyBits = uint64_t(3) << 62;
  // The family index key of entry `id` whose volume part is `volume`:
  // kFamilyKeyBits | 14 bits of the volume part's hash << 48 | id.
  static uint64_t FamilyKey(const std::string& volume, uint64_t id);
  // The volume part of an entry name: `V` of `V@S`, or the name.
  static std::string VolumeOf(const std::string& name) { return name.substr(0, name.find('@')); }
  static constexpr uint64_t kSlots = 256;
  static constexpr uint64_t kPieceBits = 16;
  static constexpr uint64_t kPieceBytes = 16;
  static constexpr uint64_t kMaxId = uint64_t(1) << 48;

 private:
  struct Loaded {
    TableEntry e;
    std::vector<uint8_t> stored;  // the record as in the tree (empty: none)
  };
  Result<std::vector<uint8_t>> ReadRecord(uint64_t id);
  Status WriteRecord(Loaded& l);
  // Id and key of every slot in the bucket whose slot 0 is `bucket`.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> Bucket(uint64_t bucket);
  // Takes the first free slot of `bucket` for `id` (what: for messages).
  Status AddSlot(uint64_t bucket, uint64_t id, const std::string& what);
  Status RemoveSlot(uint64_t bucket, uint64_t id, const std::string& what);
  Status AddName(const std::string& name, uint64_t id);
  Status RemoveName(const std::string& name, uint64_t id);
  Status AddUuid(const std::array<uint8_t, 16>& uuid, uint64_t id);
  Status AddFamily(const std::string& name, uint64_t id);
  Status RemoveFamily(const std::string& name, uint64_t id);
  Status RemoveUuid(const std::array<uint8_t, 16>& uuid, uint64_t id);
  // Levels of tree t under root (0: empty).
  uint32_t Height(const BTree& t, uint64_t root);
  static uint64_t TreeWriteCost(uint64_t keys, uint32_t height, const BTree& t);

  TransactionManager* tm_;
  BTree entries_;
  BTree names_;
  uint64_t entry_root_ = 0;
  uint64_t name_root_ = 0;
  uint64_t count_ = 0;
  uint64_t hidden_ = 0;
  bool indexed_ = true;
  std::unordered_map<uint64_t, Loaded> loaded_;
  std::set<uint64_t> dirty_;
};

}  // namespace stack::pool

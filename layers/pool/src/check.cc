// check, verify and per-entry accounting.
#include <cstdio>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "block/endian.h"
#include "pool_impl.h"
#include "superblock_copies.h"

namespace stack::pool {
namespace {

std::string JsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o;
}

std::string JsonList(const std::vector<std::string>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) o += (i ? ",\"" : "\"") + JsonEscape(v[i]) + "\"";
  return o + "]";
}

// Walks every tree once, counting references and checking structure.
class Checker {
 public:
  // Memory: one byte and one bit per physical block (reference counts
  // saturating into a map that only blocks shared 255 times and more
  // reach, and the data blocks seen), plus one map entry per metadata node
  // (leaf counts of shared nodes): never a map entry per data block, so a
  // pool holding terabytes is checked in a few bytes per block.
  Checker(TransactionManager& tm, uint32_t bs, CheckReport& r)
      : tm_(tm), bs_(bs), r_(r), counts_(tm.sm().nr_blocks(), 0),
        data_(tm.sm().nr_blocks(), false) {}

  void Error(const std::string& e) {
    r_.ok = false;
    if (r_.errors.size() < 1000) r_.errors.push_back(e);
  }
  // One reference to block b (outside the pool: reported by the caller).
  void Ref(uint64_t b) {
    if (b >= counts_.size()) return;
    if (counts_[b] == UINT8_MAX) {
      ++overflow_[b];
    } else {
      ++counts_[b];
    }
  }
  uint64_t Refs(uint64_t b) const {
    uint64_t n = counts_[b];
    if (n == UINT8_MAX) {
      auto it = overflow_.find(b);
      if (it != overflow_.end()) n += it->second;
    }
    return n;
  }

  // Returns the number of leaf entries under loc (memoised for shared nodes).
  uint64_t Node(uint64_t loc, uint64_t lo, uint64_t hi, int expect_level, const std::string& who,
                const TreeKind& kind = kVolumeTree) {
    Ref(loc);
    auto seen = entries_under_.find(loc);
    if (seen != entries_under_.end()) return seen->second;
    entries_under_[loc] = 0;
    if (loc < kFirstFreeBlock || loc >= tm_.sm().nr_blocks()) {
      Error(who + ": btree node pointer " + std::to_string(loc) + " outside the pool");
      return 0;
    }
    auto b = tm_.ReadNode(loc, kind);
    if (!b.ok()) {
      Error(who + ": " + b.status().message());
      return 0;
    }
    const CachedBlock& n = **b;
    Status v = node::Validate(n, bs_);
    if (!v.ok()) {
      Error(who + ": " + v.message());
      return 0;
    }
    if (kind.values_are_blocks) {
      ++r_.btree_nodes;
    } else {
      ++r_.metadata_blocks;
    }
    int level = static_cast<int>(node::Level(n));
    if (expect_level >= 0 && level != expect_level) {
      Error(who + ": node " + std::to_string(loc) + " at level " + std::to_string(level) +
            ", expected " + std::to_string(expect_level));
    }
    uint32_t cnt = node::Count(n);
    if (cnt == 0) Error(who + ": empty btree node " + std::to_string(loc));
    uint64_t total = 0;
    for (uint32_t i = 0; i < cnt; ++i) {
      uint64_t k = node::Key(n, i);
      if (k < lo || k >= hi || (i > 0 && k <= node::Key(n, i - 1))) {
        Error(who + ": node " + std::to_string(loc) + " key " + std::to_string(k) +
              " out of order or outside [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
      }
      if (level == 0 && !kind.values_are_blocks) {
        ++total;
      } else if (level == 0) {
        uint64_t phys = node::Value(n, i).phys;
        if (phys < kFirstFreeBlock || phys >= tm_.sm().nr_blocks()) {
          Error(who + ": logical block " + std::to_string(k) + " maps outside the pool (" +
                std::to_string(phys) + ")");
        } else {
          if (!data_[phys]) {
            data_[phys] = true;
            ++r_.data_blocks;
          }
          Ref(phys);
        }
        ++total;
      } else {
        uint64_t chi = i + 1 < cnt ? node::Key(n, i + 1) : hi;
        total += Node(node::Child(n, i), k, chi, level - 1, who, kind);
      }
    }
    entries_under_[loc] = total;
    return total;
  }

  void Meta(uint64_t b) {
    Ref(b);
    ++r_.metadata_blocks;
  }

  // Blocks of one kind of finding, summarised: the count, the first
  // kShown ranges of consecutive blocks and the first block's detail. A
  // damaged tree can leak millions of blocks: the report stays one line.
  struct Summary {
    static constexpr size_t kShown = 10;
    uint64_t count = 0, ranges = 0;
    std::vector<std::pair<uint64_t, uint64_t>> shown;  // first kShown ranges
    uint64_t last = 0;
    std::string detail;  // the first block's finding
    // REQUIRES: b above every block added before.
    void Add(uint64_t b, uint64_t count_on_disk, uint64_t refs) {
      if (count++ == 0) {
        detail = "block " + std::to_string(b) + " (count " + std::to_string(count_on_disk) +
                 ", " + std::to_string(refs) + " references)";
      }
      if (count > 1 && b == last + 1) {
        if (ranges <= kShown) shown.back().second = b;
      } else {
        if (++ranges <= kShown) shown.emplace_back(b, b);
      }
      last = b;
    }
    std::string Line(const std::string& kind) const {
      std::string line = std::to_string(count) + " " + kind + " in " + std::to_string(ranges) +
                         (ranges == 1 ? " range: " : " ranges: ");
      for (size_t i = 0; i < shown.size(); ++i) {
        line += (i ? ", " : "") + std::to_string(shown[i].first);
        if (shown[i].second != shown[i].first) line += "-" + std::to_string(shown[i].second);
      }
      if (ranges > kShown) line += ", ... and " + std::to_string(ranges - kShown) + " more ranges";
      return line + "; first: " + detail;
    }
  };

  void Compare() {
    uint64_t nr = tm_.sm().nr_blocks(), used = 0;
    Summary leaked, missing;
    for (uint64_t b = 0; b < nr; ++b) {
      auto c = tm_.sm().Get(b);
      if (!c.ok()) {
        Error("space map: " + c.status().message());
        return;
      }
      const uint64_t want = Refs(b);
      if (*c != 0) ++used;
      if (*c != want) {
        ++r_.refcount_errors;
        if (*c > want) {
          ++r_.leaked_blocks;
          leaked.Add(b, *c, want);
        } else {
          missing.Add(b, *c, want);
        }
      }
    }
    // One line per kind, not per block: a damaged tree can leak millions.
    if (leaked.count) Error(leaked.Line("leaked physical block(s) (counted but unreferenced)"));
    if (missing.count)
      Error(missing.Line("physical block(s) with more references than their count"));
    if (used != tm_.sm().used_blocks()) {
      Error("space map: " + std::to_string(used) + " blocks in use but the pool counts " +
            std::to_string(tm_.sm().used_blocks()));
    }
  }

  std::unordered_map<uint64_t, uint64_t> entries_under_;  // per metadata node

 private:
  TransactionManager& tm_;
  const uint32_t bs_;
  CheckReport& r_;
  std::vector<uint8_t> counts_;                     // references per block, saturating
  std::unordered_map<uint64_t, uint64_t> overflow_;  // references past 255
  std::vector<bool> data_;                          // data blocks seen
};

}  // namespace

Result<uint64_t> Pool::Impl::ExclusiveBlocks(uint64_t root, int level, uint64_t* visits) {
  if (root == 0) return uint64_t(0);
  uint64_t own = 0;
  if (visits == nullptr) visits = &own;
  // Each node once per tree: more visits than blocks means repeated pointers.
  if ((*visits)++ > sm().nr_blocks()) {
    return Status::Corruption("damaged tree near physical block " + std::to_string(root) +
                              ": a node is reached more than once under one root");
  }
  ASSIGN_OR_RETURN(uint32_t c, sm().Get(root));
  if (c != 1) return uint64_t(0);
  ASSIGN_OR_RETURN(BlockRef b, tm_->ReadNode(root, kVolumeTree));
  RETURN_IF_ERROR(node::Validate(*b, bs_));
  if (level >= 0 && node::Level(*b) != static_cast<uint32_t>(level)) {
    return Status::Corruption("btree node at physical block " + std::to_string(root) +
                              " has the wrong level");
  }
  uint64_t total = 0;
  uint32_t n = node::Count(*b);
  for (uint32_t i = 0; i < n; ++i) {
    if (node::Level(*b) == 0) {
      ASSIGN_OR_RETURN(uint32_t dc, sm().Get(node::Value(*b, i).phys));
      if (dc == 1) ++total;
    } else {
      ASSIGN_OR_RETURN(uint64_t sub,
                       ExclusiveBlocks(node::Child(*b, i), static_cast<int>(node::Level(*b)) - 1,
                                       visits));
      total += sub;
    }
  }
  return total;
}

Result<CheckReport> Pool::Impl::CheckLocked() {
  // The check reads the entry tree: changed entries go into it first.
  RETURN_IF_ERROR(FlushEntries());
  CheckReport r;
  Checker c(*tm_, bs_, r);
  for (uint64_t b = 0; b < kSuperCopies; ++b) c.Meta(b);
  // The superblock copies as they are now (a writer's open has repaired
  // what it could; a reader's has not).
  {
    auto copies = ReadSuperCopies(*store_, bs_);
    if (!copies.ok()) {
      c.Error(copies.status().message());
    } else {
      SuperVerdict v = JudgeSuperCopies(*copies);
      if (v.open.generation != sb_.generation) {
        c.Error("the superblock copies designate generation " +
                std::to_string(v.open.generation) + ", the pool has generation " +
                std::to_string(sb_.generation) + " open");
      }
      r.warnings = v.torn;
      for (const auto& d : v.damaged) c.Error(d);
      if (!v.lost.empty()) c.Error(v.lost);
    }
  }
  // Space map index and blocks.
  uint64_t per_idx = IndexEntriesPerBlock(bs_);
  for (size_t i = 0; i < sm().index_locs().size(); ++i) {
    uint64_t il = sm().index_locs()[i];
    if (il == 0) continue;
    c.Meta(il);
    auto ib = tm_->cache().Read(il, BlockType::kSmIndex);
    if (!ib.ok()) {
      c.Error(ib.status().message());
      continue;
    }
    for (uint64_t s = 0; s < per_idx; ++s) {
      uint64_t sl = GetLE64((*ib)->payload() + 8 * s);
      if (sl == 0) continue;
      c.Meta(sl);
      auto smb = tm_->cache().Read(sl, BlockType::kSpaceMap);
      if (!smb.ok()) c.Error(smb.status().message());
    }
  }
  // The entry tree and the name index: nodes counted once each.
  if (table_->entry_root()) {
    c.Node(table_->entry_root(), 0, UINT64_MAX, -1, "entry tree", kEntryTree);
  }
  // entry id -> its name slot / its uuid slot (keys with the top bit set)
  std::unordered_map<uint64_t, uint64_t> slot_of, uuid_slot_of;
  std::unordered_set<uint64_t> family_keys;  // family index keys (top bits 11)
  const bool indexed = table_->indexed();
  if (table_->name_root()) {
    c.Node(table_->name_root(), 0, UINT64_MAX, -1, "name index", kNameTree);
    Status st = table_->name_tree().ForEach(table_->name_root(), 0, UINT64_MAX,
                                           [&](uint64_t k, const Mapping& m) {
      if (m.csum != 0) c.Error("name index: slot " + std::to_string(k) + ": reserved bytes set");
      const bool uuid_slot = (k & EntryTable::kUuidKeyBit) != 0;
      const bool family_key =
          (k & EntryTable::kFamilyKeyBits) == EntryTable::kFamilyKeyBits;
      if (uuid_slot && !indexed) {
        c.Error("name index: uuid or family key " + std::to_string(k) + " in a format 3 pool");
      } else if (family_key) {
        if ((k & (EntryTable::kMaxId - 1)) != m.phys) {
          c.Error("family index: key " + std::to_string(k) + " names entry id " +
                  std::to_string(m.phys) + ", not the id it holds");
        }
        family_keys.insert(k);
      } else if (!(uuid_slot ? uuid_slot_of : slot_of).emplace(m.phys, k).second) {
        c.Error((uuid_slot ? "uuid index: entry id " : "name index: entry id ") +
                std::to_string(m.phys) + " has two slots");
      }
      return true;
    });
    if (!st.ok()) c.Error("name index: " + st.message());
  }
  uint64_t hidden = 0;
  // Entries, and the volume tree of each.
  std::unordered_set<std::string> names;
  Status walk = table_->ForEachRecord([&](uint64_t id, std::span<const uint8_t> rec) {
    ++r.entries;
    if (rec.empty()) {
      c.Error("entry tree: record of entry id " + std::to_string(id) + " has missing pieces");
      return true;
    }
    auto decoded = DecodeRecord(rec, sm().nr_blocks());
    if (!decoded.ok()) {
      c.Error("entry tree: entry id " + std::to_string(id) + ": " + decoded.status().message());
      return true;
    }
    const TableEntry& e = *decoded;
    std::string who = (e.snapshot ? "snapshot '" : "volume '") + e.name + "'";
    if (e.id != id) c.Error(who + ": record stored under entry id " + std::to_string(id));
    if (id >= next_id_) c.Error(who + ": entry id beyond the next id to hand out");
    if (!names.insert(e.name).second) c.Error(who + ": duplicate name");
    auto slot = slot_of.find(id);
    const uint64_t bucket = EntryTable::NameBucket(e.name);
    if (slot == slot_of.end()) {
      c.Error(who + ": missing from the name index");
    } else {
      if (slot->second < bucket || slot->second >= bucket + 256) {
        c.Error(who + ": name index slot " + std::to_string(slot->second) +
                " is outside the name's bucket");
      }
      slot_of.erase(slot);
    }
    if (indexed) {
      auto us = uuid_slot_of.find(id);
      const uint64_t ub = EntryTable::UuidBucket(e.uuid);
      if (us == uuid_slot_of.end()) {
        c.Error(who + ": missing from the uuid index");
      } else {
        if (us->second < ub || us->second >= ub + EntryTable::kSlots) {
          c.Error(who + ": uuid index slot " + std::to_string(us->second) +
                  " is outside the uuid's bucket");
        }
        uuid_slot_of.erase(us);
      }
    }
    if (indexed && family_keys.erase(EntryTable::FamilyKey(EntryTable::VolumeOf(e.name), id)) == 0)
      c.Error(who + ": missing from the family index");
    hidden += EntryTable::IsHidden(e.name);
    if (!ValidEntryName(e.name)) c.Error(who + ": invalid name");
    if (e.snapshot && e.name.find('@') == std::string::npos) c.Error(who + ": snapshot without '@'");
    if (e.size_bytes % bs_) c.Error(who + ": size not a multiple of the block size");
    if (e.root == 0) {
      if (e.mapped_blocks != 0) c.Error(who + ": empty tree but mapped count " +
                                        std::to_string(e.mapped_blocks));
      return true;
    }
    uint64_t n = c.Node(e.root, 0, UINT64_MAX, -1, who);
    if (n != e.mapped_blocks) {
      c.Error(who + ": tree maps " + std::to_string(n) + " blocks but the entry says " +
              std::to_string(e.mapped_blocks));
    }
    // Nothing may be mapped beyond the end of the volume.
    uint64_t beyond = 0;
    Status st = tree_->ForEach(e.root, e.size_bytes / bs_, UINT64_MAX, [&](uint64_t, const Mapping&) {
      ++beyond;
      return true;
    });
    if (!st.ok()) c.Error(who + ": " + st.message());
    if (beyond) c.Error(who + ": " + std::to_string(beyond) + " blocks mapped beyond its size");
    return true;
  });
  if (!walk.ok()) c.Error("entry tree: " + walk.message());
  for (const auto& [id, key] : slot_of) {
    c.Error("name index: slot " + std::to_string(key) + " names entry id " + std::to_string(id) +
            ", which does not exist");
  }
  for (uint64_t key : family_keys) {
    c.Error("family index: key " + std::to_string(key) + " (entry id " +
            std::to_string(key & (EntryTable::kMaxId - 1)) +
            ") matches no entry of that volume");
  }
  for (const auto& [id, key] : uuid_slot_of) {
    c.Error("uuid index: slot " + std::to_string(key) + " names entry id " + std::to_string(id) +
            ", which does not exist");
  }
  // A wrong count would let a leftover build survive every open (or make
  // every open walk the entries): never trusted, reported here.
  if (indexed && hidden != table_->hidden_count()) {
    c.Error("superblock counts " + std::to_string(table_->hidden_count()) +
            " hidden entries, the entry tree holds " + std::to_string(hidden));
  }
  if (r.entries != table_->count()) {
    c.Error("superblock counts " + std::to_string(table_->count()) + " entries, the entry tree holds " +
            std::to_string(r.entries));
  }
  c.Compare();
  return r;
}

Result<VerifyReport> Pool::Impl::VerifyLocked(const std::function<void(uint64_t)>& progress) {
  VerifyReport r;
  // One bit per physical block (a block shared by several entries is read
  // once), and mappings taken a window at a time: memory stays at
  // nr_blocks/8 bytes plus one window, whatever the volumes hold.
  std::vector<bool> seen(sm().nr_blocks(), false);
  constexpr size_t kWindow = 4096, kMaxRun = 256;
  std::vector<uint8_t> buf;
  RETURN_IF_ERROR(FlushEntries());
  auto bad = [&](const std::string& what) {
    ++r.bad_blocks;
    r.ok = false;
    if (r.errors.size() < 1000) r.errors.push_back(what);
  };
  RETURN_IF_ERROR(table_->ForEach([&](const TableEntry& e) -> Status {
    const std::string who = (e.snapshot ? "snapshot '" : "volume '") + e.name + "'";
    auto where = [&](uint64_t k, uint64_t phys) {
      return who + " logical block " + std::to_string(k) + " (physical block " +
             std::to_string(phys) + ")";
    };
    std::vector<std::pair<uint64_t, Mapping>> maps;
    for (uint64_t lo = 0;;) {
      maps.clear();
      uint64_t last = 0;
      bool any = false;
      Status st = tree_->ForEach(e.root, lo, UINT64_MAX, [&](uint64_t k, const Mapping& m) {
        any = true;
        last = k;
        if (m.phys >= seen.size()) {
          ++r.blocks_checked;
          bad(where(k, m.phys) + ": outside the pool");
        } else if (!seen[m.phys]) {
          seen[m.phys] = true;
          maps.emplace_back(k, m);
        }
        return maps.size() < kWindow;
      });
      if (!st.ok()) {
        r.ok = false;
        r.errors.push_back(who + ": " + st.message());
        break;
      }
      if (!any) break;
      // Physically contiguous runs in one read each; every block checked.
      for (size_t a = 0; a < maps.size();) {
        size_t b = a + 1;
        while (b < maps.size() && b - a < kMaxRun &&
               maps[b].second.phys == maps[b - 1].second.phys + 1) {
          ++b;
        }
        buf.resize((b - a) * bs_);
        RETURN_IF_ERROR(store_->Read(maps[a].second.phys * bs_, buf));
        for (size_t k = a; k < b; ++k) {
          ++r.blocks_checked;
          const auto blk = std::span<const uint8_t>(buf).subspan((k - a) * bs_, bs_);
          if (DataChecksum(blk, maps[k].second.phys) != maps[k].second.csum) {
            bad(where(maps[k].first, maps[k].second.phys) + ": data checksum mismatch");
          }
        }
        if (progress) progress((b - a) * bs_);
        a = b;
      }
      if (last == UINT64_MAX) break;
      lo = last + 1;
    }
    return Status::Ok();
  }));
  return r;
}

std::string CheckReport::ToJson() const {
  std::ostringstream o;
  o << "{\"ok\":" << (ok ? "true" : "false") << ",\"entries\":" << entries
    << ",\"btree_nodes\":" << btree_nodes << ",\"data_blocks\":" << data_blocks
    << ",\"metadata_blocks\":" << metadata_blocks << ",\"leaked_blocks\":" << leaked_blocks
    << ",\"refcount_errors\":" << refcount_errors << ",\"errors\":" << JsonList(errors)
    << ",\"warnings\":" << JsonList(warnings) << "}";
  return o.str();
}

std::string VerifyReport::ToJson() const {
  std::ostringstream o;
  o << "{\"ok\":" << (ok ? "true" : "false") << ",\"blocks_checked\":" << blocks_checked
    << ",\"bad_blocks\":" << bad_blocks << ",\"errors\":" << JsonList(errors) << "}";
  return o.str();
}

}  // namespace stack::pool

#include "superblock_copies.h"

#include <algorithm>
#include <cstdio>

#include "block/endian.h"

namespace stack::pool {
namespace {

std::string Hex(const std::array<uint8_t, 16>& u) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (uint8_t c : u) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

// Reads and decodes the copy at `block` of a pool with block size `bs`.
SuperCopy ReadCopy(Store& store, uint64_t block, uint32_t bs) {
  SuperCopy c;
  c.block = block;
  const uint64_t off = block * bs;
  if (off + kSuperSize > store.Size()) {
    c.found = "missing (the store ends at byte " + std::to_string(store.Size()) + ")";
    c.sb = Status::Corruption(c.found);
    return c;
  }
  std::vector<uint8_t> buf(kSuperSize);
  Status st = store.Read(off, buf);
  if (!st.ok()) {
    c.found = "unreadable (" + st.ToString() + ")";
    c.sb = Status::Corruption(c.found);
    return c;
  }
  c.sb = DecodeSuperblock(buf, block);
  if (c.sb.ok()) return c;
  if (std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; })) {
    c.found = "all zeros (never written, or wiped)";
    return c;
  }
  c.found = c.sb.status().message();
  if (GetLE32(buf.data() + 8) == kMetaMagic &&
      GetLE16(buf.data() + 12) == static_cast<uint16_t>(BlockType::kSuper)) {
    c.found += "; its header says generation " + std::to_string(GetLE64(buf.data() + 24));
  }
  return c;
}

}  // namespace

std::string SuperCopy::Name() const {
  return "slot " + std::to_string(block % 2) + (block >= 2 ? " mirror" : " primary") +
         " (block " + std::to_string(block) + ")";
}

Result<SuperCopies> ReadSuperCopies(Store& store, uint32_t known_bs) {
  const uint64_t size = store.Size();
  const std::string where = store.describe();
  if (size < kSuperSize) {
    return Status::Corruption(where + " is " + std::to_string(size) +
                              " bytes: not a pool (or truncated): a pool holds at least " +
                              std::to_string(16 * kMinBlockSize) + " bytes");
  }
  SuperCopies out;
  SuperCopy first = ReadCopy(store, 0, known_bs ? known_bs : kMinBlockSize);
  uint32_t bs = known_bs;
  if (bs == 0 && first.valid()) bs = first.sb->block_size;
  // Copy 0 unreadable: the other copies' places depend on the block size,
  // tried for every legal one (a copy is taken only if it names that size).
  for (uint32_t b = kMinBlockSize; bs == 0 && b <= kMaxBlockSize; b *= 2) {
    for (uint64_t k = 1; k < kSuperCopies && bs == 0; ++k) {
      SuperCopy c = ReadCopy(store, k, b);
      if (c.valid() && c.sb->block_size == b) bs = b;
    }
  }
  if (bs == 0) {
    // No valid copy anywhere: describe the copies where a pool of the block
    // size copy 0 claims (else 4 KiB) keeps them.
    std::vector<uint8_t> head(kSuperSize);
    const uint32_t guess = store.Read(0, head).ok() ? GetLE32(head.data() + 36) : 0;
    bs = (guess >= kMinBlockSize && guess <= kMaxBlockSize && (guess & (guess - 1)) == 0)
             ? guess
             : kMinBlockSize;
  }
  out.block_size = bs;
  out.copy[0] = std::move(first);
  for (uint64_t k = 1; k < kSuperCopies; ++k) out.copy[k] = ReadCopy(store, k, bs);
  for (SuperCopy& c : out.copy) {
    if (c.valid() && c.sb->block_size != bs) {
      c.found = "names block size " + std::to_string(c.sb->block_size) + ", the pool uses " +
                std::to_string(bs);
      c.sb = Status::Corruption(c.found);
    }
  }
  for (size_t i = 0; i < out.copy.size(); ++i) {
    const SuperCopy& c = out.copy[i];
    if (c.valid() && (out.newest < 0 || c.sb->generation > out.newest_sb().generation)) {
      out.newest = static_cast<int>(i);
    }
  }
  if (out.newest < 0) {
    std::string m = "no valid superblock in " + where + " (" + std::to_string(size) + " bytes; " +
                    std::to_string(bs) + "-byte blocks assumed):";
    for (const SuperCopy& c : out.copy) m += " " + c.Name() + ": " + c.found + ";";
    m.pop_back();
    return Status::Corruption(m + ": not a pool, or every copy of its superblock is damaged");
  }
  const std::array<uint8_t, 16> uuid = out.newest_sb().uuid;
  for (SuperCopy& c : out.copy) {
    if (c.valid() && c.sb->uuid != uuid) {
      c.found = "a superblock of another pool (uuid " + Hex(c.sb->uuid) + ", generation " +
                std::to_string(c.sb->generation) + ")";
      c.sb = Status::Corruption(c.found);
    }
  }
  const Superblock& newest = out.newest_sb();
  const uint64_t need = newest.nr_blocks * bs;
  if (size < need) {
    return Status::Corruption(where + " is truncated: " + std::to_string(size) +
                              " bytes, but the pool it holds (generation " +
                              std::to_string(newest.generation) + ") spans " +
                              std::to_string(need) + " bytes");
  }
  return out;
}

SuperVerdict JudgeSuperCopies(const SuperCopies& cs) {
  SuperVerdict v;
  const uint64_t g = cs.newest_sb().generation;
  const uint64_t s = g % 2, o = 1 - s;
  const SuperCopy& ps = cs.copy[SuperCopyBlock(s, false)];
  const SuperCopy& ms = cs.copy[SuperCopyBlock(s, true)];
  const SuperCopy& po = cs.copy[SuperCopyBlock(o, false)];
  const SuperCopy& mo = cs.copy[SuperCopyBlock(o, true)];
  auto gen = [](const SuperCopy& c) -> int64_t {
    return c.valid() ? static_cast<int64_t>(c.sb->generation) : -1;
  };
  auto holds = [&](const SuperCopy& c) {
    return c.valid() ? "holds generation " + std::to_string(c.sb->generation) : c.found;
  };
  const std::string gs = std::to_string(g);
  v.open = cs.newest_sb();

  // The newest slot: both copies should hold g.
  if (gen(ps) == static_cast<int64_t>(g) && gen(ms) != static_cast<int64_t>(g)) {
    std::string m = "superblock " + ms.Name() + " " + holds(ms) + ": ";
    if (!ms.valid() || gen(ms) + 2 == static_cast<int64_t>(g)) {
      v.torn.push_back(m + "the commit of generation " + gs +
                       " stopped before its mirror was written; opened generation " + gs +
                       " from " + ps.Name());
    } else {
      v.damaged.push_back(m + "damaged since generation " + gs + " was written; opened generation " +
                          gs + " from " + ps.Name());
    }
    v.repairs.emplace_back(ms.block, v.open);
  } else if (gen(ms) == static_cast<int64_t>(g) && gen(ps) != static_cast<int64_t>(g)) {
    v.damaged.push_back("superblock " + ps.Name() + " " + holds(ps) +
                        ": damaged after generation " + gs +
                        " was committed (no crash leaves a mirror newer than its primary); "
                        "opened generation " + gs + " from " + ms.Name());
    v.repairs.emplace_back(ps.block, v.open);
  }

  // The other slot: both copies should hold g - 1 (after Create's first
  // commit alone, slot 0 may still be all zeros).
  const int64_t prev = static_cast<int64_t>(g) - 1;
  auto never_written = [](const SuperCopy& c) { return c.found.rfind("all zeros", 0) == 0; };
  if (g == 1 && never_written(po) && never_written(mo)) return v;
  if (!po.valid() && !mo.valid()) {
    v.lost_generation = g + 1;
    v.lost = "both copies of superblock slot " + std::to_string(o) + " are unreadable (" +
             po.Name() + ": " + po.found + "; " + mo.Name() + ": " + mo.found +
             "), which no interrupted commit explains: the slot may have held generation " +
             std::to_string(g + 1) + ", committed after generation " + gs +
             ", and opening generation " + gs + " would lose it and every change made in it";
    return v;
  }
  if (gen(po) == prev && gen(mo) == prev) return v;
  if (!po.valid() && gen(mo) == prev) {
    v.torn.push_back("superblock " + po.Name() + " " + po.found + ": the commit of generation " +
                     std::to_string(g + 1) +
                     " was interrupted while writing it (never acknowledged, nothing lost); "
                     "opened generation " + gs + " from slot " + std::to_string(s));
  } else {
    const SuperCopy& bad = gen(po) == prev ? mo : po;
    v.damaged.push_back("superblock " + bad.Name() + " " + holds(bad) +
                        ": damaged after its generation was committed (generation " + gs +
                        ", opened from slot " + std::to_string(s) + ", is intact)");
  }
  // Re-encode the better copy of the other slot over the worse one.
  const SuperCopy& good = gen(mo) == prev ? mo : gen(po) >= gen(mo) ? po : mo;
  const SuperCopy& worse = &good == &po ? mo : po;
  if (good.valid()) v.repairs.emplace_back(worse.block, *good.sb);
  return v;
}

}  // namespace stack::pool

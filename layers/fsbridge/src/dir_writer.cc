#include "dir_writer.h"

#include <algorithm>
#include <cstring>

#include "block/endian.h"

namespace stack::fsbridge {

namespace {

constexpr uint32_t kTailLen = 12;   // ext2_dir_entry_tail
constexpr uint32_t kDxTailLen = 8;  // ext2_dx_tail

struct Packer {
  ext2_filsys fs;
  uint32_t bs;
  bool csum;
  std::vector<uint8_t>* out;
  size_t block_start = 0;
  uint32_t pos = 0;       // offset in the current block
  uint32_t last_pos = 0;  // offset of the last entry in it
  bool open = false;

  uint32_t usable() const { return bs - (csum ? kTailLen : 0); }

  void SetRecLen(uint8_t* p, uint32_t len) {
    unsigned int v = len;
    // ext2fs_set_rec_len encodes 64 KiB blocks; otherwise it is the value.
    (void)ext2fs_set_rec_len(fs, v, reinterpret_cast<ext2_dir_entry*>(p));
  }

  void Begin() {
    block_start = out->size();
    out->resize(out->size() + bs, 0);
    pos = 0;
    open = true;
  }

  void End() {
    if (!open) return;
    uint8_t* b = out->data() + block_start;
    SetRecLen(b + last_pos, usable() - last_pos);
    if (csum) {
      uint8_t* t = b + bs - kTailLen;
      PutLE32(t, 0);
      PutLE16(t + 4, kTailLen);
      t[6] = 0;
      t[7] = EXT2_DIR_NAME_LEN_CSUM >> 8;  // 0xDE
      PutLE32(t + 8, 0);
    }
    open = false;
  }

  void Put(const std::string& name, uint32_t ino, uint8_t ftype, uint32_t rec_len) {
    uint8_t* p = out->data() + block_start + pos;
    PutLE32(p, ino);
    SetRecLen(p, rec_len);
    p[6] = uint8_t(name.size());
    p[7] = ftype;
    std::memcpy(p + 8, name.data(), name.size());
    last_pos = pos;
    pos += rec_len;
  }

  // Appends an entry, opening a new block when it does not fit. Returns
  // true if a new block was started for it.
  bool Add(const std::string& name, uint32_t ino, uint8_t ftype) {
    const uint32_t need = DirRecLen(name.size());
    bool fresh = false;
    if (!open || pos + need > usable()) {
      End();
      Begin();
      fresh = true;
    }
    Put(name, ino, ftype, need);
    return fresh;
  }
};

uint8_t Ft(ext2_filsys fs, uint8_t t) { return ext2fs_has_feature_filetype(fs->super) ? t : 0; }

}  // namespace

Result<DirImage> BuildDirectory(ext2_filsys fs, uint32_t ino, uint32_t parent,
                                const std::vector<DirEntry>& entries) {
  const uint32_t bs = fs->blocksize;
  const bool csum = ext2fs_has_feature_metadata_csum(fs->super);
  DirImage img;

  // Linear size: does it all fit in block 0?
  uint64_t total = DirRecLen(1) + DirRecLen(2);
  for (const auto& e : entries) total += DirRecLen(e.name.size());
  const uint32_t usable = bs - (csum ? kTailLen : 0);
  const bool index = total > usable && ext2fs_has_feature_dir_index(fs->super);

  if (!index) {
    Packer pk{fs, bs, csum, &img.bytes};
    pk.Begin();
    pk.Put(".", ino, Ft(fs, EXT2_FT_DIR), DirRecLen(1));
    pk.Put("..", parent, Ft(fs, EXT2_FT_DIR), DirRecLen(2));
    for (const auto& e : entries) pk.Add(e.name, e.ino, Ft(fs, e.ftype));
    pk.End();
  } else {
    // Hash every name, sort by hash, pack leaves.
    int hash_version = fs->super->s_def_hash_version;
    if ((fs->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH) && hash_version <= EXT2_HASH_TEA)
      hash_version += 3;
    struct H {
      uint32_t hash, minor;
      const DirEntry* e;
    };
    std::vector<H> hs;
    hs.reserve(entries.size());
    for (const auto& e : entries) {
      ext2_dirhash_t h = 0, m = 0;
      errcode_t err = ext2fs_dirhash2(hash_version, e.name.data(), int(e.name.size()), fs->encoding,
                                      0, fs->super->s_hash_seed, &h, &m);
      if (err) return Status::Internal("hashing directory entry " + e.name);
      hs.push_back(H{h, m, &e});
    }
    std::sort(hs.begin(), hs.end(), [](const H& a, const H& b) {
      if (a.hash != b.hash) return a.hash < b.hash;
      if (a.minor != b.minor) return a.minor < b.minor;
      return a.e->name < b.e->name;
    });
    std::vector<uint8_t> leaves;
    Packer pk{fs, bs, csum, &leaves};
    std::vector<uint32_t> leaf_hash;  // index hash of each leaf (low bit: continuation)
    uint32_t prev_hash = 0;
    for (const H& h : hs) {
      if (pk.Add(h.e->name, h.e->ino, Ft(fs, h.e->ftype))) {
        uint32_t ih = h.hash;
        if (!leaf_hash.empty() && h.hash == prev_hash) ih |= 1;
        leaf_hash.push_back(ih);
      }
      prev_hash = h.hash;
    }
    pk.End();
    leaf_hash[0] = 0;
    const uint32_t nleaves = uint32_t(leaf_hash.size());
    const uint32_t dx_tail = csum ? kDxTailLen : 0;
    const uint32_t root_limit = (bs - 32 - dx_tail) / 8;
    const uint32_t node_limit = (bs - 8 - dx_tail) / 8;
    uint32_t nnodes = 0;
    if (nleaves > root_limit) {
      nnodes = (nleaves + node_limit - 1) / node_limit;
      if (nnodes > root_limit)
        return Status::Unsupported("directory too large for a two-level htree (needs largedir)");
    }
    img.nblocks = 1 + nnodes + nleaves;
    img.bytes.assign(size_t(1 + nnodes) * bs, 0);
    img.bytes.insert(img.bytes.end(), leaves.begin(), leaves.end());
    // Writes an index array at p: countlimit then (hash, block) pairs.
    auto write_index = [&](uint8_t* p, uint32_t limit, const std::vector<std::pair<uint32_t, uint32_t>>& ents) {
      PutLE16(p, uint16_t(limit));
      PutLE16(p + 2, uint16_t(ents.size()));
      PutLE32(p + 4, ents[0].second);
      for (size_t i = 1; i < ents.size(); ++i) {
        PutLE32(p + 8 * i, ents[i].first);
        PutLE32(p + 8 * i + 4, ents[i].second);
      }
    };
    // Root block: "." and ".." then dx_root_info.
    uint8_t* root = img.bytes.data();
    Packer rp{fs, bs, csum, &img.bytes};
    rp.block_start = 0;
    rp.open = true;
    rp.Put(".", ino, Ft(fs, EXT2_FT_DIR), 12);
    rp.Put("..", parent, Ft(fs, EXT2_FT_DIR), bs - 12);
    root[24 + 0] = 0;  // reserved_zero (4 bytes)
    root[24 + 4] = fs->super->s_def_hash_version;
    root[24 + 5] = 8;  // info_length
    root[24 + 6] = nnodes ? 1 : 0;  // indirect_levels
    root[24 + 7] = 0;
    const uint32_t first_leaf = 1 + nnodes;
    std::vector<std::pair<uint32_t, uint32_t>> rents;
    if (!nnodes) {
      for (uint32_t i = 0; i < nleaves; ++i) rents.emplace_back(leaf_hash[i], first_leaf + i);
    } else {
      for (uint32_t n = 0; n < nnodes; ++n) {
        const uint32_t lo = n * node_limit, hi = std::min(nleaves, lo + node_limit);
        rents.emplace_back(leaf_hash[lo], 1 + n);
        std::vector<std::pair<uint32_t, uint32_t>> nents;
        for (uint32_t i = lo; i < hi; ++i) nents.emplace_back(leaf_hash[i], first_leaf + i);
        nents[0].first = 0;
        uint8_t* node = img.bytes.data() + size_t(1 + n) * bs;
        PutLE32(node, 0);
        Packer np{fs, bs, csum, &img.bytes};
        np.SetRecLen(node, bs);
        node[6] = 0;
        node[7] = 0;
        write_index(node + 8, node_limit, nents);
      }
    }
    write_index(root + 32, root_limit, rents);
    img.indexed = true;
  }
  img.nblocks = uint32_t(img.bytes.size() / bs);
  if (csum) {
    for (uint32_t b = 0; b < img.nblocks; ++b) {
      errcode_t e = ext2fs_dir_block_csum_set(
          fs, ino, reinterpret_cast<ext2_dir_entry*>(img.bytes.data() + size_t(b) * bs));
      if (e) return Status::Internal("directory block checksum: " + std::to_string(e));
    }
  }
  return img;
}

}  // namespace stack::fsbridge

// Inode-level reading for file diffs: which inodes a set of changed device
// ranges can have touched, an inode as stored, whether a file's blocks
// overlap the ranges, and the paths of a set of inodes.
#include <algorithm>
#include <cstring>
#include <optional>

#include "dir_reader.h"
#include "filesystem_impl.h"
#include "fsbridge/names.h"

namespace stack::fsbridge {
namespace {

// The ranges, sorted and merged, as half-open [first, end) block intervals.
std::vector<std::pair<uint64_t, uint64_t>> BlockIntervals(const std::vector<ByteRange>& ranges,
                                                          uint32_t bs) {
  std::vector<std::pair<uint64_t, uint64_t>> v;
  for (const ByteRange& r : ranges) {
    if (r.length == 0) continue;
    v.emplace_back(r.offset / bs, (r.offset + r.length + bs - 1) / bs);
  }
  std::sort(v.begin(), v.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (auto& iv : v) {
    if (!merged.empty() && iv.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, iv.second);
    } else {
      merged.push_back(iv);
    }
  }
  return merged;
}

bool Overlaps(const std::vector<std::pair<uint64_t, uint64_t>>& iv, uint64_t first, uint64_t end) {
  // The first interval ending after `first`.
  auto it = std::upper_bound(iv.begin(), iv.end(), first,
                             [](uint64_t x, const auto& p) { return x < p.second; });
  return it != iv.end() && it->first < end;
}

Status LoadInodeBitmap(const FsContext& c) {
  if (c.fs->inode_map) return Status::Ok();
  errcode_t e = ext2fs_read_inode_bitmap(c.fs);
  return e ? c.Err(e, "reading the inode bitmap", "") : Status::Ok();
}

}  // namespace

Result<std::vector<uint32_t>> Filesystem::InodesStoredIn(const std::vector<ByteRange>& ranges) {
  ext2_filsys fs = impl_->fs;
  const auto iv = BlockIntervals(ranges, fs->blocksize);
  const uint32_t per_group = EXT2_INODES_PER_GROUP(fs->super);
  const uint32_t per_block = fs->blocksize / EXT2_INODE_SIZE(fs->super);
  std::vector<uint32_t> out;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    const uint64_t table = ext2fs_inode_table_loc(fs, g);
    if (table == 0) continue;
    // Inodes past (per_group - itable_unused) were never initialised in a
    // group with a checksum: they are not in use in either image.
    uint32_t used = per_group;
    if (ext2fs_has_group_desc_csum(fs)) {
      used = ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT)
                 ? 0
                 : per_group - std::min(per_group, ext2fs_bg_itable_unused(fs, g));
    }
    const uint64_t table_blocks = (used + per_block - 1) / per_block;
    if (table_blocks == 0 || !Overlaps(iv, table, table + table_blocks)) continue;
    for (uint64_t b = 0; b < table_blocks; ++b) {
      if (!Overlaps(iv, table + b, table + b + 1)) continue;
      for (uint32_t k = 0; k < per_block; ++k) {
        const uint64_t index = b * per_block + k;
        if (index >= used) break;
        out.push_back(static_cast<uint32_t>(uint64_t{g} * per_group + index + 1));
      }
    }
  }
  return out;
}

Result<std::vector<uint32_t>> Filesystem::InodesInUse() {
  const FsContext c = impl_->ctx();
  RETURN_IF_ERROR(LoadInodeBitmap(c));
  std::vector<uint32_t> out;
  const uint32_t count = c.fs->super->s_inodes_count;
  for (uint32_t ino = 1; ino <= count; ++ino) {
    if (ext2fs_test_inode_bitmap2(c.fs->inode_map, ino)) out.push_back(ino);
  }
  return out;
}

Result<InodeState> Filesystem::InodeAt(uint32_t ino) {
  const FsContext c = impl_->ctx();
  if (ino == 0 || ino > c.fs->super->s_inodes_count) {
    return Status::OutOfRange("inode " + std::to_string(ino) + " is past the inode count " +
                              std::to_string(c.fs->super->s_inodes_count));
  }
  RETURN_IF_ERROR(LoadInodeBitmap(c));
  InodeState st;
  st.in_use = ext2fs_test_inode_bitmap2(c.fs->inode_map, ino);
  if (!st.in_use) return st;
  const std::string shown = "inode " + std::to_string(ino);
  InodeBuf buf(c.fs);
  RETURN_IF_ERROR(ReadInode(c, ino, &buf, shown));
  st.generation = buf.large()->i_generation;
  st.flags = buf.large()->i_flags;
  static_assert(sizeof(buf.large()->i_block) == 60);
  std::memcpy(st.block_map.data(), buf.large()->i_block, st.block_map.size());
  // Reserved inodes below the first ordinary one (journal, resize...) are
  // compared as stored; their attributes need no loading.
  if (ino < EXT2_FIRST_INO(c.fs->super) && ino != EXT2_ROOT_INO) return st;
  ASSIGN_OR_RETURN(st.info, LoadInfo(c, ino, shown));
  return st;
}

Result<bool> Filesystem::InodeUsesBlocksIn(uint32_t ino, const std::vector<ByteRange>& ranges) {
  const FsContext c = impl_->ctx();
  const auto iv = BlockIntervals(ranges, c.fs->blocksize);
  if (iv.empty()) return false;
  InodeBuf buf(c.fs);
  const std::string shown = "inode " + std::to_string(ino);
  RETURN_IF_ERROR(ReadInode(c, ino, &buf, shown));
  if (!ext2fs_inode_has_valid_blocks2(c.fs, buf.small())) return false;  // inline, fast link
  if (buf.large()->i_flags & EXT4_INLINE_DATA_FL) return false;
  struct Probe {
    const std::vector<std::pair<uint64_t, uint64_t>>* iv;
    bool hit = false;
  } probe{&iv};
  auto visit = [](ext2_filsys, blk64_t* blocknr, e2_blkcnt_t, blk64_t, int, void* priv) -> int {
    auto* p = static_cast<Probe*>(priv);
    if (*blocknr && Overlaps(*p->iv, *blocknr, *blocknr + 1)) {
      p->hit = true;
      return BLOCK_ABORT;
    }
    return 0;
  };
  errcode_t e = ext2fs_block_iterate3(c.fs, ino, BLOCK_FLAG_READ_ONLY, nullptr, visit, &probe);
  if (e) return c.Err(e, "reading the block map of", shown);
  return probe.hit;
}

Result<std::vector<std::string>> Filesystem::EntryNames(uint32_t dir_ino) {
  const FsContext c = impl_->ctx();
  ASSIGN_OR_RETURN(auto entries, ReadableEntries(c, dir_ino, "directory inode " +
                                                 std::to_string(dir_ino), impl_->warn, nullptr));
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (auto& e : entries) names.push_back(std::move(e.name));
  return names;  // ReadableEntries sorts them
}

namespace {

using PathMap = std::map<uint32_t, std::vector<std::string>>;

// The paths of `inos` found without walking the whole tree: a directory's
// by following ".." up to the root (each step checked: the parent must
// name the child), a file's (one link) in a directory of `inos` (a file
// created, removed or renamed changed its directory, which is then among
// them). nullopt when that does not name every one of them (a file with
// several links, or changed in place in an unchanged directory): the
// caller walks everything then.
Result<std::optional<PathMap>> PathsNearby(const FsContext& c, const std::set<uint32_t>& inos,
                                           const WarnFn& warn) {
  PathMap out;
  std::map<uint32_t, std::string> dir_paths{{EXT2_ROOT_INO, ""}};
  // "" for the root, "/a/b" for others; nullopt when it cannot be told.
  auto dir_path = [&](uint32_t dir) -> Result<std::optional<std::string>> {
    std::vector<std::pair<uint32_t, std::string>> chain;  // dir, its name
    std::set<uint32_t> seen;
    uint32_t cur = dir;
    while (!dir_paths.count(cur)) {
      if (!seen.insert(cur).second || seen.size() > 4096) return std::optional<std::string>();
      ext2_ino_t parent = 0;
      if (ext2fs_lookup(c.fs, cur, "..", 2, nullptr, &parent) || parent == 0 || parent == cur) {
        return std::optional<std::string>();
      }
      ASSIGN_OR_RETURN(auto entries,
                       ReadableEntries(c, parent, "inode " + std::to_string(parent), warn, nullptr));
      auto it = std::find_if(entries.begin(), entries.end(), [&](const DirEntry& e) {
        return e.ino == cur && e.ftype == EXT2_FT_DIR;
      });
      if (it == entries.end()) return std::optional<std::string>();
      chain.emplace_back(cur, it->name);
      cur = parent;
    }
    std::string path = dir_paths[cur];
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      path += "/" + it->second;
      dir_paths[it->first] = path;
    }
    return std::optional<std::string>(dir_paths[dir]);
  };
  std::set<uint32_t> files, dirs;
  for (uint32_t ino : inos) {
    InodeBuf buf(c.fs);
    RETURN_IF_ERROR(ReadInode(c, ino, &buf, "inode " + std::to_string(ino)));
    const ext2_inode_large* i = buf.large();
    if (LINUX_S_ISDIR(i->i_mode)) {
      dirs.insert(ino);
    } else if (i->i_links_count == 1) {
      files.insert(ino);
    } else {
      return std::optional<PathMap>();  // every name of a linked file needs the walk
    }
  }
  for (uint32_t d : dirs) {
    ASSIGN_OR_RETURN(auto p, dir_path(d));
    if (!p) return std::optional<PathMap>();
    out[d].push_back(p->empty() ? "/" : *p);
  }
  size_t named = 0;
  for (uint32_t d : dirs) {
    if (files.empty()) break;
    ASSIGN_OR_RETURN(auto entries, ReadableEntries(c, d, "inode " + std::to_string(d), warn, nullptr));
    for (const DirEntry& e : entries) {
      if (files.count(e.ino) && e.ftype != EXT2_FT_DIR) {
        out[e.ino].push_back(dir_paths[d] + "/" + e.name);
        ++named;
      }
    }
  }
  if (named != files.size()) return std::optional<PathMap>();
  for (uint32_t f : files) {
    if (out[f].size() != 1) return std::optional<PathMap>();
  }
  return std::optional<PathMap>(std::move(out));
}

}  // namespace

Result<std::map<uint32_t, std::vector<std::string>>> Filesystem::PathsOf(
    const std::set<uint32_t>& inos) {
  std::map<uint32_t, std::vector<std::string>> out;
  if (inos.empty()) return out;
  const FsContext c = impl_->ctx();
  ASSIGN_OR_RETURN(auto nearby, PathsNearby(c, inos, impl_->warn));
  if (nearby) return std::move(*nearby);
  if (inos.count(EXT2_ROOT_INO)) out[EXT2_ROOT_INO].push_back("/");
  DirVisits visits;
  visits.Enter(EXT2_ROOT_INO, "/", impl_->warn, nullptr);
  std::vector<std::pair<uint32_t, std::string>> todo{{EXT2_ROOT_INO, ""}};
  while (!todo.empty()) {
    auto [dir, path] = std::move(todo.back());
    todo.pop_back();
    const std::string shown = path.empty() ? "/" : EscapeText(path);
    ASSIGN_OR_RETURN(auto entries, ReadableEntries(c, dir, shown, impl_->warn, nullptr));
    for (const DirEntry& e : entries) {
      const std::string child = path + "/" + e.name;
      if (inos.count(e.ino)) out[e.ino].push_back(child);
      if (e.ftype == EXT2_FT_DIR && visits.Enter(e.ino, ChildShown(shown, e.name), impl_->warn,
                                                 nullptr)) {
        todo.emplace_back(e.ino, child);
      }
    }
  }
  for (auto& [ino, paths] : out) std::sort(paths.begin(), paths.end());
  return out;
}

}  // namespace stack::fsbridge

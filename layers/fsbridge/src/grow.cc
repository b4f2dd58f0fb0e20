// Filesystem::Grow: an offline grow of ext4 through libext2fs, in the steps
// resize2fs takes for one (resize/resize2fs.c: adjust_fs_info,
// fix_resize_inode, calculate_summary_stats), for the layouts we make and
// open: no bigalloc, meta_bg or sparse_super2 (refused). Nothing moves:
// growth that would need descriptor blocks where the reserved GDT blocks
// are not is refused before any change (spec/fsbridge.md "Growing").
#include <cmath>
#include <cstring>

#include "filesystem_impl.h"

namespace stack::fsbridge {
namespace {

// The geometry a grow ends with.
struct GrowPlan {
  uint64_t blocks = 0;
  dgrp_t groups = 0;
  uint64_t desc_blocks = 0;
};

uint64_t DivCeil(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

std::string Bytes(uint64_t b) { return std::to_string(b) + " bytes"; }

// Works out the new geometry, or why the layout cannot take it; changes
// nothing. blocks >= the current count.
Result<GrowPlan> PlanGrow(ext2_filsys fs, uint64_t blocks, const std::string& name) {
  ext2_super_block* sb = fs->super;
  const uint64_t bpg = EXT2_BLOCKS_PER_GROUP(sb), first = sb->s_first_data_block;
  const uint64_t dpb = EXT2_DESC_PER_BLOCK(sb), bs = fs->blocksize;
  // Descriptor blocks after each superblock copy, used or reserved: the
  // most the groups can have without moving anything.
  const uint64_t gdt_room =
      fs->desc_blocks + (ext2fs_has_feature_resize_inode(sb) ? sb->s_reserved_gdt_blocks : 0);
  // The tightest of the layout's limits, with the reason it gives.
  uint64_t max_blocks = gdt_room * dpb * bpg + first;
  std::string why = std::to_string(gdt_room) + " group descriptor blocks (" +
                    std::to_string(fs->desc_blocks) + " used, " +
                    std::to_string(gdt_room - fs->desc_blocks) +
                    " reserved for growth) describe at most " + std::to_string(gdt_room * dpb) +
                    " groups";
  const uint64_t inode_groups = 0xffffffffull / sb->s_inodes_per_group;
  if (inode_groups * bpg + first < max_blocks) {
    max_blocks = inode_groups * bpg + first;
    why = "more groups would hold 2^32 inodes or more";
  }
  if (!ext2fs_has_feature_64bit(sb) && max_blocks > 0xffffffffull) {
    max_blocks = 0xffffffffull;
    why = "without the 64bit feature ext4 has fewer than 2^32 blocks";
  }
  if (blocks > max_blocks)
    return Status::Unsupported("growing ext4 on " + name + " to " + Bytes(blocks * bs) +
                               ": its layout takes at most " + Bytes(max_blocks * bs) + " (" +
                               why + ")");
  GrowPlan p;
  p.blocks = blocks;
  for (;;) {
    p.groups = dgrp_t(DivCeil(p.blocks - first, bpg));
    p.desc_blocks = DivCeil(p.groups, dpb);
    // A last group too small for its own tables (plus resize2fs's margin
    // of 50 blocks) is left out, as resize2fs does.
    const uint64_t rem = (p.blocks - first) % bpg;
    uint64_t overhead = 2 + fs->inode_blocks_per_group;
    if (ext2fs_bg_has_super(fs, p.groups - 1)) overhead += 1 + gdt_room;
    if (p.groups > 1 && rem && rem < overhead + 50 && p.blocks - rem >= ext2fs_blocks_count(sb)) {
      p.blocks -= rem;
      continue;
    }
    break;
  }
  if (p.groups < fs->group_desc_count) p.groups = fs->group_desc_count;  // kept whole
  return p;
}

// The resize inode lists every reserved GDT block and its backups; rebuilt
// for the new groups (and fewer reserved blocks), as resize2fs does: its
// block count reset to the double-indirect block, that block zeroed, then
// ext2fs_create_resize_inode fills it again.
errcode_t RebuildResizeInode(ext2_filsys fs) {
  if (!ext2fs_has_feature_resize_inode(fs->super)) return 0;
  struct ext2_inode inode;
  errcode_t e = ext2fs_read_inode(fs, EXT2_RESIZE_INO, &inode);
  if (e) return e;
  const blk_t dind = inode.i_block[EXT2_DIND_BLOCK];
  if (dind == 0) return EXT2_ET_RESIZE_INODE_CORRUPT;
  ext2fs_iblk_set(fs, &inode, 1);
  e = ext2fs_write_inode(fs, EXT2_RESIZE_INO, &inode);
  if (e) return e;
  e = ext2fs_zero_blocks2(fs, dind, 1, nullptr, nullptr);
  if (e) return e;
  return ext2fs_create_resize_inode(fs);
}

// Free block and inode counts of every group and of the superblock, from
// the bitmaps (resize2fs_calculate_summary_stats).
errcode_t RecountFree(ext2_filsys fs) {
  uint64_t free_blocks = 0, free_inodes = 0;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    blk64_t used = 0;
    errcode_t e = ext2fs_count_used_clusters(fs, ext2fs_group_first_block2(fs, g),
                                             ext2fs_group_last_block2(fs, g), &used);
    if (e) return e;
    const uint64_t n = uint64_t(ext2fs_group_blocks_count(fs, g)) - used;
    ext2fs_bg_free_blocks_count_set(fs, g, n);
    free_blocks += n;
    free_inodes += ext2fs_bg_free_inodes_count(fs, g);
    ext2fs_group_desc_csum_set(fs, g);
  }
  ext2fs_free_blocks_count_set(fs->super, free_blocks);
  fs->super->s_free_inodes_count = uint32_t(free_inodes);
  return 0;
}

}  // namespace

Result<uint64_t> Filesystem::Grow(uint64_t new_size) {
  Impl& m = *impl_;
  if (m.closed) return Status::InvalidArgument("grow: filesystem is closed");
  if (!m.writable) return Status::ReadOnly("grow: filesystem opened read-only");
  ext2_filsys fs = m.fs;
  ext2_super_block* sb = fs->super;
  const std::string name = m.dev->describe();
  const uint64_t bs = fs->blocksize, old_blocks = ext2fs_blocks_count(sb);
  if (new_size == 0) new_size = m.dev->size_bytes();
  if (new_size > m.dev->size_bytes())
    return Status::OutOfRange("growing ext4 on " + name + " to " + Bytes(new_size) +
                              ": the device holds " + Bytes(m.dev->size_bytes()));
  const uint64_t blocks = new_size / bs;
  if (blocks < old_blocks)
    return Status::Unsupported("growing ext4 on " + name + " to " + Bytes(new_size) +
                               ": it is " + Bytes(old_blocks * bs) +
                               ", and shrinking a file system is not supported");
  if (ext2fs_has_feature_bigalloc(sb) || ext2fs_has_feature_meta_bg(sb) ||
      ext2fs_has_feature_sparse_super2(sb))
    return Status::Unsupported("growing ext4 on " + name +
                               ": bigalloc, meta_bg and sparse_super2 layouts are not supported");
  if (blocks == old_blocks) return old_blocks * bs;
  ASSIGN_OR_RETURN(const GrowPlan plan, PlanGrow(fs, blocks, name));
  if (plan.blocks == old_blocks) return old_blocks * bs;

  // From here the in-memory file system changes; a failure abandons it
  // unwritten and closed (libext2fs writes the superblock, descriptors and
  // bitmaps only at flush), so the device keeps the old, consistent file
  // system.
  const FsContext c = m.ctx();
  auto abandon = [&](errcode_t e, const std::string& what) -> Status {
    Status s = c.Err(e, "growing ext4: " + what + " on", name);
    ext2fs_free(m.fs);
    m.fs = nullptr;
    m.closed = true;
    return s;
  };
  const dgrp_t old_groups = fs->group_desc_count;
  const uint64_t old_desc_blocks = fs->desc_blocks;
  const uint64_t old_r_blocks = ext2fs_r_blocks_count(sb);

  ext2fs_blocks_count_set(sb, plan.blocks);
  sb->s_overhead_clusters = 0;  // the kernel computes it again
  fs->group_desc_count = plan.groups;
  fs->desc_blocks = plan.desc_blocks;
  sb->s_inodes_count = sb->s_inodes_per_group * plan.groups;
  // Reserved (root) blocks keep their share.
  ext2fs_r_blocks_count_set(
      sb, uint64_t(std::floor(static_cast<long double>(old_r_blocks) * plan.blocks / old_blocks)));

  errcode_t e = ext2fs_resize_inode_bitmap2(sb->s_inodes_count, sb->s_inodes_count, fs->inode_map);
  if (e) return abandon(e, "resizing the inode bitmap");
  const uint64_t real_end = uint64_t(EXT2_BLOCKS_PER_GROUP(sb)) * plan.groups - 1 +
                            sb->s_first_data_block;
  e = ext2fs_resize_block_bitmap2(plan.blocks - 1, real_end, fs->block_map);
  if (e) return abandon(e, "resizing the block bitmap");
  if (plan.desc_blocks != old_desc_blocks) {
    e = ext2fs_resize_mem(old_desc_blocks * bs, plan.desc_blocks * bs, &fs->group_desc);
    if (e) return abandon(e, "allocating group descriptors");
    std::memset(reinterpret_cast<char*>(fs->group_desc) + old_desc_blocks * bs, 0,
                (plan.desc_blocks - old_desc_blocks) * bs);
    // The new descriptor blocks are the first reserved GDT blocks (after
    // every superblock copy); PlanGrow checked there are enough.
    if (ext2fs_has_feature_resize_inode(sb))
      sb->s_reserved_gdt_blocks = uint16_t(sb->s_reserved_gdt_blocks -
                                           (plan.desc_blocks - old_desc_blocks));
  }

  // Superblock copies and descriptor blocks (used and reserved) of every
  // group, the new ones included, are in use.
  for (dgrp_t g = 0; g < plan.groups; ++g) ext2fs_reserve_super_and_bgd(fs, g, fs->block_map);

  const bool csum = ext2fs_has_group_desc_csum(fs);
  for (dgrp_t g = old_groups; g < plan.groups; ++g) {
    std::memset(ext2fs_group_desc(fs, fs->group_desc, g), 0, EXT2_DESC_SIZE(sb));
    if (csum) {
      // No inode used yet (the kernel and e2fsck skip the table), and no
      // block bitmap to read unless a table lands in the group
      // (ext2fs_allocate_group_table clears BLOCK_UNINIT there). The last
      // group never is BLOCK_UNINIT, as in mke2fs.
      ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_UNINIT);
      ext2fs_bg_itable_unused_set(fs, g, sb->s_inodes_per_group);
      if (g + 1 < plan.groups) ext2fs_bg_flags_set(fs, g, EXT2_BG_BLOCK_UNINIT);
    }
    ext2fs_bg_free_inodes_count_set(fs, g, sb->s_inodes_per_group);
    ext2fs_bg_used_dirs_count_set(fs, g, 0);
    e = ext2fs_allocate_group_table(fs, g, nullptr);
    if (e) return abandon(e, "allocating the tables of group " + std::to_string(g));
  }
  // Inode tables are zeroed for real, as Mkfs does (holes in a pool, zeros
  // encrypted under LUKS), and only then marked zeroed.
  for (dgrp_t g = old_groups; g < plan.groups; ++g) {
    e = ext2fs_zero_blocks2(fs, ext2fs_inode_table_loc(fs, g), int(fs->inode_blocks_per_group),
                            nullptr, nullptr);
    if (e) return abandon(e, "zeroing the inode table of group " + std::to_string(g));
    ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
  }
  e = RecountFree(fs);
  if (e) return abandon(e, "counting free blocks");
  e = RebuildResizeInode(fs);
  if (e) return abandon(e, "rebuilding the resize inode");
  ext2fs_mark_super_dirty(fs);
  ext2fs_mark_bb_dirty(fs);
  ext2fs_mark_ib_dirty(fs);
  return plan.blocks * bs;
}

}  // namespace stack::fsbridge

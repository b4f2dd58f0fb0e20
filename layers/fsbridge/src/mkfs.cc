// mkfs: an ext4 filesystem with Debian bookworm's default profile, in
// mke2fs's order (spec/fsbridge.md "Profile"): initialize -> allocate
// tables -> zero inode tables -> root, lost+found, reserved inodes, bad
// block inode -> resize inode -> journal. Populate and close come later.
#include <sys/random.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <ctime>

#include "filesystem_impl.h"

namespace stack::fsbridge {

namespace {

constexpr uint64_t kMinDeviceBytes = 8ull << 20;

std::array<uint8_t, 16> RandomUuid() {
  std::array<uint8_t, 16> u{};
  size_t got = 0;
  while (got < u.size()) {
    ssize_t n = getrandom(u.data() + got, u.size() - got, 0);
    if (n > 0) got += size_t(n);
  }
  u[6] = uint8_t((u[6] & 0x0f) | 0x40);  // version 4
  u[8] = uint8_t((u[8] & 0x3f) | 0x80);  // variant
  return u;
}

// A hash seed derived from the uuid (reproducible, and distinct from it).
std::array<uint8_t, 16> SeedFromUuid(const std::array<uint8_t, 16>& uuid) {
  std::array<uint8_t, 16> s{};
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a splitmix finaliser
  for (int round = 0; round < 2; ++round) {
    for (uint8_t b : uuid) h = (h ^ b) * 0x100000001b3ull;
    uint64_t z = h + 0x9e3779b97f4a7c15ull * uint64_t(round + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int i = 0; i < 8; ++i) s[size_t(round * 8 + i)] = uint8_t(z >> (8 * i));
  }
  s[6] = uint8_t((s[6] & 0x0f) | 0x40);
  s[8] = uint8_t((s[8] & 0x3f) | 0x80);
  return s;
}

int Log2(uint32_t v) {
  int l = 0;
  while ((1u << l) < v) ++l;
  return l;
}

}  // namespace

Status FormatExt4(Filesystem::Impl* impl, const MkfsOptions& o) {
  BlockDevice& dev = *impl->dev;
  const std::string name = dev.describe();
  const uint64_t size = o.size_bytes ? o.size_bytes : dev.size_bytes();
  if (size > dev.size_bytes())
    return Status::InvalidArgument("mkfs on " + name + ": size " + std::to_string(size) +
                                   " is past the device end (" +
                                   std::to_string(dev.size_bytes()) + " bytes)");
  if (size < kMinDeviceBytes)
    return Status::InvalidArgument("mkfs on " + name + ": device smaller than 8 MiB");
  // 4 KiB by default, whatever the device block: a device block above 4 KiB
  // is an allocation unit (a pool's block), not a sector size, and the I/O
  // manager read-modify-writes below it, while an ext4 block larger than the
  // page size is one most kernels cannot mount.
  uint32_t bs = o.block_size ? o.block_size : 4096;
  if (bs < 1024 || bs > 65536 || (bs & (bs - 1)))
    return Status::InvalidArgument("mkfs: block size must be a power of two in 1024..65536");
  // A block smaller than a real sector (512 or 4096) makes an image the kernel
  // refuses to mount.
  if (bs < std::min<uint32_t>(dev.block_size(), 4096))
    return Status::InvalidArgument("mkfs: block size " + std::to_string(bs) +
                                   " is smaller than the device block size " +
                                   std::to_string(dev.block_size()));
  const uint32_t inode_size = o.inode_size ? o.inode_size : 256;
  if (inode_size < 256 || inode_size > bs || (inode_size & (inode_size - 1)))
    return Status::InvalidArgument("mkfs: inode size must be a power of two, 256..block size");
  const uint32_t ratio = o.inode_ratio ? o.inode_ratio : 16384;
  if (ratio < bs && ratio < 1024)
    return Status::InvalidArgument("mkfs: inode ratio must be at least 1024");
  if (!(o.reserved_ratio >= 0 && o.reserved_ratio <= 0.5))
    return Status::InvalidArgument("mkfs: reserved ratio must be in [0, 0.5]");
  if (o.label.size() > 16) return Status::InvalidArgument("mkfs: label longer than 16 bytes");
  if (o.timestamp && (*o.timestamp < 0 || *o.timestamp > 0xffffffffll))
    return Status::InvalidArgument("mkfs: timestamp out of range");

  const uint64_t blocks = size / bs;
  ext2_super_block param;
  std::memset(&param, 0, sizeof param);
  ext2fs_blocks_count_set(&param, blocks);
  param.s_log_block_size = uint32_t(Log2(bs) - EXT2_MIN_BLOCK_LOG_SIZE);
  param.s_log_cluster_size = param.s_log_block_size;
  param.s_rev_level = EXT2_DYNAMIC_REV;
  param.s_inode_size = uint16_t(inode_size);
  param.s_inodes_count = uint32_t(std::min<uint64_t>(size / ratio, 0xffffffffull - 1));
  ext2fs_r_blocks_count_set(&param, uint64_t(std::floor(double(blocks) * o.reserved_ratio)));
  param.s_log_groups_per_flex = 4;  // flex_bg size 16
  param.s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
  param.s_default_mount_opts = EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL;
  // Debian's base_features + the ext4 profile.
  ext2fs_set_feature_sparse_super(&param);
  ext2fs_set_feature_large_file(&param);
  ext2fs_set_feature_filetype(&param);
  ext2fs_set_feature_resize_inode(&param);
  ext2fs_set_feature_dir_index(&param);
  ext2fs_set_feature_xattr(&param);
  ext2fs_set_feature_journal(&param);
  ext2fs_set_feature_extents(&param);
  ext2fs_set_feature_huge_file(&param);
  ext2fs_set_feature_flex_bg(&param);
  ext2fs_set_feature_metadata_csum(&param);
  ext2fs_set_feature_64bit(&param);
  ext2fs_set_feature_dir_nlink(&param);
  ext2fs_set_feature_extra_isize(&param);
  param.s_min_extra_isize = param.s_want_extra_isize =
      uint16_t(sizeof(ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE);

  // A device that promises zeros after discard is cleared first, so free
  // space reads as zeros (identical images from identical input).
  const DeviceCapabilities caps = dev.capabilities();
  if (caps.discard_supported && caps.discard_zeroes)
    RETURN_IF_ERROR(dev.Discard(0, blocks * bs).WithContext("mkfs: discarding " + name));

  ext2_filsys fs = nullptr;
  errcode_t e = ext2fs_initialize(impl->io->name().c_str(), EXT2_FLAG_64BITS, &param,
                                  IoBinding::manager(), &fs);
  if (e) return Ext2Status(e, "mkfs: initializing", name, impl->io->TakeLastError());
  impl->fs = fs;
  const FsContext c = impl->ctx();
  if (o.timestamp) {
    // libext2fs stamps fs->now when non-zero; 0 means "the clock" there,
    // so the epoch itself is written as 1 second past it.
    fs->now = time_t(*o.timestamp ? *o.timestamp : 1);
    fs->super->s_mkfs_time = fs->super->s_lastcheck = uint32_t(fs->now);
  }
  fs->super->s_kbytes_written = 1;
  const std::array<uint8_t, 16> uuid = o.uuid ? *o.uuid : RandomUuid();
  std::memcpy(fs->super->s_uuid, uuid.data(), 16);
  ext2fs_init_csum_seed(fs);
  fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
  // Signed hash, fixed (not from the build machine's char type) so the
  // same input gives the same image everywhere.
  fs->super->s_flags |= EXT2_FLAGS_SIGNED_HASH;
  const std::array<uint8_t, 16> seed =
      o.hash_seed ? *o.hash_seed : (o.uuid ? SeedFromUuid(uuid) : RandomUuid());
  std::memcpy(fs->super->s_hash_seed, seed.data(), 16);
  fs->super->s_max_mnt_count = uint16_t(-1);
  fs->super->s_checkinterval = 0;
  std::memset(fs->super->s_volume_name, 0, sizeof fs->super->s_volume_name);
  std::memcpy(fs->super->s_volume_name, o.label.data(), o.label.size());
  fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;

  e = ext2fs_allocate_tables(fs);
  if (e) return c.Err(e, "mkfs: allocating group tables on", name);

  // Inode tables are zeroed for real (WriteZeroes: holes where the device
  // can, encrypted zeros over encryption) and only then marked zeroed.
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    e = ext2fs_zero_blocks2(fs, ext2fs_inode_table_loc(fs, g), int(fs->inode_blocks_per_group),
                            nullptr, nullptr);
    if (e) return c.Err(e, "mkfs: zeroing inode tables on", name);
    ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
    ext2fs_group_desc_csum_set(fs, g);
  }
  // Reserved inodes always carry valid checksums.
  {
    InodeBuf z(fs);
    for (ext2_ino_t ino = 1; ino < EXT2_FIRST_INO(fs->super); ++ino)
      RETURN_IF_ERROR(WriteInode(c, ino, &z, "reserved inode " + std::to_string(ino)));
  }

  e = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, nullptr);
  if (e) return c.Err(e, "mkfs: creating", "/");
  {
    // Root is owned by 0:0, not by whoever runs mkfs.
    InodeBuf root(fs);
    RETURN_IF_ERROR(ReadInode(c, EXT2_ROOT_INO, &root, "/"));
    root.large()->i_uid = root.large()->i_gid = 0;
    ext2fs_set_i_uid_high(*root.large(), 0);
    ext2fs_set_i_gid_high(*root.large(), 0);
    RETURN_IF_ERROR(WriteInode(c, EXT2_ROOT_INO, &root, "/"));
  }
  fs->umask = 077;
  e = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
  if (e) return c.Err(e, "mkfs: creating", "/lost+found");
  fs->umask = 022;
  ext2_ino_t lpf = 0;
  e = ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", 10, nullptr, &lpf);
  if (e) return c.Err(e, "mkfs: looking up", "/lost+found");
  for (uint32_t size = bs; size < 16384 || size < 2 * bs; size += bs) {
    e = ext2fs_expand_dir(fs, lpf);
    if (e) return c.Err(e, "mkfs: expanding", "/lost+found");
  }
  for (ext2_ino_t ino = EXT2_ROOT_INO + 1; ino < EXT2_FIRST_INODE(fs->super); ++ino)
    ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
  ext2fs_mark_ib_dirty(fs);
  ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
  ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
  e = ext2fs_update_bb_inode(fs, nullptr);
  if (e) return c.Err(e, "mkfs: writing the bad block inode on", name);
  e = ext2fs_create_resize_inode(fs);
  if (e) return c.Err(e, "mkfs: reserving blocks for online resize on", name);

  ext2fs_journal_params jp;
  e = ext2fs_get_journal_params(&jp, fs);
  if (e || jp.num_journal_blocks == 0)
    return Status::InvalidArgument("mkfs on " + name + ": too small for a journal");
  // Zeroing the journal costs its whole size in writes (64 MiB at 2 GiB,
  // encrypted and stored under LUKS); skipped on a fresh device (see
  // MkfsOptions::fresh_device).
  const int jflags = EXT2_MKJOURNAL_NO_MNT_CHECK | (o.fresh_device ? EXT2_MKJOURNAL_LAZYINIT : 0);
  e = ext2fs_add_journal_inode3(fs, &jp, ~0ULL, jflags);
  if (e) return c.Err(e, "mkfs: creating the journal on", name);
  ext2fs_mark_super_dirty(fs);
  return Status::Ok();
}

}  // namespace stack::fsbridge

// Filesystem lifetime: Mkfs, Open, Flush, Close, Release, Df.
#include <sys/stat.h>

#include <cstring>
#include <ctime>
#include <iostream>

#include "filesystem_impl.h"

namespace stack::fsbridge {

Timespec Filesystem::Impl::Now(const std::optional<int64_t>& ts) const {
  if (ts) return Timespec{*ts, 0};
  if (timestamp) return Timespec{*timestamp, 0};
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return Timespec{int64_t(t.tv_sec), uint32_t(t.tv_nsec)};
}

Attrs DefaultDirAttrs(Timespec now, uint32_t mode) {
  Attrs a;
  a.mode = S_IFDIR | (mode & 07777);
  a.atime = a.mtime = a.ctime = a.crtime = now;
  return a;
}

Status Filesystem::Impl::CheckWritable(const std::string& what) const {
  if (closed) return Status::InvalidArgument(what + ": filesystem is closed");
  if (!writable) return Status::ReadOnly(what + ": filesystem opened read-only");
  if (!ext2fs_has_feature_extents(fs->super))
    return Status::Unsupported(what + ": writing needs the extent feature (ext4)");
  return Status::Ok();
}

Result<uint32_t> Filesystem::Impl::Lookup(const std::string& path) const {
  if (closed) return Status::InvalidArgument(path + ": filesystem is closed");
  ASSIGN_OR_RETURN(auto comps, SplitPath(path));
  ext2_ino_t ino = EXT2_ROOT_INO;
  std::string sofar;
  for (const std::string& comp : comps) {
    sofar += "/" + comp;
    ext2_ino_t next = 0;
    errcode_t e = ext2fs_lookup(fs, ino, comp.c_str(), int(comp.size()), nullptr, &next);
    if (e) return ctx().Err(e, "looking up", sofar);  // FILE_NOT_FOUND -> NotFound
    ino = next;
  }
  return uint32_t(ino);
}

Result<uint64_t> Filesystem::Impl::WriteMetadataAndDiscard(const std::vector<BlockRange>& ranges) {
  if (ranges.empty() || !dev->capabilities().discard_supported) return uint64_t(0);
  errcode_t e = ext2fs_flush2(fs, EXT2_FLAG_FLUSH_NO_SYNC);
  if (e) return Ext2Status(e, "writing metadata of", dev->describe(), io->TakeLastError());
  // Written: CloseFs must not write it all again unless something changes
  // after this (a second copy of unchanged metadata after a pool commit
  // would only be copied on write).
  fs->flags &= ~EXT2_FLAG_CHANGED;
  RETURN_IF_ERROR(io->WriteBack());
  uint64_t bytes = 0;
  for (const BlockRange& r : ranges) {
    e = io_channel_discard(fs->io, r.first, r.count);
    if (e == EXT2_ET_UNIMPLEMENTED) return bytes;
    if (e) return Ext2Status(e, "discarding free blocks of", dev->describe(), io->TakeLastError());
    bytes += r.count * uint64_t(fs->blocksize);
  }
  return bytes;
}

Status Filesystem::Impl::DiscardFreed() {
  if (closed || !writable || !fs || freed.empty()) return Status::Ok();
  return WriteMetadataAndDiscard(freed.TakeStillFree(fs)).status();
}

Status Filesystem::Impl::CloseFs() {
  if (closed) return Status::Ok();
  Status st = DiscardFreed();
  closed = true;
  if (fs) {
    // Write the superblock and descriptors back only when something changed
    // (libext2fs sets EXT2_FLAG_CHANGED on every inode, bitmap and super
    // update): a refused edit (rm of a missing path) must leave the image,
    // and so the pool, byte for byte as it was.
    if (writable && (fs->flags & EXT2_FLAG_CHANGED)) ext2fs_mark_super_dirty(fs);
    errcode_t e = writable ? ext2fs_close2(fs, 0) : (ext2fs_free(fs), 0);
    if (e) {
      if (st.ok()) st = Ext2Status(e, "closing", dev->describe(), io->TakeLastError());
      ext2fs_free(fs);
    }
    fs = nullptr;
  }
  if (st.ok() && writable) st = io->WriteBack();
  if (st.ok() && writable) st = dev->Flush().WithContext("flushing " + dev->describe());
  io.reset();
  return st;
}


Filesystem::~Filesystem() {
  if (impl_) (void)impl_->CloseFs();
}

Result<std::unique_ptr<Filesystem>> Filesystem::Mkfs(std::unique_ptr<BlockDevice> device,
                                                     const MkfsOptions& opts) {
  if (!device) return Status::InvalidArgument("mkfs: no device");
  if (device->capabilities().read_only)
    return Status::ReadOnly("mkfs: " + device->describe() + " is read-only");
  auto impl = std::make_unique<Impl>();
  impl->dev = std::move(device);
  impl->io = std::make_unique<IoBinding>(impl->dev.get());
  impl->writable = true;
  impl->timestamp = opts.timestamp;
  Status s = FormatExt4(impl.get(), opts);
  if (!s.ok()) {
    if (impl->fs) ext2fs_free(impl->fs);
    impl->fs = nullptr;
    impl->closed = true;
    return s;
  }
  impl->freed.Attach(impl->fs);
  return std::unique_ptr<Filesystem>(new Filesystem(std::move(impl)));
}

Result<std::unique_ptr<Filesystem>> Filesystem::Open(std::unique_ptr<BlockDevice> device,
                                                     bool writable) {
  if (!device) return Status::InvalidArgument("open: no device");
  if (writable && device->capabilities().read_only)
    return Status::ReadOnly("open: " + device->describe() + " is read-only");
  auto impl = std::make_unique<Impl>();
  impl->dev = std::move(device);
  impl->io = std::make_unique<IoBinding>(impl->dev.get());
  impl->writable = writable;
  const std::string name = impl->dev->describe();
  ext2_filsys fs = nullptr;
  int flags = EXT2_FLAG_64BITS;
  if (writable) flags |= EXT2_FLAG_RW;
  errcode_t e = ext2fs_open2(impl->io->name().c_str(), nullptr, flags, 0, 0, IoBinding::manager(), &fs);
  if (e) return Ext2Status(e, "opening ext4 on", name, impl->io->TakeLastError());
  impl->fs = fs;
  impl->closed = false;
  if (writable) {
    if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
      ext2fs_free(fs);
      impl->fs = nullptr;
      impl->closed = true;
      return Status::Unsupported("opening " + name +
                                 " for writing: the journal needs recovery (run e2fsck)");
    }
    e = ext2fs_read_bitmaps(fs);
    if (e) {
      Status s = impl->ctx().Err(e, "reading bitmaps of", name);
      ext2fs_free(fs);
      impl->fs = nullptr;
      impl->closed = true;
      return s;
    }
    impl->freed.Attach(fs);
  }
  // Every path starts at the root: a root that is not a directory is
  // damage every command would trip over differently (or, read as a file,
  // be streamed as one); refused once here.
  struct ext2_inode root {};
  e = ext2fs_read_inode(fs, EXT2_ROOT_INO, &root);
  if (e || !LINUX_S_ISDIR(root.i_mode)) {
    Status s = e ? impl->ctx().Err(e, "reading the root inode of", name)
                 : Status::Corruption("opening ext4 on " + name +
                                      ": the root inode (2) is not a directory: run e2fsck");
    ext2fs_free(fs);
    impl->fs = nullptr;
    impl->closed = true;
    return s;
  }
  return std::unique_ptr<Filesystem>(new Filesystem(std::move(impl)));
}

bool Filesystem::writable() const { return impl_->writable; }

void Filesystem::SetWarningSink(std::function<void(const std::string&)> sink) {
  impl_->warn = std::move(sink);
}

Filesystem::Filesystem(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  if (!impl_->warn)
    impl_->warn = [](const std::string& w) { std::cerr << "stack: warning: " << w << "\n"; };
}

Status Filesystem::Flush() {
  if (impl_->closed) return Status::InvalidArgument("flush: filesystem is closed");
  if (!impl_->writable) return Status::Ok();
  RETURN_IF_ERROR(impl_->DiscardFreed());
  errcode_t e = ext2fs_flush(impl_->fs);
  if (e) return Ext2Status(e, "flushing", impl_->dev->describe(), impl_->io->TakeLastError());
  RETURN_IF_ERROR(impl_->io->WriteBack());
  return impl_->dev->Flush();
}

Status Filesystem::Close() { return impl_->CloseFs(); }

std::unique_ptr<BlockDevice> Filesystem::Release() {
  (void)impl_->CloseFs();
  return std::move(impl_->dev);
}

Result<TrimInfo> Filesystem::Trim() {
  if (impl_->closed) return Status::InvalidArgument("trim: filesystem is closed");
  if (!impl_->writable) return Status::ReadOnly("trim: filesystem opened read-only");
  if (!impl_->dev->capabilities().discard_supported)
    return Status::Unsupported("trim: " + impl_->dev->describe() +
                               " takes no discards (a LUKS2 header without allow-discards?)");
  (void)impl_->freed.TakeStillFree(impl_->fs);  // all of them are in FreeRanges
  const std::vector<BlockRange> ranges = FreeRanges(impl_->fs);
  TrimInfo t;
  ASSIGN_OR_RETURN(t.trimmed_bytes, impl_->WriteMetadataAndDiscard(ranges));
  if (t.trimmed_bytes) t.ranges = ranges.size();
  return t;
}

Result<std::optional<uint64_t>> Filesystem::TrimmableBytes() {
  if (impl_->closed) return Status::InvalidArgument("df: filesystem is closed");
  if (!impl_->dev->capabilities().discard_supported) return std::optional<uint64_t>();
  ext2_filsys fs = impl_->fs;
  if (!fs->block_map) {
    errcode_t e = ext2fs_read_block_bitmap(fs);
    if (e) return impl_->ctx().Err(e, "reading the block bitmap of", impl_->dev->describe());
  }
  if (impl_->writable) RETURN_IF_ERROR(impl_->io->WriteBack());
  uint64_t bytes = 0;
  const uint64_t bs = fs->blocksize;
  const uint64_t dbs = impl_->dev->block_size();  // trim frees whole device blocks only
  for (const BlockRange& r : FreeRanges(fs)) {
    const uint64_t a = (r.first * bs + dbs - 1) / dbs * dbs, b = (r.first + r.count) * bs / dbs * dbs;
    if (b <= a) continue;
    ASSIGN_OR_RETURN(std::vector<Extent> held, impl_->dev->AllocatedExtents(a, b - a));
    for (const Extent& x : held) bytes += x.length;
  }
  return std::optional<uint64_t>(bytes);
}

Result<DfInfo> Filesystem::Df() {
  if (impl_->closed) return Status::InvalidArgument("df: filesystem is closed");
  ext2_super_block* sb = impl_->fs->super;
  DfInfo d;
  d.block_size = impl_->fs->blocksize;
  d.blocks_total = ext2fs_blocks_count(sb);
  d.blocks_free = ext2fs_free_blocks_count(sb);
  d.blocks_reserved = ext2fs_r_blocks_count(sb);
  d.inodes_total = sb->s_inodes_count;
  d.inodes_free = sb->s_free_inodes_count;
  d.label.assign(reinterpret_cast<const char*>(sb->s_volume_name),
                 strnlen(reinterpret_cast<const char*>(sb->s_volume_name), sizeof sb->s_volume_name));
  char buf[40];
  const uint8_t* u = sb->s_uuid;
  snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
           u[14], u[15]);
  d.uuid = buf;
  return d;
}

}  // namespace stack::fsbridge

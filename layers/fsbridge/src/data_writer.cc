#include "data_writer.h"

#include <algorithm>
#include <cstring>

#include "block/endian.h"
#include "block/zero.h"
#include "freed_blocks.h"

namespace stack::fsbridge {

namespace {
constexpr size_t kRunBytes = 4 << 20;
constexpr uint32_t kMaxExtentLen = 32768;  // initialized extent limit
}  // namespace

DataWriter::DataWriter(const FsContext& c, uint64_t* goal, std::string path, uint64_t reserve,
                       bool skip_zero_blocks, std::vector<uint8_t>* scratch)
    : c_(c), goal_(goal), path_(std::move(path)), reserve_(reserve), skip_zero_(skip_zero_blocks),
      bs_(c.fs->blocksize), buf_(scratch ? *scratch : own_) {
  buf_.clear();
}

DataWriter::~DataWriter() {
  if (!finished_) FreeAll();
}

void DataWriter::FreeAll() {
  for (const Ext& e : exts_) FreeBlockRange(c_.fs, e.pblk, e.len);
  exts_.clear();
  nblocks_ = 0;
}

Status DataWriter::Write(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t end = buf_start_ + buf_.size();
  if (offset < end) return Status::Internal("DataWriter: non-monotonic write to " + path_);
  if (offset / bs_ > (end + bs_ - 1) / bs_ && !buf_.empty()) {
    // A gap of at least one whole block: close the run, start a new one.
    RETURN_IF_ERROR(FlushRun(true));
  }
  if (buf_.empty()) buf_start_ = offset / bs_ * bs_;
  buf_.resize(offset - buf_start_, 0);
  buf_.insert(buf_.end(), data.begin(), data.end());
  if (buf_.size() >= kRunBytes) RETURN_IF_ERROR(FlushRun(false));
  return Status::Ok();
}

Status DataWriter::FlushRun(bool final) {
  if (buf_.empty()) return Status::Ok();
  size_t whole = buf_.size() / bs_ * bs_;
  if (final && whole < buf_.size()) {
    buf_.resize(whole + bs_, 0);
    whole = buf_.size();
  }
  const uint64_t lblk0 = buf_start_ / bs_;
  const uint64_t n = whole / bs_;
  uint64_t i = 0;
  while (i < n) {
    if (skip_zero_ && IsAllZero({buf_.data() + i * bs_, bs_})) {
      ++i;
      continue;
    }
    uint64_t j = i + 1;
    while (j < n && !(skip_zero_ && IsAllZero({buf_.data() + j * bs_, bs_}))) ++j;
    // The whole buffer as one run (a large file's usual case): Place may
    // hand the buffer itself down and get another back.
    const bool all = i == 0 && j == n && whole == buf_.size();
    RETURN_IF_ERROR(Place(lblk0 + i, buf_.data() + i * bs_, j - i, all));
    if (all) {
      buf_.clear();  // written (and possibly swapped for a spare)
      buf_start_ += whole;
      return Status::Ok();
    }
    i = j;
  }
  buf_.erase(buf_.begin(), buf_.begin() + long(whole));
  buf_start_ += whole;
  return Status::Ok();
}

Status DataWriter::Place(uint64_t lblk, const uint8_t* data, uint64_t count, bool whole_buffer) {
  ext2_filsys fs = c_.fs;
  while (count) {
    const uint64_t free_blocks = ext2fs_free_blocks_count(fs->super);
    if (free_blocks <= reserve_ || free_blocks - reserve_ < std::min<uint64_t>(count, 1))
      return Status::NoSpace("writing " + path_ + ": filesystem full");
    uint64_t want = std::min<uint64_t>(count, free_blocks - reserve_);
    blk64_t p = 0, got = 0;
    errcode_t e = ext2fs_new_range(fs, 0, *goal_, want, nullptr, &p, &got);
    if (e) return c_.Err(e, "writing", path_);  // BLOCK_ALLOC_FAIL -> NoSpace
    ext2fs_block_alloc_stats_range(fs, p, got, +1);
    // Record before writing so a failed write still frees the blocks.
    for (uint64_t k = 0; k < got;) {
      uint32_t len = uint32_t(std::min<uint64_t>(got - k, kMaxExtentLen));
      if (!exts_.empty()) {
        Ext& last = exts_.back();
        if (last.lblk + last.len == lblk + k && last.pblk + last.len == p + k &&
            last.len + len <= kMaxExtentLen) {
          last.len += len;
          k += len;
          continue;
        }
      }
      exts_.push_back(Ext{lblk + k, p + k, len});
      k += len;
    }
    nblocks_ += got;
    if (whole_buffer && got == count && data == buf_.data() && c_.io) {
      // One allocation took all of buf_ (not the rest after a first piece
      // went elsewhere): no copy on the way down.
      Status s = c_.io->WriteBuffer(uint64_t(p) * bs_, &buf_);
      if (!s.ok()) return s.WithContext("writing data of " + path_);
      *goal_ = p + got;
      return Status::Ok();
    }
    e = io_channel_write_blk64(fs->io, p, int(got), data);
    if (e) return c_.Err(e, "writing data of", path_);
    *goal_ = p + got;
    lblk += got;
    data += got * bs_;
    count -= got;
  }
  return Status::Ok();
}

Status DataWriter::Finish(uint32_t ino, InodeBuf* inode) {
  RETURN_IF_ERROR(FlushRun(true));
  ext2_filsys fs = c_.fs;
  ext2_inode_large* i = inode->large();
  i->i_flags |= EXT4_EXTENTS_FL;
  std::memset(i->i_block, 0, sizeof(i->i_block));
  uint8_t* hdr = reinterpret_cast<uint8_t*>(i->i_block);
  PutLE16(hdr, 0xF30A);  // eh_magic
  PutLE16(hdr + 4, 4);   // eh_max
  const bool inline_tree = exts_.size() <= 4;
  if (inline_tree) {
    PutLE16(hdr + 2, uint16_t(exts_.size()));
    for (size_t k = 0; k < exts_.size(); ++k) {
      uint8_t* x = hdr + 12 + 12 * k;
      PutLE32(x, uint32_t(exts_[k].lblk));
      PutLE16(x + 4, uint16_t(exts_[k].len));
      PutLE16(x + 6, uint16_t(exts_[k].pblk >> 32));
      PutLE32(x + 8, uint32_t(exts_[k].pblk));
    }
  }
  errcode_t e = ext2fs_iblk_add_blocks(fs, inode->small(), nblocks_);
  if (e) return c_.Err(e, "counting blocks of", path_);
  RETURN_IF_ERROR(WriteInode(c_, ino, inode, path_));
  if (!inline_tree) {
    ExtentHandle h;
    e = ext2fs_extent_open2(fs, ino, nullptr, &h.h);
    for (size_t k = 0; !e && k < exts_.size(); ++k) {
      ext2fs_extent x{};
      x.e_lblk = exts_[k].lblk;
      x.e_pblk = exts_[k].pblk;
      x.e_len = exts_[k].len;
      if (k == 0) {
        e = ext2fs_extent_insert(h.h, 0, &x);
      } else {
        e = ext2fs_extent_goto2(h.h, 0, exts_[k - 1].lblk);
        if (!e) e = ext2fs_extent_insert(h.h, EXT2_EXTENT_INSERT_AFTER, &x);
      }
      if (!e) e = ext2fs_extent_fix_parents(h.h);
    }
    if (e) {
      Status s = c_.Err(e, "mapping extents of", path_);
      return s;
    }
    RETURN_IF_ERROR(ReadInode(c_, ino, inode, path_));
  }
  finished_ = true;
  return Status::Ok();
}

}  // namespace stack::fsbridge

#include "data_reader.h"

#include "block/zero.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <optional>
#include <system_error>
#include <vector>

namespace stack::fsbridge {

namespace {

constexpr uint64_t kReadRunBytes = 4 << 20;  // as DataWriter's write runs
constexpr size_t kZeroChunk = 1 << 20;

// One piece of a file, in order: `bytes` of zeros (pblk == 0) or of the
// blocks starting at pblk.
struct Piece {
  uint64_t pblk = 0;
  uint64_t bytes = 0;
  bool hole() const { return pblk == 0; }
};

// The pieces of a file in order, merged where they continue each other and
// cut in runs of at most kReadRunBytes.
class PieceList {
 public:
  explicit PieceList(uint64_t bs) : bs_(bs) {}
  void Add(uint64_t pblk, uint64_t bytes) {
    if (!out_.empty() && out_.back().bytes < kReadRunBytes) {
      Piece& last = out_.back();
      const bool joins =
          pblk == 0 ? last.hole() : (!last.hole() && last.pblk + last.bytes / bs_ == pblk);
      if (joins) {
        const uint64_t take = std::min(bytes, kReadRunBytes - last.bytes);
        last.bytes += take;
        bytes -= take;
        if (pblk) pblk += take / bs_;
      }
    }
    while (bytes) {
      const uint64_t take = std::min(bytes, kReadRunBytes);
      out_.push_back(Piece{pblk, take});
      bytes -= take;
      if (pblk) pblk += take / bs_;
    }
  }
  // Ends the list at `size` bytes (> 0): a hole up to the last block,
  // whose end past i_size is cut. Every piece is whole blocks and the list
  // then covers the last block, so the last piece is longer than the cut.
  void Finish(uint64_t next_block, uint64_t nblocks, uint64_t size) {
    if (next_block < nblocks) Add(0, (nblocks - next_block) * bs_);
    out_.back().bytes -= nblocks * bs_ - size;
  }
  std::vector<Piece> Take() { return std::move(out_); }

 private:
  uint64_t bs_;
  std::vector<Piece> out_;
};

// A damaged map: the readers refuse it rather than guess (libext2fs would
// read a block outside the file, or every hole of a huge file one block at
// a time).
Status BadMap(const std::string& path, const char* why) {
  return Status::Corruption(path + ": its block map " + why + ": run e2fsck");
}

uint64_t FsBytes(const FsContext& c) {
  return ext2fs_blocks_count(c.fs->super) * c.fs->blocksize;
}

// Whether `len` blocks at pblk lie inside the file system's data blocks.
bool InsideFs(ext2_filsys fs, uint64_t pblk, uint64_t len) {
  const uint64_t total = ext2fs_blocks_count(fs->super);
  return pblk != 0 && pblk >= fs->super->s_first_data_block && pblk < total &&
         len <= total - pblk;
}

// The pieces of a block-mapped (ext2/ext3) file, from its block map: holes
// are known without reading them (a hostile i_size of terabytes over a few
// mapped blocks costs no more than those blocks).
Result<std::vector<Piece>> BlockMappedPieces(const FsContext& c, uint32_t ino, uint64_t size,
                                             const std::string& path) {
  ext2_filsys fs = c.fs;
  const uint64_t bs = fs->blocksize;
  struct Walk {
    ext2_filsys fs;
    PieceList list;
    uint64_t bs, nblocks;
    uint64_t next = 0;  // next logical block not yet covered
    const char* bad = nullptr;
  } w{fs, PieceList(bs), bs, (size + bs - 1) / bs};
  auto cb = [](ext2_filsys, blk64_t* blk, e2_blkcnt_t n, blk64_t, int, void* p) -> int {
    auto* w = static_cast<Walk*>(p);
    if (n < 0) return 0;  // an indirect block: metadata
    const uint64_t lblk = uint64_t(n);
    if (lblk >= w->nblocks) return BLOCK_ABORT;  // in logical order: the rest is past the end
    if (lblk < w->next) w->bad = "is out of order or overlaps itself";
    else if (!InsideFs(w->fs, *blk, 1)) w->bad = "points outside the file system";
    if (w->bad) return BLOCK_ABORT;
    if (lblk > w->next) w->list.Add(0, (lblk - w->next) * w->bs);
    w->list.Add(*blk, w->bs);
    w->next = lblk + 1;
    return 0;
  };
  const errcode_t e = ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY,
                                            nullptr, cb, &w);
  if (w.bad) return BadMap(path, w.bad);
  if (e) return c.Err(e, "reading the block map of", path);
  w.list.Finish(w.next, w.nblocks, size);
  return w.list.Take();
}

// The pieces of an extent-mapped file, from its extents. Unwritten
// (uninit) extents are holes; extents past the end (preallocated) are
// checked and skipped. Every leaf must start past the one before: so a
// tree that loops, or reuses a node, ends as Corruption, not as a walk
// without end.
Result<std::vector<Piece>> ExtentPieces(const FsContext& c, uint32_t ino, InodeBuf* inode,
                                        uint64_t size, const std::string& path) {
  ext2_filsys fs = c.fs;
  const uint64_t bs = fs->blocksize;
  const uint64_t nblocks = (size + bs - 1) / bs;
  ExtentHandle h;
  errcode_t e = ext2fs_extent_open2(fs, ino, inode->small(), &h.h);
  if (e) return c.Err(e, "reading extents of", path);
  PieceList out(bs);
  uint64_t next = 0;     // next logical block not yet covered
  uint64_t covered = 0;  // blocks of the file covered so far (data or hole)
  ext2fs_extent x;
  for (e = ext2fs_extent_get(h.h, EXT2_EXTENT_ROOT, &x); !e;
       e = ext2fs_extent_get(h.h, EXT2_EXTENT_NEXT, &x)) {
    if (!(x.e_flags & EXT2_EXTENT_FLAGS_LEAF) || (x.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT) ||
        x.e_len == 0)
      continue;
    if (x.e_lblk < next) return BadMap(path, "is out of order or overlaps itself");
    if (!InsideFs(fs, x.e_pblk, x.e_len)) return BadMap(path, "points outside the file system");
    next = uint64_t(x.e_lblk) + x.e_len;
    if (x.e_lblk >= nblocks) continue;  // preallocated past the end
    if (x.e_lblk > covered) out.Add(0, (x.e_lblk - covered) * bs);
    const uint64_t len = std::min<uint64_t>(x.e_len, nblocks - x.e_lblk);
    out.Add((x.e_flags & EXT2_EXTENT_FLAGS_UNINIT) ? 0 : x.e_pblk, len * bs);
    covered = x.e_lblk + len;
  }
  if (e != EXT2_ET_EXTENT_NO_NEXT && e != EXT2_ET_EXTENT_NO_DOWN)
    return c.Err(e, "reading extents of", path);
  out.Finish(covered, nblocks, size);
  return out.Take();
}

// What the readers need of a regular file: its size (checked against what
// its map can address), and its pieces, or none when the data is inline
// (then libext2fs reads it: a few dozen bytes at most, whatever i_size says).
struct FileMap {
  uint64_t size = 0;
  bool inline_data = false;
  std::vector<Piece> pieces;
};

Result<FileMap> MapOf(const FsContext& c, uint32_t ino, const std::string& path) {
  InodeBuf inode(c.fs);
  RETURN_IF_ERROR(ReadInode(c, ino, &inode, path));
  FileMap m;
  m.size = EXT2_I_SIZE(inode.small());
  const uint32_t flags = inode.large()->i_flags;
  // ext4 addresses at most 2^32 blocks of a file: a larger i_size is damage
  // (or a hostile image asking readers to stream exabytes of zeros).
  const uint64_t max_size = (uint64_t(1) << 32) * c.fs->blocksize;
  if (m.size > max_size)
    return Status::Corruption(path + ": size " + std::to_string(m.size) +
                              " is larger than a file of this file system can be (" +
                              std::to_string(max_size) + "): run e2fsck");
  if (flags & EXT4_INLINE_DATA_FL) {
    m.inline_data = true;
    return m;
  }
  if (!(flags & EXT4_EXTENTS_FL)) {
    // A block map addresses 12 direct blocks and three levels of indirect ones.
    const uint64_t a = c.fs->blocksize / 4;
    const uint64_t max_mapped = std::min(max_size, (12 + a + a * a + a * a * a) * c.fs->blocksize);
    if (m.size > max_mapped)
      return Status::Corruption(path + ": size " + std::to_string(m.size) +
                                " is larger than its block map can address (" +
                                std::to_string(max_mapped) + "): run e2fsck");
  }
  if (m.size == 0) return m;
  if (flags & EXT4_EXTENTS_FL) {
    ASSIGN_OR_RETURN(m.pieces, ExtentPieces(c, ino, &inode, m.size, path));
  } else {
    ASSIGN_OR_RETURN(m.pieces, BlockMappedPieces(c, ino, m.size, path));
  }
  uint64_t data = 0;
  for (const Piece& p : m.pieces) data += p.hole() ? 0 : p.bytes;
  if (data > FsBytes(c)) return BadMap(path, "maps more data than the file system holds");
  return m;
}

// libext2fs's own reader (inline data only).
Status ReadByFile(const FsContext& c, uint32_t ino, const std::string& path, uint64_t size,
                  const std::function<Status(std::span<const uint8_t>)>& sink) {
  struct File {
    ext2_file_t f = nullptr;
    ~File() {
      if (f) (void)ext2fs_file_close(f);
    }
  } f;
  errcode_t e = ext2fs_file_open2(c.fs, ino, nullptr, 0, &f.f);
  if (e) return c.Err(e, "opening", path);
  std::vector<uint8_t> buf(size_t(std::min<uint64_t>(std::max<uint64_t>(size, 1), 1 << 20)));
  while (true) {
    unsigned int got = 0;
    e = ext2fs_file_read(f.f, buf.data(), unsigned(buf.size()), &got);
    if (e) return c.Err(e, "reading", path);
    if (got == 0) break;
    RETURN_IF_ERROR(sink(std::span<const uint8_t>(buf.data(), got)));
  }
  return Status::Ok();
}

// Reads a data piece into *buf (resized to its bytes).
Status ReadPiece(const FsContext& c, const Piece& p, const std::string& path,
                 std::vector<uint8_t>* buf) {
  const uint64_t bs = c.fs->blocksize;
  const uint64_t blocks = (p.bytes + bs - 1) / bs;
  buf->resize(blocks * bs);
  errcode_t e = io_channel_read_blk64(c.fs->io, p.pblk, int(blocks), buf->data());
  if (e) return c.Err(e, "reading", path);
  buf->resize(p.bytes);
  return Status::Ok();
}

}  // namespace

Status ReadInodeData(const FsContext& c, uint32_t ino, const std::string& path,
                     const std::function<Status(std::span<const uint8_t>)>& sink,
                     const std::function<Status(uint64_t)>& hole, DataBudget* budget) {
  ASSIGN_OR_RETURN(FileMap map, MapOf(c, ino, path));
  if (budget) {
    uint64_t data = map.inline_data ? map.size : 0;
    for (const Piece& p : map.pieces) data += p.hole() ? 0 : p.bytes;
    RETURN_IF_ERROR(budget->Charge(data, path));
  }
  if (map.inline_data) return ReadByFile(c, ino, path, map.size, sink);
  const std::vector<Piece>* pieces = &map.pieces;

  size_t data_pieces = 0;
  for (const Piece& p : *pieces) data_pieces += p.hole() ? 0 : 1;
  const bool ahead = data_pieces > 1;  // one piece: nothing to overlap
  std::vector<uint8_t> cur, next;
  std::vector<uint8_t> zeros;
  // Declared after the buffers it fills: destroyed (waited for) first.
  std::future<Status> reading;
  size_t reading_at = 0;
  auto next_data = [&](size_t from) {
    while (from < pieces->size() && (*pieces)[from].hole()) ++from;
    return from;
  };
  for (size_t k = 0; k < pieces->size(); ++k) {
    const Piece& p = (*pieces)[k];
    if (p.hole() && hole) {
      RETURN_IF_ERROR(hole(p.bytes));
      continue;
    }
    if (p.hole()) {
      // Sized for the largest hole met so far, up to kZeroChunk: a small
      // sparse file does not cost a megabyte of zeroed memory.
      const size_t want = size_t(std::min<uint64_t>(kZeroChunk, p.bytes));
      if (zeros.size() < want) zeros.resize(want);
      for (uint64_t left = p.bytes; left;) {
        const size_t n = size_t(std::min<uint64_t>(left, zeros.size()));
        RETURN_IF_ERROR(sink(std::span<const uint8_t>(zeros.data(), n)));
        left -= n;
      }
      continue;
    }
    if (reading.valid() && reading_at == k) {
      Status st = reading.get();
      RETURN_IF_ERROR(st);
      std::swap(cur, next);
    } else {
      RETURN_IF_ERROR(ReadPiece(c, p, path, &cur));
    }
    if (ahead) {
      const size_t n = next_data(k + 1);
      if (n < pieces->size()) {
        const Piece& np = (*pieces)[n];
        try {
          reading = std::async(std::launch::async,
                               [&c, np, &path, &next] { return ReadPiece(c, np, path, &next); });
          reading_at = n;
        } catch (const std::system_error&) {
          // No thread to be had: that piece is read in turn, on this one.
        }
      }
    }
    RETURN_IF_ERROR(sink(std::span<const uint8_t>(cur.data(), cur.size())));
  }
  return Status::Ok();
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> DataRanges(const FsContext& c, uint32_t ino,
                                                              const std::string& path) {
  ASSIGN_OR_RETURN(FileMap map, MapOf(c, ino, path));
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (map.inline_data) {
    if (map.size) out.emplace_back(0, map.size);
    return out;
  }
  uint64_t at = 0;
  for (const Piece& p : map.pieces) {
    if (!p.hole()) {
      if (!out.empty() && out.back().first + out.back().second == at) out.back().second += p.bytes;
      else out.emplace_back(at, p.bytes);
    }
    at += p.bytes;
  }
  return out;
}

DataBudget::DataBudget(const FsContext& c) : left_(FsBytes(c)) {}

Status DataBudget::Charge(uint64_t bytes, const std::string& path) {
  if (bytes > left_)
    return Status::Corruption(path + ": the files read so far hold more data than the file "
                              "system does: their block maps share blocks: run e2fsck");
  left_ -= bytes;
  return Status::Ok();
}

Status WriteInodeToFd(const FsContext& c, uint32_t ino, const std::string& path, int fd,
                      const std::string& host, DataBudget* budget) {
  constexpr size_t kBlock = 4096;
  uint64_t off = 0;
  auto put = [&](const uint8_t* p, size_t n, uint64_t at) -> Status {
    while (n) {
      const ssize_t w = ::pwrite(fd, p, n, off_t(at));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::FromErrno("writing " + host, errno);
      p += w;
      n -= size_t(w);
      at += uint64_t(w);
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(ReadInodeData(c, ino, path, [&](std::span<const uint8_t> d) -> Status {
    // Runs of non-zero blocks in one pwrite; zero blocks stay holes.
    size_t p = 0;
    while (p < d.size()) {
      size_t n = std::min(kBlock, d.size() - p);
      if (n == kBlock && IsAllZero(d.subspan(p, n))) {
        p += n;
        continue;
      }
      size_t q = p + n;
      while (q < d.size()) {
        const size_t m = std::min(kBlock, d.size() - q);
        if (m == kBlock && IsAllZero(d.subspan(q, m))) break;
        q += m;
      }
      RETURN_IF_ERROR(put(d.data() + p, q - p, off + p));
      p = q;
    }
    off += d.size();
    return Status::Ok();
  }, [&](uint64_t n) -> Status {
    off += n;  // a hole stays a hole, without a byte of zeros made or scanned
    return Status::Ok();
  }, budget));
  if (::ftruncate(fd, off_t(off)) != 0) return Status::FromErrno("truncating " + host, errno);
  return Status::Ok();
}

}  // namespace stack::fsbridge

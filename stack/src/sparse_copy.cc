#include "stack/sparse_copy.h"

#include <algorithm>
#include <vector>

#include "block/zero.h"

namespace stack::compose {

Result<CopyReport> CopySparse(BlockDevice& src, BlockDevice& dst, const CopyOptions& opts) {
  const uint64_t size = src.size_bytes();
  const uint64_t unit = std::max<uint64_t>(src.block_size(), dst.block_size());
  if (unit % src.block_size() || unit % dst.block_size()) {
    return Status::InvalidArgument("block sizes " + std::to_string(src.block_size()) + " and " +
                                   std::to_string(dst.block_size()) + " are incompatible");
  }
  // A source that ends inside a unit is copied with its last unit padded by
  // zeros (an imported image of 1536 bytes into a pool of 4096-byte blocks).
  const uint64_t padded = (size + unit - 1) / unit * unit;
  if (dst.size_bytes() < padded) {
    return Status::InvalidArgument(dst.describe() + " (" + std::to_string(dst.size_bytes()) +
                                   " bytes) is smaller than " + src.describe() + " (" +
                                   std::to_string(size) + " bytes, " + std::to_string(padded) +
                                   " in whole " + std::to_string(unit) + "-byte blocks)");
  }
  const bool skip_zero = opts.dst_reads_zero.value_or(dst.capabilities().unwritten_reads_zero);
  const uint64_t chunk = std::max(unit, opts.chunk_bytes / unit * unit);

  CopyReport rep;
  rep.method = "sparse-extent-copy";
  rep.size_bytes = size;
  std::vector<uint8_t> buf(chunk);
  // Query the allocation map in windows so a huge thin device does not
  // produce one enormous extent list.
  const uint64_t window = std::max<uint64_t>(chunk, uint64_t{1} << 30) / unit * unit;
  for (uint64_t win = 0; win < size; win += window) {
    const uint64_t wlen = std::min(window, size - win);
    auto ext = src.AllocatedExtents(win, wlen);
    if (!ext.ok()) return ext.status().WithContext("allocation map of " + src.describe());
    for (const Extent& e0 : *ext) {
      // Widen to the common unit.
      uint64_t s = e0.offset / unit * unit;
      uint64_t end = std::min(padded, (e0.end() + unit - 1) / unit * unit);
      for (uint64_t off = s; off < end;) {
        const uint64_t n = std::min(chunk, end - off);
        std::span<uint8_t> b(buf.data(), n);
        const uint64_t have = std::min(n, size - off);  // whole source blocks
        RETURN_IF_ERROR(src.Read(off, b.first(have)).WithContext("read " + src.describe()));
        std::fill(b.begin() + static_cast<std::ptrdiff_t>(have), b.end(), uint8_t{0});
        rep.allocated_bytes += n;
        // Write maximal runs of non-zero units; skip (or zero) zero units.
        uint64_t i = 0;
        while (i < n) {
          bool zero = IsAllZero(b.subspan(i, unit));
          uint64_t j = i + unit;
          while (j < n && IsAllZero(b.subspan(j, unit)) == zero) j += unit;
          if (zero) {
            rep.zero_bytes += j - i;
            if (!skip_zero) {
              RETURN_IF_ERROR(
                  dst.WriteZeroes(off + i, j - i).WithContext("write " + dst.describe()));
            }
          } else if (i == 0 && j == buf.size()) {
            // The whole buffer: a device that queues writes may take it
            // instead of copying it (it hands back another).
            RETURN_IF_ERROR(dst.WriteBuffer(off, buf).WithContext("write " + dst.describe()));
            buf.resize(chunk);  // a spare of another size, or none
            rep.written_bytes += j - i;
          } else {
            RETURN_IF_ERROR(dst.Write(off + i, std::span<const uint8_t>(b.data() + i, j - i))
                                .WithContext("write " + dst.describe()));
            rep.written_bytes += j - i;
          }
          i = j;
        }
        if (opts.progress) opts.progress->Advance(n);
        off += n;
      }
    }
  }
  if (opts.flush) RETURN_IF_ERROR(dst.Flush().WithContext("flush " + dst.describe()));
  if (opts.progress) opts.progress->Finish();
  return rep;
}

}  // namespace stack::compose

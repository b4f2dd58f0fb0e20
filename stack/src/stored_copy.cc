#include "stack/stored_copy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "block/file_device.h"
#include "pool/pool.h"
#include "stack/control.h"

namespace stack::compose {
namespace {

// The pool's backing file, opened read-only for the kernel to copy from.
class SourceFile {
 public:
  ~SourceFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    return fd_ < 0 ? Status::FromErrno("open " + path, errno) : Status::Ok();
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

Status CopyOne(CopyMethod m, int src, const pool::StoredRun& r, int dst, bool sync) {
  if (m == CopyMethod::kReflink) return ReflinkRange(src, r.store_offset, dst, r.offset, r.length);
  RETURN_IF_ERROR(CopyFileRange(src, r.store_offset, dst, r.offset, r.length));
  // Write-behind: the final fdatasync then has little left to wait for.
  if (sync) StartWriteback(dst, r.offset, r.length);
  return Status::Ok();
}

}  // namespace

Result<CopyReport> CopyStoredRuns(pool::Pool& pool, const std::string& entry, uint64_t size,
                                  int out_fd, CopyMethod method, bool sync, Progress* progress,
                                  std::string* why_not) {
  const std::string path = StorePathOf(pool);  // also right inside a forwarded command
  if (path.empty()) {
    if (why_not) *why_not = "the pool's store is not a local file";
    return Status::Unsupported("kernel copy offload needs a pool in a local file");
  }
  SourceFile src;
  RETURN_IF_ERROR(src.Open(path));
  CopyReport rep;
  rep.size_bytes = size;
  // Decided on the first data run: the method that works there is used for
  // every run (a later failure is an error, never a silent switch).
  bool decided = method != CopyMethod::kAuto;
  CopyMethod use = method;
  // Windows bound the run list for a huge, fragmented entry, and what auto
  // reads in vain before it finds that reflink is not offered.
  const uint64_t window = uint64_t{64} << 20;
  for (uint64_t win = 0; win < size; win += window) {
    const uint64_t wlen = std::min(window, size - win);
    ASSIGN_OR_RETURN(auto runs, pool.StoredRuns(entry, win, wlen));
    for (const pool::StoredRun& r : runs) {
      rep.allocated_bytes += r.length;
      if (r.zero) {
        rep.zero_bytes += r.length;
      } else if (decided) {
        Status st = CopyOne(use, src.fd(), r, out_fd, sync);
        if (st.Is(Code::kUnsupported) && method != CopyMethod::kAuto) {
          return Status::Unsupported(st.message() + " from " + path +
                                     " (not offered here; --method auto uses what is)");
        }
        RETURN_IF_ERROR(st);
        // A reflink shares the pool's extent: no data is written.
        (use == CopyMethod::kReflink ? rep.shared_bytes : rep.written_bytes) += r.length;
      } else {
        // auto: reflink, or nothing. Where extents cannot be shared, an
        // in-kernel copy saves nothing (every block is read here for its
        // checksum anyway) and measured slower than our own read-write
        // copy, so the caller falls back to that.
        Status st = CopyOne(CopyMethod::kReflink, src.fd(), r, out_fd, sync);
        use = CopyMethod::kReflink;
        if (st.Is(Code::kUnsupported)) {
          if (why_not) *why_not = st.message();
          return st;
        }
        RETURN_IF_ERROR(st);
        decided = true;
        rep.shared_bytes += r.length;
      }
      if (progress) progress->Advance(r.length);
    }
  }
  if (sync && ::fdatasync(out_fd) != 0) return Status::FromErrno("fdatasync export", errno);
  if (progress) progress->Finish();
  rep.method = decided ? CopyMethodName(use) : "none (no data to copy)";
  return rep;
}

}  // namespace stack::compose

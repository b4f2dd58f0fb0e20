#include "block/file_device.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "block/file_lock.h"

namespace stack {
namespace {

constexpr size_t kDirectAlign = 4096;
// Flush-behind counts writes of at least this size: small random writes are
// left to the kernel's batching and the client's own flushes.
constexpr size_t kFlushBehindMinWrite = 64 << 10;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) {
    if (posix_memalign(&p, kDirectAlign, n) != 0) p = nullptr;
  }
  ~AlignedBuffer() { std::free(p); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  void* p = nullptr;
};

Status PreadFull(int fd, uint8_t* buf, size_t len, uint64_t off, const std::string& path) {
  while (len > 0) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("read " + path + " at " + std::to_string(off) + ": " +
                                 std::strerror(errno),
                             errno);
    }
    if (n == 0) {  // past EOF: the file shrank under us; treat as zeros
      std::memset(buf, 0, len);
      return Status::Ok();
    }
    buf += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status PwriteFull(int fd, const uint8_t* buf, size_t len, uint64_t off, const std::string& path) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path + " at " + std::to_string(off), errno);
    }
    buf += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

}  // namespace

// The flush-behind thread, started at the first flush it is asked for (a
// device only read, or written little, never starts one).
class FileDevice::FlushBehind {
 public:
  FlushBehind(int fd, const std::string& path, uint64_t every)
      : fd_(fd), path_(path), every_(every) {}
  ~FlushBehind() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  FlushBehind(const FlushBehind&) = delete;
  FlushBehind& operator=(const FlushBehind&) = delete;

  // `bytes` were written: every `every` bytes, a flush is asked for (one
  // asked while one runs follows it: the running one may have missed them).
  void Wrote(uint64_t bytes) {
    std::lock_guard<std::mutex> lk(mu_);
    since_ += bytes;
    if (since_ < every_) return;
    since_ = 0;
    wanted_ = true;
    if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
    wake_.notify_one();
  }

  uint64_t done() const { return done_.load(std::memory_order_acquire); }

  // The first background fdatasync error, if any.
  Status error() {
    std::lock_guard<std::mutex> lk(mu_);
    return error_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return stop_ || wanted_; });
      if (stop_) return;
      wanted_ = false;
      lk.unlock();
      int rc;
      while ((rc = ::fdatasync(fd_)) != 0 && errno == EINTR) {
      }
      const int e = errno;
      lk.lock();
      if (rc != 0 && error_.ok()) error_ = Status::FromErrno("fdatasync (behind) " + path_, e);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  const int fd_;
  const std::string path_;
  const uint64_t every_;
  std::mutex mu_;  // guards everything below
  std::condition_variable wake_;
  uint64_t since_ = 0;  // bytes written since the last flush asked for
  bool wanted_ = false, stop_ = false;
  Status error_;
  std::atomic<uint64_t> done_{0};
  std::thread thread_;
};

FileDevice::FileDevice(std::string path, int fd, const FileDeviceOptions& opts, uint64_t size)
    : path_(std::move(path)),
      fd_(fd),
      block_size_(opts.block_size),
      block_count_(size / opts.block_size),
      read_only_(opts.read_only),
      direct_(opts.direct),
      write_behind_(opts.write_behind_bytes) {
  if (!opts.read_only && opts.flush_behind_bytes != 0) {
    flush_behind_ = std::make_unique<FlushBehind>(fd, path_, opts.flush_behind_bytes);
  }
}

FileDevice::~FileDevice() {
  flush_behind_.reset();  // joins its thread before the fd goes
  if (fd_ >= 0) ::close(fd_);
}

static Result<int> OpenFd(const std::string& path, int flags, const FileDeviceOptions& opts) {
  if (!IsPowerOfTwo(opts.block_size) || opts.block_size < 512) {
    return Status::InvalidArgument("block size " + std::to_string(opts.block_size) +
                                   " is not a power of two >= 512");
  }
  flags |= O_CLOEXEC;
  if (opts.direct) flags |= O_DIRECT;
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  if (opts.lock) {
    if (Status st = TryLockFile(fd, LockMode::kExclusive, path); !st.ok()) {
      ::close(fd);
      return st;
    }
  }
  return fd;
}

Result<std::unique_ptr<FileDevice>> FileDevice::Open(const std::string& path,
                                                     const FileDeviceOptions& opts) {
  // O_NONBLOCK: a FIFO named here is refused below, never waited on for a
  // writer; cleared again for the file or device it is.
  ASSIGN_OR_RETURN(int fd, OpenFd(path, (opts.read_only ? O_RDONLY : O_RDWR) | O_NONBLOCK |
                                            O_NOCTTY, opts));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::FromErrno("stat " + path, e);
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    size = end > 0 ? static_cast<uint64_t>(end) : 0;
  } else if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + " is not a regular file or block device");
  }
  if (const int fl = ::fcntl(fd, F_GETFL); fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    int e = errno;
    ::close(fd);
    return Status::FromErrno("fcntl " + path, e);
  }
  if (size % opts.block_size != 0 && opts.zero_pad_tail && opts.read_only) {
    size += opts.block_size - size % opts.block_size;  // PreadFull reads zeros past the end
  } else if (size % opts.block_size != 0) {
    ::close(fd);
    return Status::InvalidArgument(path + " size " + std::to_string(size) +
                                   " is not a multiple of block size " +
                                   std::to_string(opts.block_size));
  }
  return std::unique_ptr<FileDevice>(new FileDevice(path, fd, opts, size));
}

Result<std::unique_ptr<FileDevice>> FileDevice::Create(const std::string& path,
                                                       uint64_t size_bytes,
                                                       const FileDeviceOptions& opts,
                                                       bool overwrite) {
  if (opts.read_only) return Status::InvalidArgument("cannot create read-only " + path);
  if (opts.block_size == 0 || size_bytes % opts.block_size != 0) {
    return Status::InvalidArgument("size " + std::to_string(size_bytes) +
                                   " is not a multiple of block size " +
                                   std::to_string(opts.block_size));
  }
  int flags = O_RDWR | O_CREAT | (overwrite ? 0 : O_EXCL);
  ASSIGN_OR_RETURN(int fd, OpenFd(path, flags, opts));
  // Empty an overwritten file first (its old bytes must not show through
  // the holes). Not a new one: on ext4 a truncate to zero arms the
  // "replace via truncate" heuristic, which makes close() flush every page
  // written since (0.6 s per GiB, measured).
  struct stat st {};
  const bool had_bytes = ::fstat(fd, &st) == 0 && st.st_size > 0;
  if ((had_bytes && ::ftruncate(fd, 0) != 0) ||
      ::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
    int e = errno;
    ::close(fd);
    return Status::FromErrno("size " + path, e);
  }
  return std::unique_ptr<FileDevice>(new FileDevice(path, fd, opts, size_bytes));
}

uint64_t FileDevice::flushes_behind() const { return flush_behind_ ? flush_behind_->done() : 0; }

DeviceCapabilities FileDevice::capabilities() const {
  DeviceCapabilities c;
  c.read_only = read_only_;
  c.unwritten_reads_zero = true;  // sparse growth
  c.discard_supported = true;
  c.discard_zeroes = true;  // punched or zero-written
  c.holes_read_zero = true;
  c.persistent = true;
  return c;
}

Status FileDevice::Resize(uint64_t new_size_bytes) {
  if (read_only_) return Status::ReadOnly("resize of read-only " + describe());
  if (new_size_bytes % block_size_ != 0) {
    return Status::InvalidArgument("resize to " + std::to_string(new_size_bytes) +
                                   " is not block aligned");
  }
  if (::ftruncate(fd_, static_cast<off_t>(new_size_bytes)) != 0) {
    return Status::FromErrno("resize " + path_, errno);
  }
  block_count_ = new_size_bytes / block_size_;
  return Status::Ok();
}

Status FileDevice::DoRead(uint64_t offset, std::span<uint8_t> out) {
  if (direct_ && reinterpret_cast<uintptr_t>(out.data()) % kDirectAlign != 0) {
    AlignedBuffer b(out.size());
    if (!b.p) return Status::IoError("out of memory for O_DIRECT bounce buffer");
    RETURN_IF_ERROR(PreadFull(fd_, static_cast<uint8_t*>(b.p), out.size(), offset, path_));
    std::memcpy(out.data(), b.p, out.size());
    return Status::Ok();
  }
  return PreadFull(fd_, out.data(), out.size(), offset, path_);
}

Status FileDevice::DoWrite(uint64_t offset, std::span<const uint8_t> data) {
  if (direct_ && reinterpret_cast<uintptr_t>(data.data()) % kDirectAlign != 0) {
    AlignedBuffer b(data.size());
    if (!b.p) return Status::IoError("out of memory for O_DIRECT bounce buffer");
    std::memcpy(b.p, data.data(), data.size());
    return PwriteFull(fd_, static_cast<const uint8_t*>(b.p), data.size(), offset, path_);
  }
  RETURN_IF_ERROR(PwriteFull(fd_, data.data(), data.size(), offset, path_));
  if (write_behind_ != 0 && data.size() >= write_behind_) StartWriteback(fd_, offset, data.size());
  if (flush_behind_ && data.size() >= kFlushBehindMinWrite) flush_behind_->Wrote(data.size());
  return Status::Ok();
}

void StartWriteback(int fd, uint64_t offset, uint64_t length) {
  (void)::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(length),
                          SYNC_FILE_RANGE_WRITE);
}

Status FileDevice::DoFlush() {
  if (read_only_) return Status::Ok();
  while (::fdatasync(fd_) != 0) {
    if (errno == EINTR) continue;
    return Status::FromErrno("fdatasync " + path_, errno);
  }
  // A failed background fdatasync took the error with it (reported once per
  // open file): what it covered may be lost, so this flush fails too.
  if (flush_behind_) return flush_behind_->error();
  return Status::Ok();
}

Status FileDevice::PunchHole(uint64_t offset, uint64_t length, const char* op) {
  if (punch_supported_) {
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0) {
      return Status::Ok();
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
      return Status::FromErrno(std::string(op) + " " + path_, errno);
    }
    punch_supported_ = false;
  }
  // The filesystem cannot punch holes: keep the zeroing promise by writing.
  return BlockDevice::DoWriteZeroes(offset, length);
}

Status FileDevice::DoDiscard(uint64_t offset, uint64_t length) {
  return PunchHole(offset, length, "discard");
}

Status FileDevice::DoWriteZeroes(uint64_t offset, uint64_t length) {
  return PunchHole(offset, length, "write-zeroes");
}

Result<std::vector<Extent>> FileDevice::DoAllocatedExtents(uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  uint64_t pos = offset;
  while (pos < end) {
    off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no more data
      if (errno == EINVAL || errno == EOPNOTSUPP) {  // no SEEK_DATA: all data
        out.push_back(Extent{pos, end - pos});
        break;
      }
      return Status::FromErrno("SEEK_DATA " + path_, errno);
    }
    uint64_t d = static_cast<uint64_t>(data);
    if (d >= end) break;
    off_t hole = ::lseek(fd_, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno("SEEK_HOLE " + path_, errno);
    uint64_t h = std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    // Round outward to whole blocks; merge with the previous extent.
    uint64_t s = d / block_size_ * block_size_;
    uint64_t e = std::min<uint64_t>((h + block_size_ - 1) / block_size_ * block_size_, end);
    s = std::max(s, offset);
    if (!out.empty() && out.back().end() >= s) {
      out.back().length = std::max(out.back().end(), e) - out.back().offset;
    } else {
      out.push_back(Extent{s, e - s});
    }
    pos = e;
  }
  return out;
}

}  // namespace stack

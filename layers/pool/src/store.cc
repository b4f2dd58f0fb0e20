// Store implementations: a local file (through FileDevice, plus the file
// lock of block/file_lock.h and a holder note) and an adapter over any
// BlockDevice.
#include "pool/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include "block/file_device.h"
#include "block/file_lock.h"
#include "superblock.h"

namespace stack::pool {
namespace {

constexpr uint32_t kStoreAlign = 4096;

// A Store over a BlockDevice: the device's geometry and I/O (its checks
// ran in this object's public methods; the inner device checks again),
// WriteBuffer included so the zero-copy path survives.
class DeviceStoreBase : public Store {
 public:
  explicit DeviceStoreBase(std::unique_ptr<BlockDevice> dev) : dev_(std::move(dev)) {}
  uint32_t block_size() const override { return dev_->block_size(); }
  uint64_t block_count() const override { return dev_->block_count(); }
  DeviceCapabilities capabilities() const override { return dev_->capabilities(); }
  std::string describe() const override { return dev_->describe(); }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override {
    return dev_->Read(offset, out);
  }
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    return dev_->Write(offset, data);
  }
  Status DoWriteBuffer(uint64_t offset, std::vector<uint8_t>& data) override {
    return dev_->WriteBuffer(offset, data);
  }
  Status DoFlush() override { return dev_->Flush(); }
  Status DoDiscard(uint64_t offset, uint64_t length) override {
    return dev_->Discard(offset, length);
  }
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override {
    return dev_->WriteZeroes(offset, length);
  }
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override {
    return dev_->AllocatedExtents(offset, length);
  }

  std::unique_ptr<BlockDevice> dev_;
};

class DeviceStore final : public DeviceStoreBase {
 public:
  using DeviceStoreBase::DeviceStoreBase;
  Status Resize(uint64_t new_size) override {
    if (new_size <= Size()) return Status::Ok();
    return Status::NoSpace(describe() + " cannot grow to " + std::to_string(new_size) + " bytes");
  }
  Status Lock(bool) override { return Status::Ok(); }
};

std::string HolderPath(const std::string& path) { return path + ".holder"; }

// The holder note is advisory (the flock is the lock) and lives next to the
// pool, where anyone who can write the directory could plant a symlink or a
// hard link to another file. So it is never opened through a symlink, and
// written only as a fresh file of our own: whatever sits at the name is
// unlinked (the exclusive flock is held, so no other writer owns it), then
// created with O_EXCL|O_NOFOLLOW, mode 0644. Best effort: false if not written.
std::mutex g_holder_name_mu;
std::string& HolderName() {
  static std::string name = "a process";
  return name;
}

bool WriteHolder(const std::string& holder_path) {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const std::time_t now = std::time(nullptr);
  struct tm tm_utc {};
  ::gmtime_r(&now, &tm_utc);
  char when[64] = {0};
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm_utc);
  std::string name;
  {
    std::lock_guard<std::mutex> l(g_holder_name_mu);
    name = HolderName();
  }
  const std::string note = name + " (pid " + std::to_string(::getpid()) + ") on " + host +
                           " since " + when + "\n";
  ::unlink(holder_path.c_str());
  int fd = ::open(holder_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::write(fd, note.data(), note.size()) == static_cast<ssize_t>(note.size());
  ::close(fd);
  if (!ok) ::unlink(holder_path.c_str());
  return ok;
}

// The first line of the holder note (at most 256 bytes), "" if there is no
// regular file there.
std::string ReadHolder(const std::string& holder_path) {
  int fd = ::open(holder_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return {};
  struct stat st {};
  char buf[256];
  ssize_t n = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ::read(fd, buf, sizeof(buf)) : -1;
  ::close(fd);
  if (n <= 0) return {};
  std::string line(buf, static_cast<size_t>(n));
  line = line.substr(0, line.find('\n'));
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';  // it is quoted in a message
  }
  return line;
}

// Renames from -> to unless `to` exists (AlreadyExists then, and `from`
// stays): renameat2(RENAME_NOREPLACE), or link + unlink where the file
// system lacks it. Either way a concurrent creator is never overwritten.
Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  int e = errno;
  if (e == EINVAL || e == ENOSYS || e == ENOTSUP) {
    if (::link(from.c_str(), to.c_str()) == 0) {
      ::unlink(from.c_str());
      return Status::Ok();
    }
    e = errno;
  }
  if (e == EEXIST) return Status::AlreadyExists(to + " exists (created meanwhile by someone else)");
  return Status::FromErrno("rename " + from + " to " + to, e);
}

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Makes a rename in path's directory durable (best effort: a crash before
// it only loses the new name, and with it a pool nobody has used yet).
void SyncDirectory(const std::string& path) {
  int fd = ::open(DirectoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

class FileStore final : public DeviceStoreBase {
 public:
  // final_path: non-empty for a store created under the temporary name
  // `path`, to be renamed to final_path by Publish().
  FileStore(std::unique_ptr<FileDevice> dev, std::string path, std::string final_path = {})
      : DeviceStoreBase(std::move(dev)), path_(std::move(path)), final_path_(std::move(final_path)) {}
  std::string local_path() const override { return path_; }
  std::optional<uint64_t> allocated_bytes() const override {
    struct stat st {};
    if (::fstat(static_cast<FileDevice&>(*dev_).fd(), &st) != 0) return std::nullopt;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  ~FileStore() override {
    if (wrote_holder_) ::unlink(HolderPath(path_).c_str());
    if (!final_path_.empty()) ::unlink(path_.c_str());  // never published
    // The flock goes with the descriptor, closed by FileDevice.
  }

  Status Publish() override {
    if (final_path_.empty()) return Status::Ok();
    RETURN_IF_ERROR(Flush());
    RETURN_IF_ERROR(RenameNoReplace(path_, final_path_));
    std::string dest = std::move(final_path_);
    final_path_.clear();
    Renamed(dest);
    SyncDirectory(dest);
    return Status::Ok();
  }
  FileDevice& file() { return static_cast<FileDevice&>(*dev_); }

  Status Resize(uint64_t new_size) override { return file().Resize(new_size); }

  Status Lock(bool exclusive) override {
    Status st = TryLockFile(file().fd(), exclusive ? LockMode::kExclusive : LockMode::kShared, path_);
    if (!st.ok()) {
      if (st.code() != Code::kBusy) return st;
      std::string holder = ReadHolder(HolderPath(path_));
      if (holder.empty()) holder = "another process (read-only users leave no note)";
      return Status::Busy("pool " + path_ + " is locked by " + holder);
    }
    if (exclusive) wrote_holder_ = WriteHolder(HolderPath(path_));
    return Status::Ok();
  }

  void RefreshLockNote() override {
    if (wrote_holder_) wrote_holder_ = WriteHolder(HolderPath(path_));
  }

  // Moves the holder note along with a store renamed into place.
  void Renamed(std::string path) {
    if (wrote_holder_) ::unlink(HolderPath(path_).c_str());
    path_ = std::move(path);
    if (wrote_holder_) wrote_holder_ = WriteHolder(HolderPath(path_));
  }

 private:
  std::string path_;
  std::string final_path_;
  bool wrote_holder_ = false;
};

// Large data writes (a volume's streaming writes arrive as runs of up to
// 1 MiB) start their writeback at once, so a commit's fdatasync finds most
// of the data already on its way; small random writes are left to the
// kernel's batching.
constexpr uint64_t kWriteBehindBytes = 256 << 10;
// And every 64 MiB of large writes (write-behind or not: a served pool too)
// is made durable in the background while writing
// goes on (FileDeviceOptions::flush_behind_bytes): a commit's fdatasync then
// waits for at most that much instead of everything since the last commit
// (a receive's checkpoint every 256 MiB stalled reading and writing for
// ~0.1-0.15 s each, measured).
constexpr uint64_t kFlushBehindBytes = 64 << 20;

}  // namespace

Result<std::unique_ptr<Store>> OpenFileStore(const std::string& path, bool read_only,
                                             bool write_behind) {
  // A pool file is whole 4 KiB blocks; anything else was truncated (or is
  // not a pool): Corruption saying so, not the device's size complaint.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size % kStoreAlign != 0) {
    std::string expect;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::vector<uint8_t> head(kSuperSize);
      if (::pread(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size())) {
        auto sb = DecodeSuperblock(head, 0);
        if (sb.ok()) {
          expect = "; its superblock (generation " + std::to_string(sb->generation) +
                   ") describes a pool of " + std::to_string(sb->nr_blocks * sb->block_size) +
                   " bytes";
        }
      }
      ::close(fd);
    }
    return Status::Corruption("pool file " + path + " is " + std::to_string(st.st_size) +
                              " bytes, not a whole number of " + std::to_string(kStoreAlign) +
                              "-byte blocks: truncated, or not a pool file" + expect);
  }
  FileDeviceOptions o;
  o.block_size = kStoreAlign;
  o.read_only = read_only;
  o.write_behind_bytes = write_behind ? kWriteBehindBytes : 0;
  o.flush_behind_bytes = kFlushBehindBytes;
  ASSIGN_OR_RETURN(auto dev, FileDevice::Open(path, o));
  return std::unique_ptr<Store>(std::make_unique<FileStore>(std::move(dev), path));
}

Result<std::unique_ptr<Store>> CreateFileStore(const std::string& path, uint64_t size_bytes) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return Status::AlreadyExists(path + " exists");
  FileDeviceOptions o;
  o.block_size = kStoreAlign;
  o.write_behind_bytes = kWriteBehindBytes;
  o.flush_behind_bytes = kFlushBehindBytes;
  // A hidden temporary name in the same directory (so the rename stays on
  // one file system), unique per process and call.
  static std::atomic<uint64_t> serial{0};
  const size_t cut = path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1;
  const std::string tmp = path.substr(0, cut) + "." + path.substr(cut) + ".creating-" +
                          std::to_string(::getpid()) + "-" + std::to_string(serial++);
  ASSIGN_OR_RETURN(auto dev, FileDevice::Create(tmp, size_bytes, o));
  return std::unique_ptr<Store>(std::make_unique<FileStore>(std::move(dev), tmp, path));
}

std::unique_ptr<Store> MakeDeviceStore(std::unique_ptr<BlockDevice> device) {
  return std::make_unique<DeviceStore>(std::move(device));
}

void SetLockHolderName(std::string name) {
  for (char& c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';  // one line
  }
  std::lock_guard<std::mutex> l(g_holder_name_mu);
  HolderName() = std::move(name);
}

}  // namespace stack::pool

// Store implementations: a local file (through FileDevice, plus flock and a
// holder note) and an adapter over any BlockDevice.
#include "pool/store.h"

#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "block/file_device.h"

namespace stack::pool {
namespace {

constexpr uint32_t kStoreAlign = 4096;

// Common forwarding to a BlockDevice.
class DeviceStoreBase : public Store {
 public:
  explicit DeviceStoreBase(std::unique_ptr<BlockDevice> dev) : dev_(std::move(dev)) {}
  Status Read(uint64_t offset, std::span<uint8_t> out) override { return dev_->Read(offset, out); }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    return dev_->Write(offset, data);
  }
  Status Flush() override { return dev_->Flush(); }
  Status Discard(uint64_t offset, uint64_t length) override {
    return dev_->Discard(offset, length);
  }
  uint64_t Size() const override { return dev_->size_bytes(); }
  bool read_only() const override { return dev_->capabilities().read_only; }
  std::string describe() const override { return dev_->describe(); }

 protected:
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

class FileStore final : public DeviceStoreBase {
 public:
  FileStore(std::unique_ptr<FileDevice> dev, std::string path)
      : DeviceStoreBase(std::move(dev)), path_(std::move(path)) {}
  std::string local_path() const override { return path_; }
  ~FileStore() override {
    if (wrote_holder_) ::unlink(HolderPath(path_).c_str());
    // The flock goes with the descriptor, closed by FileDevice.
  }
  FileDevice& file() { return static_cast<FileDevice&>(*dev_); }

  Status Resize(uint64_t new_size) override { return file().Resize(new_size); }

  Status Lock(bool exclusive) override {
    int fd = file().fd();
    if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return Status::FromErrno("flock " + path_, errno);
      std::string holder;
      std::ifstream in(HolderPath(path_));
      if (in) std::getline(in, holder);
      if (holder.empty()) holder = "another process (read-only users leave no note)";
      return Status::Busy("pool " + path_ + " is locked by " + holder);
    }
    if (exclusive) {
      char host[256] = {0};
      ::gethostname(host, sizeof(host) - 1);
      std::ostringstream note;
      note << "pid " << ::getpid() << " on " << host << " since " << std::time(nullptr);
      std::ofstream out(HolderPath(path_), std::ios::trunc);
      if (out) {
        out << note.str() << "\n";
        wrote_holder_ = true;
      }
    }
    return Status::Ok();
  }

 private:
  std::string path_;
  bool wrote_holder_ = false;
};

// Large data writes (a volume's streaming writes arrive as runs of up to
// 1 MiB) start their writeback at once, so a commit's fdatasync finds most
// of the data already on its way; small random writes are left to the
// kernel's batching.
constexpr uint64_t kWriteBehindBytes = 256 << 10;

}  // namespace

Result<std::unique_ptr<Store>> OpenFileStore(const std::string& path, bool read_only) {
  FileDeviceOptions o;
  o.block_size = kStoreAlign;
  o.read_only = read_only;
  o.write_behind_bytes = kWriteBehindBytes;
  ASSIGN_OR_RETURN(auto dev, FileDevice::Open(path, o));
  return std::unique_ptr<Store>(std::make_unique<FileStore>(std::move(dev), path));
}

Result<std::unique_ptr<Store>> CreateFileStore(const std::string& path, uint64_t size_bytes) {
  FileDeviceOptions o;
  o.block_size = kStoreAlign;
  o.write_behind_bytes = kWriteBehindBytes;
  ASSIGN_OR_RETURN(auto dev, FileDevice::Create(path, size_bytes, o));
  return std::unique_ptr<Store>(std::make_unique<FileStore>(std::move(dev), path));
}

std::unique_ptr<Store> MakeDeviceStore(std::unique_ptr<BlockDevice> device) {
  return std::make_unique<DeviceStore>(std::move(device));
}

}  // namespace stack::pool

// Key management: add, remove, change, replace keyslots; backup and restore.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "block/unique_fd.h"
#include "byte_io.h"
#include "crypto.h"
#include "fde/container.h"
#include "fde/luks.h"
#include "keyslot_crypto.h"
#include "unlock.h"

namespace stack::fde {

using namespace internal;  // NOLINT

namespace {

Status CheckWritable(BlockDevice& dev) {
  if (dev.capabilities().read_only) return Status::ReadOnly(dev.describe() + " is read-only");
  return Status::Ok();
}

Status CheckNewPassphrase(const Secret& pass) {
  if (pass.empty()) return Status::InvalidArgument("empty passphrase");
  return Status::Ok();
}

}  // namespace

// Each wrapper reads the header once (Container::Read) and makes one call.

Result<int> AddKey(BlockDevice& dev, const Secret& existing, const Secret& added,
                   const KdfParams& kdf) {
  RETURN_IF_ERROR(CheckWritable(dev));
  RETURN_IF_ERROR(CheckNewPassphrase(added));
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  ASSIGN_OR_RETURN(UnlockedKey key, c->Unlock(existing, std::nullopt));
  return c->AddKey(key, added, kdf);
}

Result<int> RemoveKey(BlockDevice& dev, const Secret& passphrase, bool force) {
  RETURN_IF_ERROR(CheckWritable(dev));
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  ASSIGN_OR_RETURN(UnlockedKey key, c->Unlock(passphrase, std::nullopt));
  RETURN_IF_ERROR(c->KillKeyslot(key.keyslot, force));
  return key.keyslot;
}

Status KillKeyslot(BlockDevice& dev, int keyslot, bool force) {
  RETURN_IF_ERROR(CheckWritable(dev));
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  return c->KillKeyslot(keyslot, force);
}

Result<int> ChangeKey(BlockDevice& dev, const Secret& old_pass, const Secret& new_pass,
                      const KdfParams& kdf) {
  RETURN_IF_ERROR(CheckWritable(dev));
  RETURN_IF_ERROR(CheckNewPassphrase(new_pass));
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  ASSIGN_OR_RETURN(UnlockedKey key, c->Unlock(old_pass, std::nullopt));
  return c->ChangeKey(key, new_pass, kdf);
}

Status ReplaceKeyslots(BlockDevice& dev, const Secret& old_pass, const Secret& new_pass,
                       const KdfParams& kdf) {
  RETURN_IF_ERROR(CheckWritable(dev));
  RETURN_IF_ERROR(CheckNewPassphrase(new_pass));
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  ASSIGN_OR_RETURN(UnlockedKey key, c->Unlock(old_pass, std::nullopt));
  return c->ReplaceKeyslots(key, new_pass, kdf);
}

// ---- header backup / restore ------------------------------------------------

namespace {

// Kind and size of the header region (header copies + keyslots) of a device
// or image, and its data offset.
struct HeaderRegion {
  ContainerKind kind = ContainerKind::kNone;
  uint64_t size = 0;
  uint64_t data_offset = 0;
};

HeaderRegion RegionOf(const Container& c) {
  return HeaderRegion{c.kind(), c.HeaderRegionSize(), c.DataOffset()};
}

}  // namespace

Status BackupHeader(BlockDevice& dev, const std::string& path) {
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  const HeaderRegion r = RegionOf(*c);
  std::vector<uint8_t> bytes(r.size);
  RETURN_IF_ERROR(ReadAt(dev, 0, bytes));
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) return Status::AlreadyExists("backup file " + path + " exists");
    return Status::FromErrno("creating " + path, errno);
  }
  for (size_t off = 0; off < bytes.size();) {
    ssize_t w = ::write(fd.get(), bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::FromErrno("writing " + path, errno);
    off += size_t(w);
  }
  if (::fsync(fd.get()) != 0) return Status::FromErrno("fsync " + path, errno);
  return Status::Ok();
}

Status RestoreHeader(BlockDevice& dev, const std::string& path) {
  RETURN_IF_ERROR(CheckWritable(dev));
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::NotFound("backup file " + path + " does not exist");
    return Status::FromErrno("opening " + path, errno);
  }
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return Status::FromErrno("sizing " + path, errno);
  if (size < 4096 || size > (off_t(64) << 20)) {
    return Status::InvalidArgument(path + " has no plausible LUKS header backup size");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  for (size_t off = 0; off < bytes.size();) {
    ssize_t n = ::pread(fd.get(), bytes.data() + off, bytes.size() - off, off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("reading " + path, errno);
    if (n == 0) return Status::IoError("short read from " + path);
    off += size_t(n);
  }
  HeaderRegion file;
  static const uint8_t kLuks[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
  if (std::memcmp(bytes.data(), kLuks, 6) == 0 && bytes[6] == 0 && bytes[7] == 1) {
    ASSIGN_OR_RETURN(Luks1Header h, DecodeLuks1(bytes));
    file = RegionOf(*MakeLuks1Container(dev, std::move(h)));
  } else {
    auto h = ParseLuks2Image(bytes);
    if (!h.ok()) return h.status().WithContext("backup file " + path + " is not a valid header");
    if (!h->primary_problem.empty() || !h->secondary_problem.empty()) {
      return Status::Corruption("backup file " + path + " has a damaged header copy");
    }
    file = RegionOf(*MakeLuks2Container(dev, std::move(*h)));
  }
  if (file.size != bytes.size()) {
    return Status::InvalidArgument("backup file " + path + " size does not match its header");
  }
  if (file.size > dev.size_bytes()) return Status::InvalidArgument("backup larger than the device");
  // A device whose header cannot be read (none, or damaged) takes any backup.
  auto current = Container::Read(dev);
  if (current.ok() && ((*current)->kind() != file.kind ||
                       (*current)->DataOffset() != file.data_offset)) {
    return Status::InvalidArgument("backup does not match the container on the device (kind or "
                                   "data offset differ)");
  }
  RETURN_IF_ERROR(WriteAt(dev, 0, bytes));
  return dev.Flush();
}

}  // namespace stack::fde

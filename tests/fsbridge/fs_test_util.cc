#include "fs_test_util.h"

#include "fde/luks.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "block/file_device.h"
#include "block/mem_device.h"
#include "block/passthrough_device.h"

namespace stack::testing {

const char* DevName(DevKind k) {
  switch (k) {
    case DevKind::kMem: return "mem";
    case DevKind::kFile: return "file";
    case DevKind::kGarbage: return "garbage";
    case DevKind::kCrypt: return "luks2";
  }
  return "?";
}

namespace {
// Reads never-written blocks as garbage (what a decrypting layer returns
// for blocks it never encrypted) and supports no discard.
class GarbageDevice : public PassthroughDevice {
 public:
  explicit GarbageDevice(std::unique_ptr<BlockDevice> inner)
      : PassthroughDevice(std::move(inner)), written_(block_count(), false) {}
  DeviceCapabilities capabilities() const override {
    DeviceCapabilities c = PassthroughDevice::capabilities();
    c.unwritten_reads_zero = c.discard_supported = c.discard_zeroes = c.holes_read_zero = false;
    return c;
  }
  std::string describe() const override { return "garbage device"; }

 protected:
  Status DoRead(uint64_t off, std::span<uint8_t> out) override {
    RETURN_IF_ERROR(PassthroughDevice::DoRead(off, out));
    const uint32_t bs = block_size();
    for (uint64_t i = 0; i < out.size() / bs; ++i) {
      const uint64_t b = off / bs + i;
      if (written_[b]) continue;
      uint64_t x = b * 0x9e3779b97f4a7c15ull + 1;
      for (uint32_t k = 0; k < bs; ++k) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        out[i * bs + k] = uint8_t(x);
      }
    }
    return Status::Ok();
  }
  Status DoWrite(uint64_t off, std::span<const uint8_t> d) override {
    Mark(off, d.size());
    return PassthroughDevice::DoWrite(off, d);
  }
  Status DoWriteZeroes(uint64_t off, uint64_t len) override {
    Mark(off, len);
    return PassthroughDevice::DoWriteZeroes(off, len);
  }
  Status DoDiscard(uint64_t, uint64_t) override {
    return Status::Unsupported("garbage device: no discard");
  }

 private:
  void Mark(uint64_t off, uint64_t len) {
    for (uint64_t b = off / block_size(); b < (off + len) / block_size(); ++b) written_[b] = true;
  }
  std::vector<bool> written_;
};
}  // namespace

std::unique_ptr<BlockDevice> MakeDevice(DevKind k, uint64_t bytes, const TempDir& dir,
                                        const std::string& name, uint32_t bs) {
  if (k == DevKind::kMem) return std::make_unique<MemDevice>(bs, bytes / bs);
  if (k == DevKind::kGarbage)
    return std::make_unique<GarbageDevice>(std::make_unique<MemDevice>(bs, bytes / bs));
  if (k == DevKind::kCrypt) {
    // Header and keyslots in front; the data segment gets `bytes`.
    const uint64_t hdr = 16u << 20;
    auto pass = fde::Secret::FromString("fsbridge test passphrase");
    if (!pass.ok()) throw std::runtime_error(pass.status().ToString());
    fde::FormatOptions fo;
    fo.kdf = fde::KdfParams::Fast(fde::KdfType::kPbkdf2);
    fo.sector_size = std::max<uint32_t>(bs, 512) > 4096 ? 4096 : std::max<uint32_t>(bs, 512);
    auto c = fde::Format(std::make_unique<MemDevice>(4096, (bytes + hdr) / 4096), *pass, fo);
    if (!c.ok()) throw std::runtime_error(c.status().ToString());
    return std::move(c).value();
  }
  FileDeviceOptions o;
  o.block_size = bs;
  auto r = FileDevice::Create(dir.file(name + ".img"), bytes, o, true);
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

std::string DumpImage(BlockDevice& dev, const TempDir& dir, const std::string& name) {
  const std::string path = dir.file(name + ".dump");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path);
  std::vector<uint8_t> buf(1 << 20);
  static const std::vector<uint8_t> zeros(1 << 20);
  for (uint64_t off = 0; off < dev.size_bytes(); off += buf.size()) {
    size_t n = size_t(std::min<uint64_t>(buf.size(), dev.size_bytes() - off));
    auto s = dev.Read(off, std::span<uint8_t>(buf.data(), n));
    if (!s.ok()) throw std::runtime_error(s.ToString());
    if (std::memcmp(buf.data(), zeros.data(), n) == 0) continue;
    if (::pwrite(fd, buf.data(), n, off_t(off)) != ssize_t(n)) throw std::runtime_error("pwrite");
  }
  if (::ftruncate(fd, off_t(dev.size_bytes())) != 0) throw std::runtime_error("ftruncate");
  ::close(fd);
  return path;
}

int E2fsck(const std::string& image, std::string* out) {
  return RunCommand("e2fsck -fn " + image, out);
}

bool SameContent(BlockDevice& a, BlockDevice& b) {
  if (a.size_bytes() != b.size_bytes()) return false;
  std::vector<uint8_t> x(1 << 20), y(1 << 20);
  for (uint64_t off = 0; off < a.size_bytes(); off += x.size()) {
    size_t n = size_t(std::min<uint64_t>(x.size(), a.size_bytes() - off));
    if (!a.Read(off, std::span<uint8_t>(x.data(), n)).ok()) return false;
    if (!b.Read(off, std::span<uint8_t>(y.data(), n)).ok()) return false;
    if (std::memcmp(x.data(), y.data(), n) != 0) return false;
  }
  return true;
}

namespace {
void WriteFile(const std::string& p, const std::vector<uint8_t>& d) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(d.data()), std::streamsize(d.size()));
}
void SetTimes(const std::string& p, int64_t s, long ns) {
  struct timespec ts[2] = {{time_t(s), ns}, {time_t(s + 7), ns + 11}};
  ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}
}  // namespace

void MakeRichTree(const std::string& root) {
  namespace fs = std::filesystem;
  fs::create_directories(root + "/dir/sub/deeper");
  fs::create_directories(root + "/empty_dir");
  WriteFile(root + "/small.txt", {'h', 'e', 'l', 'l', 'o', '\n'});
  WriteFile(root + "/empty", {});
  WriteFile(root + "/dir/random.bin", RandomBytes(300000, 7));
  WriteFile(root + "/dir/sub/deeper/leaf", RandomBytes(5000, 8));
  // Sparse: data, 8 MiB hole, data, trailing hole.
  {
    int fd = ::open((root + "/sparse.img").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640);
    auto d = RandomBytes(10000, 9);
    (void)::pwrite(fd, d.data(), d.size(), 0);
    (void)::pwrite(fd, d.data(), d.size(), 8 << 20);
    (void)::ftruncate(fd, 12 << 20);
    ::close(fd);
  }
  // Many extents (fragmented sparse file): 40 data islands.
  {
    int fd = ::open((root + "/islands").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    auto d = RandomBytes(4096, 10);
    for (int i = 0; i < 40; ++i) (void)::pwrite(fd, d.data(), d.size(), off_t(i) * 65536);
    ::close(fd);
  }
  fs::create_hard_link(root + "/small.txt", root + "/dir/hardlink_to_small");
  fs::create_hard_link(root + "/small.txt", root + "/hardlink2");
  fs::create_symlink("small.txt", root + "/fast_link");
  fs::create_symlink(std::string(200, 'x') + "/target", root + "/slow_link");
  ::mkfifo((root + "/fifo").c_str(), 0600);
  {
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string sp = root + "/sock";
    if (sp.size() < sizeof a.sun_path) {
      std::strcpy(a.sun_path, sp.c_str());
      (void)::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    ::close(s);
  }
  ::chmod((root + "/small.txt").c_str(), 0604);
  ::chmod((root + "/dir/sub").c_str(), 0750);
  (void)::setxattr((root + "/small.txt").c_str(), "user.note", "hello xattr", 11, 0);
  (void)::setxattr((root + "/dir").c_str(), "user.dirnote", "d", 1, 0);
  if (geteuid() == 0) {
    ::mknod((root + "/chardev").c_str(), S_IFCHR | 0620, makedev(4, 64));
    ::mknod((root + "/blockdev").c_str(), S_IFBLK | 0660, makedev(259, 300000));
    (void)::lchown((root + "/dir/random.bin").c_str(), 1234, 5678);
    (void)::lchown((root + "/fast_link").c_str(), 42, 43);
    // security.capability v2: cap_net_bind_service permitted+effective.
    const uint8_t cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    (void)::setxattr((root + "/dir/random.bin").c_str(), "security.capability", cap, sizeof cap, 0);
  }
  for (const char* p : {"/small.txt", "/empty", "/dir/random.bin", "/sparse.img", "/fast_link",
                        "/slow_link", "/fifo", "/dir/sub/deeper/leaf", "/islands"})
    SetTimes(root + p, 1600000000, 123456789);
  for (const char* p : {"/dir/sub/deeper", "/dir/sub", "/dir", "/empty_dir", ""})
    SetTimes(root + p, 1500000000, 987654321);
}

std::string ReadAll(fsbridge::Filesystem& fs, const std::string& path) {
  std::ostringstream o;
  const Status st = fs.ReadFile(path, o);
  if (!st.ok()) throw std::runtime_error("read " + path + ": " + st.ToString());
  return o.str();
}

void WriteHostFile(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
  if (!f.good()) throw std::runtime_error("cannot write host file " + path);
}

}  // namespace stack::testing

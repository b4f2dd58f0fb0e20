#include "stack_crash_harness.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "block/passthrough_device.h"
#include "block/write_behind_device.h"
#include "fde/luks.h"
#include "fs_test_util.h"
#include "fsbridge/filesystem.h"
#include "pool/pool.h"
#include "pool/store.h"
#include "stack/unlock.h"

namespace stack::soak {
namespace {

constexpr uint64_t kPoolBytes = 64ull << 20;
constexpr uint64_t kVolumeBytes = 32ull << 20;  // 16 MiB LUKS2 header + 16 MiB ext4
constexpr size_t kPoolCache = 1 << 20;          // small: evictions and write-backs happen
constexpr const char* kVolume = "img";
constexpr const char* kPassphrase = "soak passphrase";
constexpr int64_t kTimestamp = 1700000000;

Result<fde::Secret> GetPassphrase() { return fde::Secret::FromString(kPassphrase); }

void Must(const Status& st, const char* what) {
  if (!st.ok()) throw std::runtime_error(std::string(what) + ": " + st.ToString());
}

fsbridge::PopulateOptions CopyOptions() {
  fsbridge::PopulateOptions o;
  o.keep_owners = false;
  o.xattrs = false;
  o.timestamp = kTimestamp;
  return o;
}

// Drops every flush (so the pool below never commits on the filesystem's
// behalf): a lost-durability defect for the harness to catch.
class SwallowFlushDevice : public PassthroughDevice {
 public:
  using PassthroughDevice::PassthroughDevice;

 protected:
  Status DoFlush() override { return Status::Ok(); }
};

// Commits the pool after every write: the filesystem's half-written states
// become durable, an atomicity defect for the harness to catch.
class CommitEveryWriteDevice : public PassthroughDevice {
 public:
  CommitEveryWriteDevice(std::unique_ptr<BlockDevice> inner, pool::Pool* pool)
      : PassthroughDevice(std::move(inner)), pool_(pool) {}

 protected:
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    RETURN_IF_ERROR(PassthroughDevice::DoWrite(offset, data));
    return pool_->Commit();
  }

 private:
  pool::Pool* pool_;
};

// The device chain of one "boot": store (FaultDevice over the shared
// memory) -> pool -> volume -> [sabotage] -> LUKS2 -> ext4. Destruction
// order is the product's (FsSession): filesystem and devices, then pool.
class Chain {
 public:
  Chain(std::shared_ptr<MemStorage> storage, std::shared_ptr<FaultController> ctl,
        Sabotage sabotage = Sabotage::kNone)
      : storage_(std::move(storage)), ctl_(std::move(ctl)), sabotage_(sabotage) {}
  ~Chain() {
    fs_.reset();
    pool_.reset();
  }

  Status OpenPool(bool writable) {
    std::unique_ptr<BlockDevice> d = std::make_unique<MemDevice>(storage_);
    if (ctl_) d = std::make_unique<FaultDevice>(std::move(d), ctl_);
    pool::PoolOpenOptions o;
    o.read_only = !writable;
    o.cache_bytes = kPoolCache;
    ASSIGN_OR_RETURN(pool_, pool::Pool::Open(pool::MakeDeviceStore(std::move(d)), o));
    return Status::Ok();
  }

  // Volume -> LUKS2 (must be one) -> ext4, on the open pool.
  Status OpenFs(bool writable) {
    ASSIGN_OR_RETURN(auto vol, pool_->OpenVolume(kVolume, !writable));
    if (sabotage_ == Sabotage::kSwallowFlush) {
      vol = std::make_unique<SwallowFlushDevice>(std::move(vol));
    } else if (sabotage_ == Sabotage::kCommitEveryWrite) {
      vol = std::make_unique<CommitEveryWriteDevice>(std::move(vol), pool_.get());
    }
    std::unique_ptr<BlockDevice> dev;
    if (with_key_) {
      const BaseImage& base = BaseImage::Get();
      ASSIGN_OR_RETURN(fde::Secret key, base.volume_key->Clone());
      fde::CryptDevice::Params p = base.crypt;
      p.read_only = !writable;
      ASSIGN_OR_RETURN(dev, fde::CryptDevice::Create(std::move(vol), std::move(key), p));
      if (write_behind_ && writable) dev = std::make_unique<WriteBehindDevice>(std::move(dev));
    } else {
      ASSIGN_OR_RETURN(compose::Unlocked u,
                       compose::Unlock(std::move(vol), GetPassphrase, writable));
      if (u.kind != fde::ContainerKind::kLuks2) {
        return Status::Corruption("volume no longer holds a LUKS2 container");
      }
      // The passphrase must still lead to the same volume key.
      auto* crypt = static_cast<fde::CryptDevice*>(u.device.get());
      ASSIGN_OR_RETURN(fde::Secret key, crypt->CopyVolumeKey());
      const auto& want = BaseImage::Get().volume_key->bytes();
      if (!std::equal(want.begin(), want.end(), key.bytes().begin(), key.bytes().end())) {
        return Status::Corruption("the passphrase unlocks a different volume key");
      }
      dev = std::move(u.device);
    }
    ASSIGN_OR_RETURN(fs_, fsbridge::Filesystem::Open(std::move(dev), writable));
    return Status::Ok();
  }

  Status Open(bool writable) {
    RETURN_IF_ERROR(OpenPool(writable));
    return OpenFs(writable);
  }

  // Unlock with the stored volume key instead of the passphrase.
  void UseVolumeKey(bool yes = true) { with_key_ = yes; }
  // Writes above LUKS2 go through a WriteBehindDevice (with the volume key).
  void UseWriteBehind(bool yes) { write_behind_ = yes; }

  // As FsSession::Close: ext4 closed (written and flushed), the device
  // chain destroyed, the pool committed and closed.
  Status Close() {
    Status st = fs_->Close();
    fs_.reset();
    if (st.ok()) st = pool_->Commit();
    pool_.reset();
    return st;
  }

  fsbridge::Filesystem& fs() { return *fs_; }
  pool::Pool& pool() { return *pool_; }
  std::unique_ptr<fsbridge::Filesystem> TakeFs() { return std::move(fs_); }

 private:
  std::shared_ptr<MemStorage> storage_;
  std::shared_ptr<FaultController> ctl_;
  Sabotage sabotage_;
  bool with_key_ = false;
  bool write_behind_ = false;
  std::unique_ptr<pool::Pool> pool_;
  std::unique_ptr<fsbridge::Filesystem> fs_;
};

// Writes d to a host file, leaving all-zero 4 KiB blocks as holes (so a
// sparse model file is a sparse host file).
void WriteHostFile(const std::string& path, const std::vector<uint8_t>& d) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create host file " + path);
  bool ok = true;
  for (size_t off = 0; off < d.size() && ok; off += 4096) {
    const size_t n = std::min<size_t>(4096, d.size() - off);
    if (std::all_of(d.begin() + long(off), d.begin() + long(off + n), [](uint8_t b) { return !b; }))
      continue;
    ok = ::pwrite(fd, d.data() + off, n, off_t(off)) == ssize_t(n);
  }
  ok = ok && ::ftruncate(fd, off_t(d.size())) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write host file " + path);
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

Status Apply(Chain& c, const FsOp& op) {
  switch (op.kind) {
    case FsOp::kPut: return c.fs().PutFile(op.host, op.path, CopyOptions());
    case FsOp::kRemove: return c.fs().Remove(op.path, op.recursive);
    case FsOp::kMkdir: return c.fs().Mkdir(op.path, false);
    case FsOp::kPopulate:
      return c.fs().PopulateFromDirectory(op.host, op.path, CopyOptions()).status();
    case FsOp::kSymlink: return c.fs().Symlink(op.host, op.path);
    case FsOp::kChmod: return c.fs().Chmod(op.path, op.mode);
    case FsOp::kFlush: return c.fs().Flush();
    case FsOp::kRemount:
      RETURN_IF_ERROR(c.Close());
      return c.Open(true);
  }
  return Status::Internal("bad op");
}

// Reads the whole tree (lost+found left out) through the public API.
Status Walk(fsbridge::Filesystem& fs, const std::string& dir, FsModel& out) {
  ASSIGN_OR_RETURN(auto entries, fs.List(dir));
  for (const auto& e : entries) {
    const std::string path = Join(dir, e.name);
    if (path == "/lost+found") continue;
    Node n;
    n.mode = e.info.mode & 07777;
    switch (e.info.type) {
      case fsbridge::FileType::kDirectory:
        n.type = Node::kDir;
        out[path] = n;
        RETURN_IF_ERROR(Walk(fs, path, out));
        continue;
      case fsbridge::FileType::kRegular: {
        n.type = Node::kFile;
        RETURN_IF_ERROR(fs.ReadFile(path, [&](std::span<const uint8_t> d) {
          n.data.insert(n.data.end(), d.begin(), d.end());
          return Status::Ok();
        }));
        if (n.data.size() != e.info.size) {
          return Status::Corruption(path + ": read " + std::to_string(n.data.size()) +
                                    " bytes, size says " + std::to_string(e.info.size));
        }
        break;
      }
      case fsbridge::FileType::kSymlink:
        n.type = Node::kSymlink;
        n.data.assign(e.info.symlink_target.begin(), e.info.symlink_target.end());
        break;
      default:
        return Status::Corruption(path + ": unexpected file type " +
                                  std::to_string(int(e.info.type)));
    }
    out[path] = std::move(n);
  }
  return Status::Ok();
}

const char* TypeName(Node::Type t) {
  return t == Node::kDir ? "dir" : t == Node::kFile ? "file" : "symlink";
}

// The first difference between the model and what was read, for messages.
std::string FirstDifference(const FsModel& want, const FsModel& got) {
  for (const auto& [p, n] : want) {
    auto it = got.find(p);
    if (it == got.end()) return p + " (" + TypeName(n.type) + ") missing";
    if (it->second.type != n.type) {
      return p + ": " + TypeName(it->second.type) + " instead of " + TypeName(n.type);
    }
    if (it->second.data != n.data) {
      return p + ": content differs (" + std::to_string(it->second.data.size()) + " bytes, want " +
             std::to_string(n.data.size()) + ")";
    }
    if (n.mode && it->second.mode != n.mode) {
      char buf[64];
      std::snprintf(buf, sizeof buf, ": mode %04o, want %04o", it->second.mode, n.mode);
      return p + buf;
    }
  }
  for (const auto& [p, n] : got) {
    if (!want.count(p)) return p + " (" + TypeName(n.type) + ") not expected";
  }
  return "equal";
}

// e2fsck on a sparse export of the decrypted filesystem; replays the
// journal first if the copy needs it (ext4 RECOVER flag).
std::string E2fsckExport(BlockDevice& dev, RunResult& res) {
  testing::TempDir dir;
  const std::string img = testing::DumpImage(dev, dir, "fs");
  res.e2fsck_ran = true;
  uint8_t sb[1024];
  {
    std::ifstream f(img, std::ios::binary);
    f.seekg(1024);
    f.read(reinterpret_cast<char*>(sb), sizeof sb);
    if (!f) return "cannot read the exported superblock";
  }
  const uint32_t incompat = uint32_t(sb[0x60]) | uint32_t(sb[0x61]) << 8 |
                            uint32_t(sb[0x62]) << 16 | uint32_t(sb[0x63]) << 24;
  std::string out;
  if (incompat & 0x4 /* EXT3_FEATURE_INCOMPAT_RECOVER */) {
    res.journal_replayed = true;
    const int rc = testing::RunCommand("e2fsck -E journal_only -y " + img + " 2>&1", &out);
    if (rc != 0 && rc != 1) return "e2fsck journal replay exit " + std::to_string(rc) + ": " + out;
  }
  const int rc = testing::RunCommand("e2fsck -fn " + img + " 2>&1", &out);
  if (rc != 0) return "e2fsck -fn exit " + std::to_string(rc) + ":\n" + out;
  return "";
}

// The LUKS2 header area of the volume [0, data offset): mapped extents and
// bytes as in the base image.
Status ReadHeader(pool::Pool& p, uint64_t data_offset, std::vector<Extent>* extents,
                  std::vector<uint8_t>* bytes) {
  ASSIGN_OR_RETURN(auto vol, p.OpenVolume(kVolume, true));
  ASSIGN_OR_RETURN(*extents, vol->AllocatedExtents(0, data_offset));
  bytes->clear();
  for (const Extent& e : *extents) {
    const size_t at = bytes->size();
    bytes->resize(at + e.length);
    RETURN_IF_ERROR(vol->Read(e.offset, std::span<uint8_t>(bytes->data() + at, e.length)));
  }
  return Status::Ok();
}

std::string CompareHeader(pool::Pool& p) {
  std::vector<Extent> extents;
  std::vector<uint8_t> bytes;
  const BaseImage& base = BaseImage::Get();
  Status st = ReadHeader(p, base.crypt.data_offset, &extents, &bytes);
  if (!st.ok()) return "reading the LUKS2 header area: " + st.ToString();
  if (extents != base.header_extents) return "LUKS2 header area: mapped extents changed";
  if (bytes != base.header_bytes) return "LUKS2 header area: bytes changed";
  return "";
}

// A new file through the recovered stack (read-write, volume key), the
// session closed (pool committed); after another reboot the pool is clean
// and the file reads back.
std::string WriteAfterRecovery(const std::shared_ptr<MemStorage>& storage, const Workload& w) {
  const std::string host = w.host->file("after-crash");
  const auto data = testing::RandomBytes(20000, w.seed);
  WriteHostFile(host, data);
  {
    Chain c(storage, nullptr);
    c.UseVolumeKey();
    Status st = c.Open(true);
    if (st.ok()) st = c.fs().PutFile(host, "/after-crash", CopyOptions());
    if (st.ok()) st = c.Close();
    if (!st.ok()) return "writing: " + st.ToString();
  }
  Chain c(storage, nullptr);
  c.UseVolumeKey();
  Status st = c.Open(false);
  if (!st.ok()) return "reopening: " + st.ToString();
  auto check = c.pool().Check();
  if (!check.ok() || !check->ok) {
    return "pool check: " + (check.ok() ? check->ToJson() : check.status().ToString());
  }
  std::vector<uint8_t> got;
  st = c.fs().ReadFile("/after-crash", [&](std::span<const uint8_t> d) {
    got.insert(got.end(), d.begin(), d.end());
    return Status::Ok();
  });
  if (!st.ok()) return "reading back: " + st.ToString();
  if (got != data) return "the file written after recovery reads back different";
  return "";
}

}  // namespace

bool Matches(const FsModel& want, const FsModel& got) {
  if (want.size() != got.size()) return false;
  for (auto a = want.begin(), b = got.begin(); a != want.end(); ++a, ++b) {
    if (a->first != b->first || a->second.type != b->second.type ||
        a->second.data != b->second.data || (a->second.mode && a->second.mode != b->second.mode))
      return false;
  }
  return true;
}

const char* KindName(FsOp::Kind k) {
  switch (k) {
    case FsOp::kPut: return "put";
    case FsOp::kRemove: return "rm";
    case FsOp::kMkdir: return "mkdir";
    case FsOp::kPopulate: return "populate";
    case FsOp::kSymlink: return "symlink";
    case FsOp::kChmod: return "chmod";
    case FsOp::kFlush: return "flush";
    case FsOp::kRemount: return "remount";
  }
  return "?";
}

Workload Workload::Generate(uint64_t seed, int n_ops) {
  std::mt19937_64 rng(seed);
  auto R = [&](uint64_t n) { return n ? rng() % n : 0; };
  Workload w;
  w.seed = seed;
  w.host = std::make_shared<testing::TempDir>();
  w.write_behind = R(2) == 1;
  FsModel m;
  w.states.push_back(m);
  int next = 0;
  auto name = [&](const char* prefix) { return prefix + std::to_string(next++); };
  auto pick = [&](Node::Type t) -> std::string {
    std::vector<std::string> c;
    if (t == Node::kDir) c.push_back("/");
    for (const auto& [p, n] : m) {
      if (n.type == t) c.push_back(p);
    }
    return c.empty() ? std::string() : c[R(c.size())];
  };
  auto content = [&]() {
    static const uint64_t kSizes[] = {0, 3000, 60000, 300000};
    if (R(6) == 0) {
      // Sparse: data, a hole of at least 128 KiB, data, maybe a trailing hole
      // (sizes add up to at most 231,072 bytes).
      std::vector<uint8_t> d(240000 + R(400000), 0);
      const auto a = testing::RandomBytes(1 + R(40000), rng());
      const auto b = testing::RandomBytes(1 + R(30000), rng());
      std::copy(a.begin(), a.end(), d.begin());
      std::copy(b.begin(), b.end(), d.begin() + long(a.size() + 131072 + R(30000)));
      return d;
    }
    const uint64_t cap = kSizes[R(4)];
    return testing::RandomBytes(cap ? 1 + R(cap) : 0, rng());
  };
  while (static_cast<int>(w.ops.size()) < n_ops) {
    FsOp op;
    const int r = static_cast<int>(R(100));
    if (r < 28) {
      op.kind = FsOp::kPut;
      const std::string old = pick(Node::kFile);
      op.path = (!old.empty() && R(3) == 0) ? old : Join(pick(Node::kDir), name("f"));
      op.host = w.host->file(name("h"));
      Node n{Node::kFile, content()};
      WriteHostFile(op.host, n.data);
      m[op.path] = std::move(n);
    } else if (r < 38) {
      op.kind = FsOp::kMkdir;
      op.path = Join(pick(Node::kDir), name("d"));
      m[op.path] = Node{Node::kDir, {}, 0755};
    } else if (r < 46) {
      // A small host tree: two files, a subdirectory with a file, an empty
      // directory; copied to a new directory.
      op.kind = FsOp::kPopulate;
      op.path = Join(pick(Node::kDir), name("p"));
      op.host = w.host->file(name("t"));
      std::filesystem::create_directories(op.host + "/sub");
      std::filesystem::create_directories(op.host + "/empty");
      m[op.path] = Node{Node::kDir, {}};
      m[op.path + "/sub"] = Node{Node::kDir, {}};
      m[op.path + "/empty"] = Node{Node::kDir, {}};
      for (const char* f : {"a", "b", "sub/c"}) {
        Node n{Node::kFile, content()};
        WriteHostFile(op.host + "/" + f, n.data);
        m[op.path + "/" + f] = std::move(n);
      }
    } else if (r < 52) {
      op.kind = FsOp::kSymlink;
      op.path = Join(pick(Node::kDir), name("l"));
      // Fast (in the inode) or slow (a block) symlink.
      op.host = R(2) ? "target" + std::to_string(next) : std::string(80 + R(100), 't');
      m[op.path] = Node{Node::kSymlink, std::vector<uint8_t>(op.host.begin(), op.host.end())};
    } else if (r < 57) {
      // Metadata only: the inode changes, no block is allocated.
      std::vector<std::string> c;
      for (const auto& [p, n] : m) {
        if (n.type != Node::kSymlink) c.push_back(p);
      }
      if (c.empty()) continue;
      static const uint32_t kModes[] = {0600, 0640, 0700, 0750, 0755, 0444, 0711, 01777};
      op.kind = FsOp::kChmod;
      op.path = c[R(c.size())];
      op.mode = kModes[R(8)];
      m[op.path].mode = op.mode;
    } else if (r < 66) {
      if (m.empty()) continue;
      op.kind = FsOp::kRemove;
      auto it = m.begin();
      std::advance(it, R(m.size()));
      op.path = it->first;
      const std::string prefix = op.path + "/";
      for (auto j = m.begin(); j != m.end();) {
        if (j->first.compare(0, prefix.size(), prefix) == 0) {
          op.recursive = true;
          j = m.erase(j);
        } else {
          ++j;
        }
      }
      m.erase(op.path);
    } else if (r < 92) {
      op.kind = FsOp::kFlush;
    } else {
      op.kind = FsOp::kRemount;
    }
    w.ops.push_back(op);
    w.states.push_back(m);
  }
  return w;
}

std::string Workload::Describe() const {
  std::ostringstream s;
  if (write_behind) s << "(ext4 -> WriteBehindDevice -> LUKS2)\n";
  for (size_t i = 0; i < ops.size(); ++i) {
    s << i << ": " << KindName(ops[i].kind) << " " << ops[i].path;
    if (ops[i].kind == FsOp::kPut) {
      s << " (" << states[i + 1].at(ops[i].path).data.size() << " bytes)";
    }
    if (ops[i].recursive) s << " -r";
    s << "\n";
  }
  return s.str();
}

const BaseImage& BaseImage::Get() {
  static const BaseImage base = [] {
    auto storage = std::make_shared<MemStorage>();
    storage->block_size = 4096;
    storage->block_count = kPoolBytes / 4096;
    pool::PoolCreateOptions po;
    po.size_bytes = kPoolBytes;
    po.cache_bytes = kPoolCache;
    auto p = pool::Pool::Create(pool::MakeDeviceStore(std::make_unique<MemDevice>(storage)), po);
    Must(p.status(), "pool create");
    Must((*p)->CreateVolume(kVolume, kVolumeBytes, {}), "create volume");
    auto vol = (*p)->OpenVolume(kVolume, false);
    Must(vol.status(), "open volume");
    fde::FormatOptions fo;
    fo.kdf = fde::KdfParams::Fast(fde::KdfType::kArgon2id);
    auto pass = GetPassphrase();
    Must(pass.status(), "passphrase");
    auto crypt = fde::Format(std::move(vol).value(), *pass, fo);
    Must(crypt.status(), "luks format");
    BaseImage b;
    auto key = (*crypt)->CopyVolumeKey();
    Must(key.status(), "volume key");
    b.volume_key = std::make_shared<const fde::Secret>(std::move(key).value());
    b.crypt.kind = (*crypt)->kind();
    b.crypt.data_offset = (*crypt)->data_offset();
    b.crypt.sector_size = (*crypt)->block_size();
    b.crypt.iv_tweak = (*crypt)->iv_tweak();
    b.crypt.allow_discards = (*crypt)->allow_discards();
    fsbridge::MkfsOptions mo;
    mo.fresh_device = true;  // as build does
    mo.timestamp = kTimestamp;
    mo.uuid = std::array<uint8_t, 16>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    auto fs = fsbridge::Filesystem::Mkfs(std::move(crypt).value(), mo);
    Must(fs.status(), "mkfs");
    Must((*fs)->Close(), "close fs");
    fs->reset();
    Must((*p)->Commit(), "commit");
    p->reset();
    pool::PoolOpenOptions ro;
    ro.read_only = true;
    auto again =
        pool::Pool::Open(pool::MakeDeviceStore(std::make_unique<MemDevice>(storage)), ro);
    Must(again.status(), "pool reopen");
    Must(ReadHeader(**again, b.crypt.data_offset, &b.header_extents, &b.header_bytes),
         "reading the header area");
    b.storage = storage;
    return b;
  }();
  return base;
}

RunResult RunCase(const Workload& w, const RunOptions& o) {
  RunResult res;
  auto fail = [&](const std::string& e) {
    res.ok = false;
    res.error = e;
    return res;
  };
  auto storage = std::make_shared<MemStorage>(*BaseImage::Get().storage);
  auto ctl = std::make_shared<FaultController>();
  size_t durable = 0;  // w.states index of the last completed commit
  std::vector<size_t> accepted;
  {
    Chain c(storage, ctl, o.sabotage);
    c.UseVolumeKey();
    c.UseWriteBehind(w.write_behind);
    Status st = c.Open(true);
    if (!st.ok()) return fail("open before the edits: " + st.ToString());
    const uint64_t base = ctl->mutating_ops();
    if (o.cut_at >= 0) ctl->CutPowerAt(base + uint64_t(o.cut_at), o.mode, o.cut_seed);
    size_t failed = w.ops.size();
    for (size_t i = 0; i < w.ops.size(); ++i) {
      st = Apply(c, w.ops[i]);
      if (!st.ok()) {
        if (!ctl->power_cut()) {
          return fail("op " + std::to_string(i) + " (" + KindName(w.ops[i].kind) + " " +
                      w.ops[i].path + ") failed without a power cut: " + st.ToString());
        }
        failed = i;
        break;
      }
      if (w.ops[i].commits()) durable = i + 1;
    }
    accepted.push_back(durable);
    if (failed == w.ops.size()) {
      // Every edit ran: closing the session is the last commit.
      st = c.Close();
      if (st.ok()) {
        durable = w.ops.size();
        accepted = {durable};
      } else if (!ctl->power_cut()) {
        return fail("closing: " + st.ToString());
      } else {
        accepted.push_back(w.ops.size());
      }
    } else if (w.ops[failed].commits()) {
      accepted.push_back(failed + 1);  // the commit in flight may have landed
    }
    res.cut = ctl->power_cut();
    res.mutating_ops = ctl->mutating_ops() - base;
    // Power off: the chain is dropped; what the store holds is what a disk
    // would after the crash.
  }

  // Reboot.
  std::string problem;
  {
    Chain r(storage, nullptr);
    Status st = r.OpenPool(false);
    if (!st.ok()) return fail("pool open after the crash: " + st.ToString());
    auto check = r.pool().Check();
    if (!check.ok()) return fail("pool check: " + check.status().ToString());
    if (!check->ok) return fail("pool check: " + check->ToJson());
    const std::string header = CompareHeader(r.pool());
    if (!header.empty()) return fail(header);
    r.UseVolumeKey(!o.passphrase);
    st = r.OpenFs(false);
    if (!st.ok()) return fail("LUKS2 + ext4 open after the crash: " + st.ToString());
    FsModel got;
    st = Walk(r.fs(), "/", got);
    if (!st.ok()) return fail("reading the tree back: " + st.ToString());
    bool match = false;
    for (size_t i : accepted) match = match || Matches(w.states[i], got);
    if (!match) {
      std::string which;
      for (size_t i : accepted) which += " " + std::to_string(i);
      problem = "tree matches no committed state (accepted after ops:" + which +
                "); against the state after " + std::to_string(durable) +
                " ops: " + FirstDifference(w.states[durable], got);
    }
    if (o.e2fsck) {
      // Also on a mismatch: what e2fsck says about it helps the diagnosis.
      auto fs = r.TakeFs();
      st = fs->Close();
      if (!st.ok()) return fail("closing the read-only filesystem: " + st.ToString());
      auto dev = fs->Release();
      const std::string e = E2fsckExport(*dev, res);
      if (!e.empty()) problem += (problem.empty() ? "" : "\n") + e;
    }
  }
  if (!problem.empty()) return fail(problem);
  if (o.e2fsck) {
    // The recovered stack keeps working: a write and a commit on it, then
    // a clean pool and the new file read back after another reboot.
    const std::string e = WriteAfterRecovery(storage, w);
    if (!e.empty()) return fail("after recovery: " + e);
  }
  return res;
}

}  // namespace stack::soak

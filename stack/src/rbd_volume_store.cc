// RbdVolumeStore (see stack/rbd_volume_store.h and spec/ceph.md).
#include "stack/rbd_volume_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <mutex>
#include <random>
#include <thread>

#include "stack/publish.h"

#ifdef STACK_HAVE_RBD
#include "rbd/rbd.h"
#endif

namespace stack::compose {
namespace {

std::mutex g_options_mu;
CephOptions g_options;

CephOptions Options() {
  std::lock_guard<std::mutex> l(g_options_mu);
  return g_options;
}

}  // namespace

void SetCephOptions(const CephOptions& options) {
  std::lock_guard<std::mutex> l(g_options_mu);
  g_options = options;
}

#ifndef STACK_HAVE_RBD

Result<std::shared_ptr<VolumeStore>> OpenRbdStore(const std::string& path, PoolAccess) {
  return Status::Unsupported(path + ": this stack was built without librbd (install librbd-dev "
                                    "librados-dev and rebuild)");
}

#else

namespace {

constexpr const char* kMeta = "stack.";
constexpr const char* kSnapMeta = "stack.snap.";
// A deleted volume whose snapshots (or clones of them) still live: its
// image renamed `.del-<12 hex>-<V>` (hidden), listed only by its snapshots,
// still named V@S (spec/ceph.md "Deleting a volume before its snapshots").
constexpr const char* kDeletedPrefix = ".del-";
// The RADOS object whose lock admits one remover of deleted volumes'
// images (`.del-*`) at a time, and how long a killed holder keeps it
// (also the lease of kBuildsLock).
constexpr const char* kSweepLock = "stack.sweep";
constexpr int kSweepLockSeconds = 60;
// The RADOS object whose lock keeps removers of killed builds and makers
// of new ones apart: a maker holds it shared from creating `.build-V`
// until its writable handle watches the image (RBD cannot create and open
// in one step, and a build nobody watches yet looks killed); a remover
// holds it exclusively while it decides and removes.
constexpr const char* kBuildsLock = "stack.builds";
constexpr size_t kDeletedTag = 12;
// The snapshot a rollback from another image takes of its target first, so
// a failure (or, at the next writable open, a kill) restores the target.
constexpr const char* kGuardSnap = ".stack-guard";
// The image metadata naming the guard's snapshot id while it stands.
constexpr const char* kGuardKey = "stack.guard";
// Pool metadata: clones deeper than this are flattened when made.
constexpr const char* kDepthKey = "stack.clone_depth_limit";
constexpr int kDefaultDepthLimit = 8;
constexpr uint64_t kChunk = 1u << 20;  // bytes compared or copied per read

bool IsDeletedImage(const std::string& image) {
  return image.rfind(kDeletedPrefix, 0) == 0 && image.size() > 5 + kDeletedTag + 1 &&
         image[5 + kDeletedTag] == '-';
}
// The volume name a deleted image had.
std::string DeletedVolume(const std::string& image) { return image.substr(5 + kDeletedTag + 1); }

bool AllZero(const uint8_t* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

// Appends [offset, offset + length) of `kind` to ascending `out`, merging.
void AddRange(std::vector<pool::DiffRange>& out, uint64_t offset, uint64_t length,
              pool::DiffKind kind) {
  if (!out.empty() && out.back().kind == kind &&
      out.back().offset + out.back().length >= offset) {
    out.back().length =
        std::max(out.back().offset + out.back().length, offset + length) - out.back().offset;
    return;
  }
  pool::DiffRange r;
  r.offset = offset;
  r.length = length;
  r.kind = kind;
  out.push_back(r);
}

// Where `b` differs from `a` (nullptr: an empty image) by content, per
// 4 KiB block, for images diff_iterate2 cannot compare (other lineages):
// both are read wherever either has data. A differing block that reads as
// zeros in `b` is kDiscarded, another kWritten. Nothing past b's size.
Status CompareContent(const std::shared_ptr<rbd::Image>& a, const std::shared_ptr<rbd::Image>& b,
                      std::vector<pool::DiffRange>& out) {
  constexpr uint64_t bs = 4096;
  ASSIGN_OR_RETURN(rbd::ImageStat bst, b->Stat());
  const uint64_t size = bst.size_bytes;
  uint64_t asize = 0;
  if (a) {
    ASSIGN_OR_RETURN(rbd::ImageStat ast, a->Stat());
    asize = ast.size_bytes;
  }
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  auto add = [&](const rbd::DiffExtent& e) {
    const uint64_t begin = e.offset / bs * bs;
    const uint64_t end = std::min(size, (e.offset + e.length + bs - 1) / bs * bs);
    if (e.exists && begin < end) spans.emplace_back(begin, end);
    return Status::Ok();
  };
  RETURN_IF_ERROR(b->DiffIterate("", add, true));
  if (a) RETURN_IF_ERROR(a->DiffIterate("", add, true, 0, size));
  std::sort(spans.begin(), spans.end());
  rbd::RbdDevice bdev(b, true);
  std::unique_ptr<rbd::RbdDevice> adev = a ? std::make_unique<rbd::RbdDevice>(a, true) : nullptr;
  std::vector<uint8_t> x(kChunk), y(kChunk);
  uint64_t done = 0;  // spans overlap: each byte once
  for (auto [begin, end] : spans) {
    for (uint64_t off = std::max(begin, done); off < end; off += kChunk) {
      const uint64_t n = std::min<uint64_t>(kChunk, end - off);
      RETURN_IF_ERROR(bdev.Read(off, std::span(y.data(), n)));
      std::fill(x.begin(), x.begin() + n, 0);
      if (adev && off < asize)
        RETURN_IF_ERROR(adev->Read(off, std::span(x.data(), std::min(n, asize - off))));
      for (uint64_t i = 0; i < n; i += bs) {
        if (std::memcmp(x.data() + i, y.data() + i, bs) == 0) continue;
        AddRange(out, off + i, bs,
                 AllZero(y.data() + i, bs) ? pool::DiffKind::kDiscarded
                                           : pool::DiffKind::kWritten);
      }
    }
    done = std::max(done, end);
  }
  return Status::Ok();
}

// Snapshots of ours and the user's: without the guard.
Result<std::vector<rbd::SnapInfo>> UserSnaps(rbd::Image& img) {
  ASSIGN_OR_RETURN(auto snaps, img.Snapshots());
  std::erase_if(snaps, [](const rbd::SnapInfo& s) { return s.name == kGuardSnap; });
  return snaps;
}

// Test hook for the races between writers (tests/e2e/test_rbd.py):
// STACK_TEST_PAUSE=POINT:FILE makes this process, the first time it
// reaches POINT, create FILE.reached and wait (at most 60 s) until FILE
// exists. Unset (always, outside those tests): nothing.
void PauseAt(const char* point) {
  static std::atomic<bool> done{false};
  const char* env = std::getenv("STACK_TEST_PAUSE");
  if (!env) return;
  const std::string spec = env;
  const size_t colon = spec.find(':');
  if (colon == std::string::npos || spec.substr(0, colon) != point || done.exchange(true)) return;
  const std::string file = spec.substr(colon + 1);
  if (FILE* f = std::fopen((file + ".reached").c_str(), "w")) std::fclose(f);
  for (int i = 0; i < 600 && ::access(file.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

std::string NewTag() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> l(mu);
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(s, kDeletedTag);
}

std::string NewUuid() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> l(mu);
  uint64_t a = rng(), b = rng();
  a = (a & ~0xf000ull) | 0x4000ull;                    // version 4
  b = (b & ~(3ull << 62)) | (2ull << 62);              // variant 10
  char s[37];
  std::snprintf(s, sizeof s, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
  return s;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string JoinTags(const std::vector<std::string>& tags) {
  std::string s;
  for (auto& t : tags) s += (s.empty() ? "" : "\n") + t;
  return s;
}

std::vector<std::string> SplitTags(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size() && !s.empty()) {
    size_t j = s.find('\n', i);
    if (j == std::string::npos) j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

struct Name {
  std::string volume;
  std::string snap;  // "" = the volume itself
  bool is_snapshot() const { return !snap.empty(); }
};

Result<Name> Parse(const std::string& name) {
  const size_t at = name.find('@');
  Name n;
  if (at == std::string::npos) {
    n.volume = name;
  } else {
    n.volume = name.substr(0, at);
    n.snap = name.substr(at + 1);
    if (n.snap.empty() || n.snap.find('@') != std::string::npos)
      return Status::InvalidArgument("'" + name + "' is not VOLUME or VOLUME@SNAPSHOT");
  }
  if (!rbd::ValidImageName(n.volume) || (n.is_snapshot() && !rbd::ValidImageName(n.snap)))
    return Status::InvalidArgument("'" + name + "' is not a name RBD allows here (1-255 bytes of "
                                   "[A-Za-z0-9._:+-], one '@')");
  return n;
}

// The keys an entry's record is kept under: the image's own, or its
// snapshot's.
std::string Key(const Name& n, const std::string& field) {
  return n.is_snapshot() ? std::string(kSnapMeta) + n.snap + "." + field
                         : std::string(kMeta) + field;
}

// Stored text as a whole decimal number; nullopt when it is not one (the
// text may be another tool's: never an exception, never a prefix).
template <typename T>
std::optional<T> WholeNumber(const std::string& text) {
  T n{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

// The fields of a snapshot's record. A snapshot's keys are found by exact
// name, never by prefix: `stack.snap.a.` also starts the keys of a
// snapshot named `a.b`.
constexpr const char* kSnapFields[] = {"uuid", "parent_uuid", "created_ns", "note", "tags"};

// Snapshot `n`'s record keys present on `img`, with their values.
Result<std::map<std::string, std::string>> SnapRecordKeys(rbd::Image& img, const Name& n) {
  ASSIGN_OR_RETURN(auto keys, img.ListMeta(std::string(kSnapMeta) + n.snap + "."));
  std::map<std::string, std::string> out;
  for (const char* f : kSnapFields)
    if (auto it = keys.find(Key(n, f)); it != keys.end()) out.insert(*it);
  return out;
}

class RbdVolumeStore final : public VolumeStore {
 public:
  RbdVolumeStore(std::shared_ptr<rbd::Cluster> cluster, std::shared_ptr<rbd::IoCtx> io,
                 bool writable, bool break_lock)
      : cluster_(std::move(cluster)), io_(std::move(io)), writable_(writable),
        break_lock_(break_lock) {}

  std::string describe() const override { return io_->describe(); }
  uint32_t block_size() const override { return 4096; }

  Status CreateVolume(const std::string& name, uint64_t size_bytes,
                      const pool::EntryMeta& meta) override {
    return CreateVolume(name, size_bytes, meta, pool::EntryIdentity{});
  }
  Status CreateVolume(const std::string& name, uint64_t size_bytes, const pool::EntryMeta& meta,
                      const pool::EntryIdentity& identity) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name n, Parse(name));
    if (n.is_snapshot()) return Status::InvalidArgument("a volume name has no '@': " + name);
    if (size_bytes == 0 || size_bytes % block_size())
      return Status::InvalidArgument("volume size must be a positive multiple of 4096");
    std::unique_ptr<rbd::ObjectLock> making;
    if (IsHiddenBuild(name)) {
      ASSIGN_OR_RETURN(making, HoldBuildsLockShared());
    }
    RETURN_IF_ERROR(rbd::CreateImage(*io_, name, size_bytes));
    PauseAt("build-created");
    making_.insert(name);
    Status st = WriteRecord(n, identity.uuid.empty() ? NewUuid() : identity.uuid,
                            identity.parent_uuid,
                            identity.created_unix_ns ? identity.created_unix_ns : NowNs(), meta);
    making_.erase(name);
    if (!st.ok()) {
      writers_.erase(name);
      (void)rbd::RemoveImage(*io_, name);
    }
    return st;
  }

  using VolumeStore::OpenVolume;
  Result<std::unique_ptr<BlockDevice>> OpenVolume(const std::string& name, bool read_only,
                                                  const std::string&) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(Name n, Parse(name));
    if (n.is_snapshot()) {
      if (!read_only)
        return Status::ReadOnly("snapshot " + name + " is read-only: clone it to change it");
      ASSIGN_OR_RETURN(std::string image, ImageOf(n));
      ASSIGN_OR_RETURN(auto img, rbd::Image::Open(io_, image, n.snap, true));
      return Device(std::move(img), true, name);
    }
    if (read_only) {
      if (auto it = writers_.find(name); it != writers_.end())
        return Device(it->second, true, name);
      ASSIGN_OR_RETURN(auto img, rbd::Image::Open(io_, name, std::nullopt, true));
      return Device(std::move(img), true, name);
    }
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(auto img, Writer(name));
    RETURN_IF_ERROR(RequireChangeable(*img, name));
    return Device(std::move(img), false, name);
  }

  // A block device over `img`. An image of a size that is not whole 4 KiB
  // blocks (made by other tools) is refused: its last bytes would be cut
  // off every read, export and send.
  Result<std::unique_ptr<BlockDevice>> Device(std::shared_ptr<rbd::Image> img, bool read_only,
                                              const std::string& name) {
    ASSIGN_OR_RETURN(rbd::ImageStat st, img->Stat());
    if (st.size_bytes % block_size())
      return Status::Unsupported("image " + name + " of " + describe() + " is " +
                                 std::to_string(st.size_bytes) + " bytes, not a whole number of " +
                                 std::to_string(block_size()) + "-byte blocks (rbd resize it)");
    return std::unique_ptr<BlockDevice>(std::make_unique<rbd::RbdDevice>(std::move(img), read_only));
  }

  Status Snapshot(const std::string& source, const std::string& snap_name,
                  const pool::EntryMeta& meta) override {
    return Snapshot(source, snap_name, meta, pool::EntryIdentity{});
  }
  Status Snapshot(const std::string& source, const std::string& snap_name,
                  const pool::EntryMeta& meta, const pool::EntryIdentity& identity) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name s, Parse(snap_name));
    if (!s.is_snapshot() || s.volume != source)
      return Status::InvalidArgument("snapshot name must be " + source + "@SNAPSHOT");
    ASSIGN_OR_RETURN(auto img, Writer(source));
    // A deleted volume's V@S keeps its name (it lives in another image).
    if (ImageOf(s).ok()) return Status::AlreadyExists("snapshot " + snap_name + " already exists");
    ASSIGN_OR_RETURN(auto src_uuid, img->GetMeta(std::string(kMeta) + "uuid"));
    RETURN_IF_ERROR(img->CreateSnapshot(s.snap));
    Status st = WriteRecord(s, identity.uuid.empty() ? NewUuid() : identity.uuid,
                            identity.parent_uuid.empty() ? src_uuid.value_or("") : identity.parent_uuid,
                            identity.created_unix_ns ? identity.created_unix_ns : NowNs(), meta);
    if (!st.ok()) (void)img->RemoveSnapshot(s.snap);
    return st;
  }

  Status Clone(const std::string& source, const std::string& new_name,
               const pool::EntryMeta& meta) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name src, Parse(source));
    ASSIGN_OR_RETURN(Name dst, Parse(new_name));
    if (dst.is_snapshot()) return Status::InvalidArgument("a clone is a volume: no '@' in " + new_name);
    Located src_at;
    ASSIGN_OR_RETURN(pool::EntryInfo src_info, StatLocked(src, false, &src_at));
    const std::string& src_image = src_at.image;
    std::string snap = src.snap;
    std::unique_ptr<rbd::ObjectLock> making;
    if (IsHiddenBuild(new_name)) {
      ASSIGN_OR_RETURN(making, HoldBuildsLockShared());
    }
    std::shared_ptr<rbd::Image> tmp_owner;
    if (!src.is_snapshot()) {
      // RBD clones snapshots only: a clone of a volume goes through a
      // snapshot made for it, removed at once (clone v2 keeps it in the
      // trash until the clone goes).
      snap = "stack-clone-" + NewUuid();
      ASSIGN_OR_RETURN(tmp_owner, Writer(src.volume));
      RETURN_IF_ERROR(tmp_owner->CreateSnapshot(snap));
    }
    Status st = rbd::CloneImage(*io_, src_image, snap, new_name);
    if (tmp_owner) (void)tmp_owner->RemoveSnapshot(snap);
    RETURN_IF_ERROR(st);
    // librbd copies the parent's image metadata into the clone: ours (the
    // source's record and its snapshots') is replaced by the clone's.
    making_.insert(new_name);
    st = WriteRecord(dst, NewUuid(), src_info.uuid, NowNs(), meta, /*replace=*/true);
    making_.erase(new_name);
    making.reset();  // our writer watches it now (a flatten may take long)
    if (st.ok()) st = FlattenPastDepthLimit(new_name, src_at);
    if (!st.ok()) {
      writers_.erase(new_name);
      (void)rbd::RemoveImage(*io_, new_name);
    }
    return st;
  }

  Status Rollback(const std::string& volume, const std::string& snapshot) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    Name s{volume, snapshot};
    if (snapshot.find('@') != std::string::npos) {
      ASSIGN_OR_RETURN(s, Parse(snapshot));
    }
    ASSIGN_OR_RETURN(std::string image, ImageOf(s));
    ASSIGN_OR_RETURN(auto img, Writer(volume));
    RETURN_IF_ERROR(RequireChangeable(*img, volume));
    if (img.use_count() > 2) return Status::Busy("volume " + volume + " is open (a device is using it)");
    if (image == volume) return img->RollbackTo(s.snap);
    return RollbackFromOtherImage(img, image, s.snap);
  }

  Status Delete(const std::string& name) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name n, Parse(name));
    if (n.is_snapshot()) {
      ASSIGN_OR_RETURN(std::string image, ImageOf(n));
      ASSIGN_OR_RETURN(auto img, Writer(image));
      RETURN_IF_ERROR(img->RemoveSnapshot(n.snap));
      ASSIGN_OR_RETURN(auto keys, SnapRecordKeys(*img, n));
      for (auto& [k, v] : keys) (void)img->RemoveMeta(k);
      img.reset();
      // A deleted volume's last snapshot takes its image along (once no
      // clone needs it).
      if (IsDeletedImage(image)) return SweepDeleted();
      return Status::Ok();
    }
    if (IsDeletedImage(name)) return Status::NotFound("no entry " + name + " in " + describe());
    RETURN_IF_ERROR(DropWriter(name));
    // A killed build's leftover may be found by several writers at once:
    // one removes it, the others leave it. Taken before looking, so no
    // maker creates a build that is not watched yet meanwhile (kBuildsLock).
    std::unique_ptr<rbd::ObjectLock> sweeping;
    if (IsHiddenBuild(name)) {
      ASSIGN_OR_RETURN(sweeping, rbd::ObjectLock::TryAcquire(io_, kBuildsLock, kSweepLockSeconds));
    }
    {
      ASSIGN_OR_RETURN(auto img, rbd::Image::Open(io_, name, std::nullopt, true));
      ASSIGN_OR_RETURN(bool ours, Ours(*img));
      if (!ours) {
        // Another tool's image stays, even under a name we reserve. A build
        // of ours killed between its image's creation and its record holds
        // nothing yet: one that is empty and has no snapshot goes.
        if (!IsHiddenBuild(name)) return NotOurs(name);
        ASSIGN_OR_RETURN(auto snaps, UserSnaps(*img));
        ASSIGN_OR_RETURN(uint64_t used, img->UsedBytes(false));
        if (!snaps.empty() || used) return NotOurs(name);
      }
      if (IsHiddenBuild(name)) {
        // Another process's build is live while its writer watches the
        // image (from its creation to the rename that publishes it, which
        // keeps the handle): nothing of it is touched. A killed builder's
        // watch ends after osd_client_watch_timeout; a later writer then
        // removes what it left.
        ASSIGN_OR_RETURN(size_t watchers, img->WatcherCount());
        if (watchers > 0)
          return Status::Busy("unfinished build " + name + " of " + describe() +
                              " is held by a live client (or by a killed one whose watch has "
                              "not timed out yet)");
      }
      ASSIGN_OR_RETURN(auto snaps, UserSnaps(*img));
      if (!snaps.empty()) {
        if (!IsHiddenBuild(name)) {
          // Its snapshots stay entries (as on a pool file): the image
          // goes out of sight under a reserved name until they go.
          img.reset();
          return Hide(name);
        }
        img.reset();
      }
    }
    if (IsHiddenBuild(name)) {
      // An unfinished build's snapshots go with it. A plain writable
      // open: librbd breaks the lock of a dead builder itself.
      ASSIGN_OR_RETURN(auto w, rbd::Image::Open(io_, name, std::nullopt, false));
      ASSIGN_OR_RETURN(auto snaps, UserSnaps(*w));
      for (auto& sn : snaps) RETURN_IF_ERROR(w->RemoveSnapshot(sn.name));
    }
    bool has_dependents = false;
    RETURN_IF_ERROR(rbd::RemoveImage(*io_, name, &has_dependents));
    sweeping.reset();
    // Clones of it (through trashed snapshots) keep it: hidden until they go.
    if (has_dependents) return Hide(name);
    return SweepDeleted();
  }

  Status Rename(const std::string& old_name, const std::string& new_name) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name from, Parse(old_name));
    ASSIGN_OR_RETURN(Name to, Parse(new_name));
    if (from.is_snapshot() != to.is_snapshot() || (from.is_snapshot() && from.volume != to.volume))
      return Status::InvalidArgument("a snapshot keeps its volume: rename " + old_name + " to " +
                                     from.volume + "@NEW");
    if (from.is_snapshot()) {
      ASSIGN_OR_RETURN(std::string image, ImageOf(from));
      if (ImageOf(to).ok()) return Status::AlreadyExists("entry " + new_name + " already exists");
      ASSIGN_OR_RETURN(auto img, Writer(image));
      RETURN_IF_ERROR(img->RenameSnapshot(from.snap, to.snap));
      // Keys left under the new name (a snapshot of that name removed by
      // other tools) must not mix into the moved record.
      ASSIGN_OR_RETURN(auto stale, SnapRecordKeys(*img, to));
      for (auto& [k, v] : stale) (void)img->RemoveMeta(k);
      ASSIGN_OR_RETURN(auto keys, SnapRecordKeys(*img, from));
      for (const char* f : kSnapFields) {
        auto it = keys.find(Key(from, f));
        if (it == keys.end()) continue;
        RETURN_IF_ERROR(img->SetMeta(Key(to, f), it->second));
        (void)img->RemoveMeta(it->first);
      }
      return Status::Ok();
    }
    if (IsDeletedImage(old_name)) return Status::NotFound("no entry " + old_name + " in " + describe());
    // Renamed while our handle still holds its lock and watch: a writer in
    // another process that looks for unfinished builds (an RBD pool has no
    // pool-wide writer) must find `.build-V` in use up to the moment it is
    // V, or it takes its snapshots and removes it as a killed build's.
    // Every rename of ours holds the image's exclusive lock (rbd_rename
    // itself needs none): a writer that holds the lock and finds the name
    // still its image's (Writer) keeps both until it lets go.
    RETURN_IF_ERROR(Writer(old_name).status());
    RETURN_IF_ERROR(FlushWriter(old_name));
    PauseAt("rename");
    return RenameWriter(old_name, new_name);
  }

  Status Resize(const std::string& name, uint64_t new_size_bytes) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name n, Parse(name));
    if (n.is_snapshot()) return Status::InvalidArgument("snapshot " + name + " cannot be resized");
    if (new_size_bytes == 0 || new_size_bytes % block_size())
      return Status::InvalidArgument("volume size must be a positive multiple of 4096");
    ASSIGN_OR_RETURN(auto img, Writer(name));
    RETURN_IF_ERROR(RequireChangeable(*img, name));
    return img->Resize(new_size_bytes);
  }

  Status SetReadOnly(const std::string& name, bool read_only) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name n, Parse(name));
    if (n.is_snapshot()) return read_only ? Status::Ok() : Status::ReadOnly("snapshots are read-only");
    ASSIGN_OR_RETURN(auto img, Writer(name));
    return img->SetMeta(Key(n, "read_only"), read_only ? "1" : "0");
  }

  Status SetMeta(const std::string& name, const pool::EntryMeta& meta) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name n, Parse(name));
    ASSIGN_OR_RETURN(std::string image, ImageOf(n));
    ASSIGN_OR_RETURN(auto img, Writer(image));
    RETURN_IF_ERROR(img->SetMeta(Key(n, "note"), meta.note));
    return img->SetMeta(Key(n, "tags"), JoinTags(meta.tags));
  }

  Result<std::vector<pool::EntryInfo>> List() override {
    std::lock_guard<std::mutex> l(mu_);
    return ListLocked(true, "");
  }

  Result<std::vector<std::string>> Names() override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(auto all, ListLocked(false, ""));
    std::vector<std::string> names;
    for (auto& e : all) names.push_back(e.name);
    return names;
  }

  Result<std::vector<std::string>> HiddenNames() override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(auto images, rbd::ListImages(*io_));
    std::vector<std::string> snaps, vols;
    for (auto& image : images) {
      if (image.empty() || image[0] != '.' || IsDeletedImage(image)) continue;
      auto img = rbd::Image::Open(io_, image, std::nullopt, true);
      if (!img.ok()) continue;  // removed meanwhile
      ASSIGN_OR_RETURN(auto ss, (*img)->Snapshots());
      for (auto& s : ss) snaps.push_back(image + "@" + s.name);
      vols.push_back(image);
    }
    // Snapshots first: deleting in this order never deletes a name twice.
    snaps.insert(snaps.end(), vols.begin(), vols.end());
    return snaps;
  }

  Result<std::vector<pool::EntryInfo>> FindByUuid(const std::string& uuid) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(auto all, ListLocked(false, ""));
    std::vector<pool::EntryInfo> out;
    for (auto& e : all)
      if (e.uuid == uuid) out.push_back(std::move(e));
    return out;
  }

  Result<pool::EntryInfo> Stat(const std::string& name) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(Name n, Parse(name));
    return StatLocked(n, true);
  }

  Result<pool::EntryInfo> Lookup(const std::string& name) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(Name n, Parse(name));
    return StatLocked(n, false);
  }

  Result<pool::PoolInfo> Info() override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(auto all, ListLocked(true, ""));
    pool::PoolInfo i;
    i.uuid = cluster_->fsid();  // the Ceph cluster's
    i.block_size = block_size();
    i.entries = all.size();
    for (auto& e : all) {
      if (e.kind == pool::EntryKind::kVolume) i.size_bytes += e.size_bytes;  // provisioned
      i.used_bytes += e.exclusive_bytes;
    }
    // Free: what the cluster's OSDs have left (raw, before replication;
    // the pool shares them with every other pool).
    ASSIGN_OR_RETURN(auto space, cluster_->ClusterSpace());
    i.free_bytes = space.avail_bytes;
    i.max_bytes = i.used_bytes + i.free_bytes;
    return i;
  }

  Status Diff(const std::string& from, const std::string& to,
              const std::function<Status(const pool::DiffRange&)>& sink,
              pool::DiffStats* stats) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(Name t, Parse(to));
    if (!t.is_snapshot() && IsDeletedImage(t.volume))
      return Status::NotFound("no entry " + to + " in " + describe());
    ASSIGN_OR_RETURN(std::string t_image, ImageOf(t));
    ASSIGN_OR_RETURN(auto img, rbd::Image::Open(io_, t_image,
                                                t.is_snapshot() ? std::optional(t.snap) : std::nullopt,
                                                true));
    std::vector<pool::DiffRange> ranges;
    pool::DiffStats st;  // by_address: RBD's own diff; false: compared by content
    if (from.empty()) {
      RETURN_IF_ERROR(CollectDiff(*img, "", ranges));
    } else {
      ASSIGN_OR_RETURN(Name f, Parse(from));
      if (!f.is_snapshot() && IsDeletedImage(f.volume))
        return Status::NotFound("no entry " + from + " in " + describe());
      ASSIGN_OR_RETURN(std::string f_image, ImageOf(f));
      bool same_lineage = false;
      if (f.is_snapshot() && f_image == t_image) {
        // diff_iterate2 compares an older snapshot of the image with a
        // later state of it; anything else is compared by content.
        ASSIGN_OR_RETURN(auto snaps, img->Snapshots());
        auto id = [&](const std::string& n) -> uint64_t {
          for (auto& sn : snaps)
            if (sn.name == n) return sn.id;
          return 0;
        };
        same_lineage = !t.is_snapshot() || id(f.snap) < id(t.snap);
      }
      if (same_lineage) {
        RETURN_IF_ERROR(CollectDiff(*img, f.snap, ranges));
      } else {
        ASSIGN_OR_RETURN(auto fimg, rbd::Image::Open(io_, f_image,
                                                     f.is_snapshot() ? std::optional(f.snap)
                                                                     : std::nullopt,
                                                     true));
        RETURN_IF_ERROR(CompareContent(fimg, img, ranges));
        st.by_address = false;
      }
    }
    for (auto& r : ranges) {
      (r.kind == pool::DiffKind::kWritten ? st.written_bytes : st.discarded_bytes) += r.length;
      RETURN_IF_ERROR(sink(r));
    }
    if (stats) *stats = st;
    return Status::Ok();
  }

  Status Flatten(const std::string& name, bool* flattened) override {
    std::lock_guard<std::mutex> l(mu_);
    *flattened = false;
    RETURN_IF_ERROR(RequireWritable());
    ASSIGN_OR_RETURN(Name n, Parse(name));
    if (n.is_snapshot()) return Status::InvalidArgument("snapshot " + name + " cannot be flattened");
    ASSIGN_OR_RETURN(auto img, Writer(name));
    ASSIGN_OR_RETURN(rbd::ParentInfo parent, img->Parent());
    if (parent.image.empty()) return Status::Ok();
    RETURN_IF_ERROR(img->Flatten());
    *flattened = true;
    return Status::Ok();
  }

  Result<int> CloneDepthLimit() override {
    std::lock_guard<std::mutex> l(mu_);
    return DepthLimit();
  }

  Status SetCloneDepthLimit(int limit) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(RequireWritable());
    if (limit < 1) return Status::InvalidArgument("the clone depth limit is at least 1");
    return rbd::SetPoolMeta(*io_, kDepthKey, std::to_string(limit));
  }

  Status Commit() override {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [name, img] : writers_) RETURN_IF_ERROR(img->Flush());
    return Status::Ok();
  }

 private:
  Status RequireWritable() const {
    if (!writable_) return Status::ReadOnly(describe() + " is open read-only");
    return Status::Ok();
  }

  // kBuildsLock, shared: held by a maker of a hidden build from creating
  // its image until Writer watches it. Waits while a remover holds it
  // (a remover's hold is short; its lease ends a killed one's).
  Result<std::unique_ptr<rbd::ObjectLock>> HoldBuildsLockShared() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(kSweepLockSeconds + 5);
    for (int ms = 5;; ms = std::min(ms * 2, 250)) {
      auto l = rbd::ObjectLock::TryAcquire(io_, kBuildsLock, kSweepLockSeconds,
                                           rbd::ObjectLock::Mode::kShared);
      if (l.ok() || !l.status().Is(Code::kBusy) || std::chrono::steady_clock::now() > give_up)
        return l;
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
  }

  // Whether stack made `img`: it holds our record (stack.uuid). An image
  // without it is another tool's: stack reads it and never changes it.
  static Result<bool> Ours(rbd::Image& img) {
    ASSIGN_OR_RETURN(auto uuid, img.GetMeta(std::string(kMeta) + "uuid"));
    return uuid.has_value();
  }

  // A volume marked read-only keeps its content and size (as in a pool
  // file); its record and snapshots may still change.
  static Status RequireChangeable(rbd::Image& img, const std::string& name) {
    ASSIGN_OR_RETURN(auto ro, img.GetMeta(std::string(kMeta) + "read_only"));
    if (ro && *ro == "1") return Status::ReadOnly("volume " + name + " is read-only");
    return Status::Ok();
  }

  Status NotOurs(const std::string& image) const {
    return Status::ReadOnly("image " + image + " of " + describe() +
                            " was not made by stack: stack reads it and never changes it");
  }

  // The image's writable handle, holding its exclusive lock. Only for an
  // image stack made (or is making: `making_`): another tool's image is
  // ReadOnly before anything of it is locked or changed.
  Result<std::shared_ptr<rbd::Image>> Writer(const std::string& image) {
    if (auto it = writers_.find(image); it != writers_.end()) return it->second;
    ASSIGN_OR_RETURN(auto img, rbd::Image::Open(io_, image, std::nullopt, false));
    if (!making_.count(image)) {
      ASSIGN_OR_RETURN(bool ours, Ours(*img));
      if (!ours) return NotOurs(image);
    }
    PauseAt("writer-opened");
    RETURN_IF_ERROR(img->AcquireExclusiveLock(break_lock_));
    // Opened by name, but the handle follows the image: another client may
    // have renamed it between our open and our lock (a build publishing
    // `.build-V` as V, then letting go). Holding the lock, the name is
    // stable (every rename of ours holds it): check it names this image.
    ASSIGN_OR_RETURN(bool named, img->StillNamed());
    if (!named)
      return Status::NotFound("image " + image + " of " + describe() +
                              " was renamed or removed by another client meanwhile");
    RETURN_IF_ERROR(UndoGuard(*img));
    writers_[image] = img;
    return img;
  }

  // A guard left by a killed rollback from another image (import --into):
  // the image goes back to what it was before it. Only the guard whose id
  // the image's record names (kGuardKey): a snapshot of that name taken by
  // anyone else is never rolled back to. A recorded guard is taken before
  // anything is written, so an unrecorded one of ours (killed between the
  // two steps) is only removed.
  Status UndoGuard(rbd::Image& img) {
    ASSIGN_OR_RETURN(auto recorded, img.GetMeta(kGuardKey));
    ASSIGN_OR_RETURN(auto snaps, img.Snapshots());
    for (auto& sn : snaps) {
      if (sn.name != kGuardSnap) continue;
      if (recorded && *recorded == std::to_string(sn.id))
        RETURN_IF_ERROR(img.RollbackTo(kGuardSnap));
      RETURN_IF_ERROR(img.RemoveSnapshot(kGuardSnap));
    }
    if (recorded) RETURN_IF_ERROR(img.RemoveMeta(kGuardKey));
    return Status::Ok();
  }

  // Image changes since `from_snap` ("" = since creation, parent included)
  // as block-aligned ranges, merged. Collected, then handed on: librbd
  // calls back on its own thread.
  Status CollectDiff(rbd::Image& img, const std::string& from_snap,
                     std::vector<pool::DiffRange>& ranges) {
    const uint64_t bs = block_size();
    return img.DiffIterate(from_snap, [&](const rbd::DiffExtent& e) {
      const uint64_t a = e.offset / bs * bs;
      AddRange(ranges, a, (e.offset + e.length + bs - 1) / bs * bs - a,
               e.exists ? pool::DiffKind::kWritten : pool::DiffKind::kDiscarded);
      return Status::Ok();
    });
  }

  // The image holding entry `n`: V itself, or for V@S the image with
  // snapshot S (V's, else a deleted V's hidden image). NotFound otherwise.
  Result<std::string> ImageOf(const Name& n) {
    if (!n.is_snapshot()) return n.volume;
    ASSIGN_OR_RETURN(Located l, Locate(n));
    return l.image;
  }

  // ImageOf, with the image's handle (opened once: each open of an image
  // costs several round trips to the cluster).
  struct Located {
    std::string image;
    std::shared_ptr<rbd::Image> handle;
  };
  Result<Located> Locate(const Name& n) {
    if (!n.is_snapshot()) {
      ASSIGN_OR_RETURN(auto img, Reader(n.volume));
      return Located{n.volume, std::move(img)};
    }
    const std::string entry = n.volume + "@" + n.snap;
    if (auto img = Reader(n.volume); img.ok()) {
      ASSIGN_OR_RETURN(auto snaps, UserSnaps(**img));
      for (auto& sn : snaps)
        if (sn.name == n.snap) return Located{n.volume, *img};
    } else if (!img.status().Is(Code::kNotFound)) {
      return img.status();
    }
    ASSIGN_OR_RETURN(auto images, rbd::ListImages(*io_));
    for (auto& image : images) {
      if (!IsDeletedImage(image) || DeletedVolume(image) != n.volume) continue;
      auto img = Reader(image);
      if (!img.ok()) continue;  // removed meanwhile
      if (auto ours = Ours(**img); !ours.ok() || !*ours) continue;
      ASSIGN_OR_RETURN(auto snaps, UserSnaps(**img));
      for (auto& sn : snaps)
        if (sn.name == n.snap) return Located{image, *img};
    }
    return Status::NotFound("no entry " + entry + " in " + describe());
  }

  // Deletes volume `v` whose image RBD must keep (its snapshots, or clones
  // of them): renamed out of sight, its own data released. Its snapshots
  // stay entries `v@S`; SweepDeleted removes the image after the last.
  Status Hide(const std::string& v) {
    const std::string hidden = std::string(kDeletedPrefix) + NewTag() + "-" + v;
    if (!rbd::ValidImageName(hidden))
      return Status::Busy("volume " + v + " has snapshots or clones, and its name is too long "
                          "to keep it hidden until they go: delete them first");
    // Renamed holding the lock, as every rename of ours (see Rename).
    RETURN_IF_ERROR(Writer(v).status());
    RETURN_IF_ERROR(FlushWriter(v));
    RETURN_IF_ERROR(RenameWriter(v, hidden));
    // Deleted now; what follows only gives space back (best effort).
    if (auto w = Writer(hidden); w.ok()) {
      if (auto st = (*w)->Stat(); st.ok()) {
        rbd::RbdDevice dev(*w, false);
        (void)dev.Discard(0, st->size_bytes);
        (void)dev.Flush();
      }
    }
    (void)DropWriter(hidden);
    return SweepDeleted();
  }

  // Removes every deleted volume's image that nothing needs any more (no
  // snapshot left, no clone of a trashed one). Those still needed stay.
  // Best effort, after the command's own change is done: another process
  // may be sweeping the same image (RBD answers ENOENT or ESTALE), and what
  // stays is swept by a later writer, so nothing here fails the command.
  Status SweepDeleted() {
    // One sweeper at a time in the pool: two clients removing one image
    // can leave librbd waiting forever. The other writers skip their sweep.
    auto sweeping = rbd::ObjectLock::TryAcquire(io_, kSweepLock, kSweepLockSeconds);
    if (!sweeping.ok()) return Status::Ok();
    auto listed = rbd::ListImages(*io_);
    if (!listed.ok()) return Status::Ok();
    auto& images = *listed;
    for (auto& image : images) {
      if (!IsDeletedImage(image)) continue;
      {
        auto img = Reader(image);
        if (!img.ok()) continue;
        if (auto ours = Ours(**img); !ours.ok() || !*ours) continue;  // not a volume of ours
        auto snaps = UserSnaps(**img);
        if (!snaps.ok() || !snaps->empty()) continue;
      }
      if (!DropWriter(image).ok()) continue;  // in use by a device of ours
      bool has_dependents = false;
      (void)rbd::RemoveImage(*io_, image, &has_dependents);
    }
    return Status::Ok();
  }

  // Makes `img` (a volume's writable handle) hold `image`@`snap`'s content
  // and size, writing only the blocks that differ. Not one RBD operation:
  // a guard snapshot taken first restores the volume on failure, or at
  // the next writable open after a kill (Writer).
  Status RollbackFromOtherImage(const std::shared_ptr<rbd::Image>& img, const std::string& image,
                                const std::string& snap) {
    ASSIGN_OR_RETURN(auto src, rbd::Image::Open(io_, image, snap, true));
    ASSIGN_OR_RETURN(rbd::ImageStat sst, src->Stat());
    RETURN_IF_ERROR(img->CreateSnapshot(kGuardSnap));
    {  // recorded before anything is written (UndoGuard)
      ASSIGN_OR_RETURN(auto snaps, img->Snapshots());
      for (auto& sn : snaps)
        if (sn.name == kGuardSnap) RETURN_IF_ERROR(img->SetMeta(kGuardKey, std::to_string(sn.id)));
    }
    Status st = [&]() -> Status {
      ASSIGN_OR_RETURN(rbd::ImageStat vst, img->Stat());
      if (vst.size_bytes != sst.size_bytes) RETURN_IF_ERROR(img->Resize(sst.size_bytes));
      std::vector<pool::DiffRange> ranges;
      RETURN_IF_ERROR(CompareContent(img, src, ranges));
      rbd::RbdDevice dst(img, false), from(src, true);
      std::vector<uint8_t> buf(kChunk);
      for (auto& r : ranges) {
        if (r.kind == pool::DiffKind::kDiscarded) {
          RETURN_IF_ERROR(dst.WriteZeroes(r.offset, r.length));
          continue;
        }
        for (uint64_t off = r.offset; off < r.offset + r.length; off += kChunk) {
          const uint64_t n = std::min<uint64_t>(kChunk, r.offset + r.length - off);
          RETURN_IF_ERROR(from.Read(off, std::span(buf.data(), n)));
          RETURN_IF_ERROR(dst.Write(off, std::span<const uint8_t>(buf.data(), n)));
        }
      }
      return dst.Flush();
    }();
    if (!st.ok() && !img->RollbackTo(kGuardSnap).ok()) return st;  // the guard stays
    if (img->RemoveSnapshot(kGuardSnap).ok()) (void)img->RemoveMeta(kGuardKey);
    return st;
  }

  // The pool's clone depth limit (pool metadata, spec/ceph.md).
  int DepthLimit() {
    auto v = rbd::GetPoolMeta(*io_, kDepthKey);
    if (!v.ok() || !*v) return kDefaultDepthLimit;
    const auto n = WholeNumber<int>(**v);
    return n && *n > 0 ? *n : kDefaultDepthLimit;
  }

  // Flattens the new clone `image` when its parent chain is longer than
  // the limit, so reads never walk more than that many images. `parent`:
  // its parent's image, already open (not opened again). The walk starts
  // there: the clone's own parent is known (asking RBD is a round trip).
  Status FlattenPastDepthLimit(const std::string& image, const Located& parent) {
    const int limit = DepthLimit();
    int depth = 1;
    std::string at = parent.image;
    while (depth <= limit) {
      Result<std::shared_ptr<rbd::Image>> img =
          at == parent.image ? Result<std::shared_ptr<rbd::Image>>(parent.handle) : Reader(at);
      if (!img.ok()) break;  // a parent we cannot open by name (RBD's trash)
      ASSIGN_OR_RETURN(rbd::ParentInfo p, (*img)->Parent());
      if (p.image.empty()) break;
      ++depth;
      at = p.image;
    }
    if (depth <= limit) return Status::Ok();
    ASSIGN_OR_RETURN(auto w, Writer(image));
    return w->Flatten();
  }

  // Flushes our writable handle of `image` (if any); Busy while a device
  // still uses it.
  Status FlushWriter(const std::string& image) {
    auto it = writers_.find(image);
    if (it == writers_.end()) return Status::Ok();
    if (it->second.use_count() > 1)
      return Status::Busy("volume " + image + " is open (a device is using it)");
    return it->second->Flush();
  }
  // Renames image `from`, whose writer we hold (flushed, no device on it),
  // to `to`; the writer stays ours under the new name, still holding the
  // lock (no reopen to read or change it next).
  Status RenameWriter(const std::string& from, const std::string& to) {
    auto node = writers_.extract(from);
    Status st = node.mapped()->RenameTo(to);
    if (st.ok()) node.key() = to;
    writers_.insert(std::move(node));
    return st;
  }

  Status DropWriter(const std::string& image) {
    RETURN_IF_ERROR(FlushWriter(image));
    writers_.erase(image);
    return Status::Ok();
  }

  // Writes entry `n`'s record. `replace`: every other key of ours on the
  // image goes (a clone's copy of its parent's records), and a key that is
  // written anyway is not removed first (each metadata call is a round
  // trip to the cluster).
  Status WriteRecord(const Name& n, const std::string& uuid, const std::string& parent_uuid,
                     int64_t created_ns, const pool::EntryMeta& meta, bool replace = false) {
    ASSIGN_OR_RETURN(auto img, Writer(n.volume));
    std::map<std::string, std::string> record;
    record[Key(n, "uuid")] = uuid;
    if (!parent_uuid.empty()) record[Key(n, "parent_uuid")] = parent_uuid;
    record[Key(n, "created_ns")] = std::to_string(created_ns);
    if (!meta.note.empty()) record[Key(n, "note")] = meta.note;
    if (!meta.tags.empty()) record[Key(n, "tags")] = JoinTags(meta.tags);
    if (n.is_snapshot() && !replace) {
      // A new snapshot's record: keys a removed snapshot of the same name
      // left (removed by other tools) are not its own.
      ASSIGN_OR_RETURN(auto keys, SnapRecordKeys(*img, n));
      for (auto& [k, v] : keys)
        if (!record.count(k)) RETURN_IF_ERROR(img->RemoveMeta(k));
    }
    if (replace) {
      ASSIGN_OR_RETURN(auto keys, img->ListMeta(kMeta));
      for (auto& [k, v] : keys) {
        auto it = record.find(k);
        if (it == record.end()) {
          RETURN_IF_ERROR(img->RemoveMeta(k));
        } else if (it->second == v) {
          record.erase(it);  // already so
        }
      }
    }
    for (auto& [k, v] : record) RETURN_IF_ERROR(img->SetMeta(k, v));
    return Status::Ok();
  }

  // The image handle to read records from: our writer if we have one.
  Result<std::shared_ptr<rbd::Image>> Reader(const std::string& image) {
    if (auto it = writers_.find(image); it != writers_.end()) return it->second;
    return rbd::Image::Open(io_, image, std::nullopt, true);
  }

  static pool::EntryInfo Record(const Name& n, const std::map<std::string, std::string>& meta) {
    pool::EntryInfo e;
    e.name = n.is_snapshot() ? n.volume + "@" + n.snap : n.volume;
    e.kind = n.is_snapshot() ? pool::EntryKind::kSnapshot : pool::EntryKind::kVolume;
    auto get = [&](const std::string& f) -> std::string {
      auto it = meta.find(Key(n, f));
      return it == meta.end() ? "" : it->second;
    };
    e.uuid = get("uuid");
    e.parent_uuid = get("parent_uuid");
    e.note = get("note");
    e.tags = SplitTags(get("tags"));
    // Stored text, maybe not ours: a value that is not a whole decimal
    // number reads as unknown (0), as for an image without a record.
    e.created_unix_ns = WholeNumber<int64_t>(get("created_ns")).value_or(0);
    e.read_only = n.is_snapshot() || get("read_only") == "1" || e.uuid.empty();
    if (e.uuid.empty() && e.note.empty()) e.note = "(not made by stack: read-only)";
    return e;
  }

  Status Account(pool::EntryInfo* e, rbd::Image& img) {
    ASSIGN_OR_RETURN(e->mapped_bytes, img.UsedBytes(true));
    ASSIGN_OR_RETURN(e->exclusive_bytes, img.UsedBytes(false));
    e->shared_bytes = e->mapped_bytes - std::min(e->mapped_bytes, e->exclusive_bytes);
    return Status::Ok();
  }

  // The entry's record; *where (if given) is set to the image holding it.
  Result<pool::EntryInfo> StatLocked(const Name& n, bool accounting, Located* where = nullptr) {
    if (!n.is_snapshot() && IsDeletedImage(n.volume))
      return Status::NotFound("no entry " + n.volume + " in " + describe());
    auto found = Locate(n);
    if (!found.ok()) {
      if (found.status().Is(Code::kNotFound))
        return Status::NotFound("no entry " + (n.is_snapshot() ? n.volume + "@" + n.snap : n.volume) +
                                " in " + describe());
      return found.status();
    }
    const std::string& located = found->image;
    rbd::Image& img = *found->handle;
    if (where) *where = *found;
    ASSIGN_OR_RETURN(auto meta, img.ListMeta(kMeta));
    pool::EntryInfo e = Record(n, meta);
    if (!n.is_snapshot()) {
      ASSIGN_OR_RETURN(auto st, img.Stat());
      e.size_bytes = st.size_bytes;
      if (accounting) RETURN_IF_ERROR(Account(&e, img));
      return e;
    }
    ASSIGN_OR_RETURN(auto snaps, img.Snapshots());
    auto it = std::find_if(snaps.begin(), snaps.end(), [&](const rbd::SnapInfo& s) { return s.name == n.snap; });
    if (it == snaps.end()) return Status::NotFound("no entry " + e.name + " in " + describe());
    e.size_bytes = it->size_bytes;
    if (!e.created_unix_ns) e.created_unix_ns = it->created_unix_ns;
    if (accounting) {
      ASSIGN_OR_RETURN(auto at, rbd::Image::Open(io_, located, n.snap, true));
      RETURN_IF_ERROR(Account(&e, *at));
    }
    return e;
  }

  Result<std::vector<pool::EntryInfo>> ListLocked(bool accounting, const std::string&) {
    ASSIGN_OR_RETURN(auto images, rbd::ListImages(*io_));
    std::vector<pool::EntryInfo> out;
    for (auto& image : images) {
      // Another client may remove (or rename) the image while we read it:
      // then it is left out, as if listed a moment later.
      const size_t before = out.size();
      Status st = ListImage(image, accounting, out);
      if (st.Is(Code::kNotFound)) {
        out.resize(before);
        continue;
      }
      RETURN_IF_ERROR(st);
    }
    // Creation order, as a pool file lists.
    std::stable_sort(out.begin(), out.end(), [](const pool::EntryInfo& a, const pool::EntryInfo& b) {
      return a.created_unix_ns < b.created_unix_ns;
    });
    return out;
  }

  // Appends image `image`'s entries (itself unless deleted, its snapshots).
  Status ListImage(const std::string& image, bool accounting, std::vector<pool::EntryInfo>& out) {
    {
      ASSIGN_OR_RETURN(auto img, Reader(image));
      ASSIGN_OR_RETURN(auto meta, img->ListMeta(kMeta));
      // A deleted volume shows only its snapshots, under its old name.
      // Another tool's image under that reserved name is not one: like
      // every other hidden name, it is not listed.
      const bool deleted = IsDeletedImage(image);
      if (deleted && !meta.count(std::string(kMeta) + "uuid")) return Status::Ok();
      const std::string volume = deleted ? DeletedVolume(image) : image;
      if (!deleted) {
        Name vn{image, ""};
        pool::EntryInfo v = Record(vn, meta);
        if (!v.created_unix_ns) v.created_unix_ns = img->CreatedUnixNs();  // not ours: RBD's
        ASSIGN_OR_RETURN(auto st, img->Stat());
        v.size_bytes = st.size_bytes;
        if (accounting) RETURN_IF_ERROR(Account(&v, *img));
        out.push_back(std::move(v));
      }
      ASSIGN_OR_RETURN(auto snaps, UserSnaps(*img));
      for (auto& s : snaps) {
        Name sn{volume, s.name};
        pool::EntryInfo e = Record(sn, meta);
        e.size_bytes = s.size_bytes;
        if (!e.created_unix_ns) e.created_unix_ns = s.created_unix_ns;
        if (accounting) {
          ASSIGN_OR_RETURN(auto at, rbd::Image::Open(io_, image, s.name, true));
          RETURN_IF_ERROR(Account(&e, *at));
        }
        out.push_back(std::move(e));
      }
    }
    return Status::Ok();
  }

  std::mutex mu_;
  std::shared_ptr<rbd::Cluster> cluster_;
  std::shared_ptr<rbd::IoCtx> io_;
  bool writable_;
  bool break_lock_;
  std::map<std::string, std::shared_ptr<rbd::Image>> writers_;
  // Images this store created and is writing the first record of: ours,
  // though they hold no record yet (Writer).
  std::set<std::string> making_;
};

}  // namespace

Result<std::shared_ptr<VolumeStore>> OpenRbdStore(const std::string& path, PoolAccess access) {
  std::string rest = path.substr(4);  // after "rbd:"
  std::string pool = rest, ns;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    pool = rest.substr(0, slash);
    ns = rest.substr(slash + 1);
  }
  if (pool.empty() || ns.find('/') != std::string::npos || (rest.find('/') != std::string::npos && ns.empty()))
    return Status::InvalidArgument("'" + path + "' is not rbd:CEPHPOOL[/NAMESPACE]");
  const CephOptions o = Options();
  rbd::ClusterOptions co;
  co.conf_path = o.conf_path;
  co.client_id = o.client_id;
  // A child of the CLI (serve's nbdkit plugin) gets the id this way.
  if (co.client_id.empty()) {
    if (const char* id = std::getenv("STACK_CEPH_ID")) co.client_id = id;
  }
  co.timeout_seconds = o.timeout_seconds;
  ASSIGN_OR_RETURN(auto cluster, rbd::Cluster::Connect(co));
  ASSIGN_OR_RETURN(auto io, cluster->OpenIoCtx(pool, ns));
  return std::shared_ptr<VolumeStore>(
      std::make_shared<RbdVolumeStore>(cluster, io, access == PoolAccess::kWritable, o.break_lock));
}

#endif  // STACK_HAVE_RBD

}  // namespace stack::compose

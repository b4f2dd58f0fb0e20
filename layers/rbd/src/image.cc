// Image-level calls and Image (see rbd/rbd.h).
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "rbd/rbd.h"
#include "rbd_status.h"

namespace stack::rbd {
namespace {

rados_ioctx_t H(IoCtx& io) { return static_cast<rados_ioctx_t>(io.handle()); }

constexpr uint64_t kFeatures = RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK |
                               RBD_FEATURE_OBJECT_MAP | RBD_FEATURE_FAST_DIFF |
                               RBD_FEATURE_DEEP_FLATTEN;

// A volume's objects: 4 MiB, RBD's default.
constexpr uint64_t kImageOrder = 22;
// A clone's: 256 KiB. The first write to an object of a clone copies the
// whole object up from the parent (read, then written in full), so an
// edit's few scattered blocks (superblock, bitmaps, an inode table block,
// a directory, the data) cost an object each: 3 x 4 MiB in a small
// `fs put`, 100+ ms of its flush; 3 x 256 KiB is under 20. Larger writes
// to a clone are split across more objects, which librbd sends at once.
constexpr uint64_t kCloneOrder = 18;

// Image options with our features and objects of 2^order bytes (unstriped:
// the stripe unit is the object, else a clone keeps its parent's).
class Options {
 public:
  explicit Options(uint64_t order = kImageOrder) {
    rbd_image_options_create(&o_);
    rbd_image_options_set_uint64(o_, RBD_IMAGE_OPTION_FEATURES, kFeatures);
    rbd_image_options_set_uint64(o_, RBD_IMAGE_OPTION_ORDER, order);
    rbd_image_options_set_uint64(o_, RBD_IMAGE_OPTION_STRIPE_UNIT, 1ull << order);
    rbd_image_options_set_uint64(o_, RBD_IMAGE_OPTION_STRIPE_COUNT, 1);
  }
  ~Options() { rbd_image_options_destroy(o_); }
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;
  rbd_image_options_t get() { return o_; }

 private:
  rbd_image_options_t o_ = nullptr;
};

std::string Spec(IoCtx& io, const std::string& name) {
  std::string d = io.describe();  // rbd:pool[/ns]
  return d + (d.find('/') == std::string::npos ? "/" : "/") + name;
}


// A metadata value (image or pool) through `get`, which is
// rbd_metadata_get or rbd_pool_metadata_get: nullopt when the key is not
// there. librbd sets the length only when the buffer is too small
// (ERANGE); on success it copies the value with its NUL and leaves the
// length as it was, so the value ends at the NUL.
template <typename Get>
Result<std::optional<std::string>> ReadMetaValue(Get get, const std::string& what) {
  std::string value(256, '\0');
  size_t len = value.size();
  int r = get(value.data(), &len);
  if (r == -ERANGE) {
    value.assign(len, '\0');
    r = get(value.data(), &len);
  }
  if (r == -ENOENT) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRbd(what, r));
  value.resize(strnlen(value.data(), value.size()));
  return std::optional<std::string>(std::move(value));
}

}  // namespace

bool ValidImageName(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  for (unsigned char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '+' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Status CreateImage(IoCtx& io, const std::string& name, uint64_t size_bytes) {
  if (!ValidImageName(name)) return Status::InvalidArgument("'" + name + "' is not a valid RBD image name");
  Options o;
  return FromRbd("create image " + Spec(io, name), rbd_create4(H(io), name.c_str(), size_bytes, o.get()));
}

Status CloneImage(IoCtx& io, const std::string& parent, const std::string& snap,
                  const std::string& name) {
  if (!ValidImageName(name)) return Status::InvalidArgument("'" + name + "' is not a valid RBD image name");
  Options o(kCloneOrder);
  rbd_image_options_set_uint64(o.get(), RBD_IMAGE_OPTION_CLONE_FORMAT, 2);
  return FromRbd("clone " + Spec(io, parent) + "@" + snap + " as " + name,
                 rbd_clone3(H(io), parent.c_str(), snap.c_str(), H(io), name.c_str(), o.get()));
}

Status RemoveImage(IoCtx& io, const std::string& name, bool* has_dependents) {
  const int r = rbd_remove(H(io), name.c_str());
  // ENOTEMPTY: it has snapshots; EMLINK: clones of its (trashed) snapshots.
  // librbd checks both before removing anything.
  if (has_dependents) {
    *has_dependents = r == -ENOTEMPTY || r == -EMLINK;
    if (*has_dependents) return Status::Ok();
  }
  if (r == -EMLINK)
    return Status::Busy("remove image " + Spec(io, name) + ": clones depend on its snapshots");
  return FromRbd("remove image " + Spec(io, name), r);
}

Status RenameImage(IoCtx& io, const std::string& from, const std::string& to) {
  if (!ValidImageName(to)) return Status::InvalidArgument("'" + to + "' is not a valid RBD image name");
  return FromRbd("rename image " + Spec(io, from) + " to " + to,
                 rbd_rename(H(io), from.c_str(), to.c_str()));
}

Result<std::vector<std::string>> ListImages(IoCtx& io) {
  std::vector<rbd_image_spec_t> specs(64);
  size_t n = specs.size();
  int r;
  while ((r = rbd_list2(H(io), specs.data(), &n)) == -ERANGE) specs.resize(n);
  RETURN_IF_ERROR(FromRbd("list images of " + io.describe(), r));
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.emplace_back(specs[i].name);
  rbd_image_spec_list_cleanup(specs.data(), n);
  return names;
}

Result<std::optional<std::string>> GetPoolMeta(IoCtx& io, const std::string& key) {
  return ReadMetaValue(
      [&](char* buf, size_t* len) { return rbd_pool_metadata_get(H(io), key.c_str(), buf, len); },
      "read pool metadata " + key + " of " + io.describe());
}

Status SetPoolMeta(IoCtx& io, const std::string& key, const std::string& value) {
  return FromRbd("set pool metadata " + key + " of " + io.describe(),
                 rbd_pool_metadata_set(H(io), key.c_str(), value.c_str()));
}

Result<std::shared_ptr<Image>> Image::Open(std::shared_ptr<IoCtx> io, const std::string& name,
                                           const std::optional<std::string>& snap,
                                           bool read_only) {
  std::shared_ptr<Image> img(new Image());
  img->io_ = std::move(io);
  img->name_ = name;
  img->snap_ = snap;
  img->read_only_ = read_only || snap.has_value();
  rbd_image_t h = nullptr;
  const char* s = snap ? snap->c_str() : nullptr;
  int r = img->read_only_ ? rbd_open_read_only(H(*img->io_), name.c_str(), &h, s)
                          : rbd_open(H(*img->io_), name.c_str(), &h, s);
  if (r == -ENOENT) {
    return Status::NotFound(snap ? "no snapshot " + name + "@" + *snap + " in " + img->io_->describe()
                                 : "no image " + name + " in " + img->io_->describe());
  }
  RETURN_IF_ERROR(FromRbd("open " + img->describe(), r));
  img->image_ = h;
  return img;
}

Image::~Image() {
  if (image_) rbd_close(static_cast<rbd_image_t>(image_));
}

std::string Image::describe() const { return Spec(*io_, name_) + (snap_ ? "@" + *snap_ : ""); }

#define IMG static_cast<rbd_image_t>(image_)

// librbd calls a progress callback without checking it for null (a shrink
// reports the objects it trims, and crashed with none): every call that
// takes one gets this.
namespace {
int NoProgress(uint64_t, uint64_t, void*) { return 0; }
}  // namespace

Result<ImageStat> Image::Stat() {
  rbd_image_info_t info{};
  RETURN_IF_ERROR(FromRbd("stat " + describe(), rbd_stat(IMG, &info, sizeof info)));
  return ImageStat{info.size, info.obj_size};
}

int64_t Image::CreatedUnixNs() {
  timespec ts{};
  if (rbd_get_create_timestamp(IMG, &ts) != 0) return 0;
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Status Image::Resize(uint64_t size_bytes) {
  return FromRbd("resize " + describe(), rbd_resize2(IMG, size_bytes, true, NoProgress, nullptr));
}

Result<std::vector<SnapInfo>> Image::Snapshots() {
  std::vector<rbd_snap_info_t> snaps(16);
  int r;
  for (;;) {
    int max = static_cast<int>(snaps.size());
    r = rbd_snap_list(IMG, snaps.data(), &max);
    if (r == -ERANGE) {
      snaps.resize(static_cast<size_t>(max) + 1);
      continue;
    }
    break;
  }
  RETURN_IF_ERROR(FromRbd("list snapshots of " + describe(), r));
  std::vector<SnapInfo> out;
  for (int i = 0; i < r; ++i) {
    // Only the user's: clone v2 keeps removed snapshots that clones still
    // need in the trash namespace (named by uuid), listed here too.
    rbd_snap_namespace_type_t ns = RBD_SNAP_NAMESPACE_TYPE_USER;
    if (rbd_snap_get_namespace_type(IMG, snaps[i].id, &ns) == 0 &&
        ns != RBD_SNAP_NAMESPACE_TYPE_USER)
      continue;
    SnapInfo s;
    s.id = snaps[i].id;
    s.name = snaps[i].name;
    s.size_bytes = snaps[i].size;
    timespec ts{};
    if (rbd_snap_get_timestamp(IMG, s.id, &ts) == 0)
      s.created_unix_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    out.push_back(std::move(s));
  }
  rbd_snap_list_end(snaps.data());
  return out;
}

Status Image::CreateSnapshot(const std::string& snap) {
  if (!ValidImageName(snap)) return Status::InvalidArgument("'" + snap + "' is not a valid RBD snapshot name");
  return FromRbd("snapshot " + describe() + "@" + snap,
                 rbd_snap_create2(IMG, snap.c_str(), RBD_SNAP_CREATE_SKIP_QUIESCE, NoProgress, nullptr));
}

Status Image::RemoveSnapshot(const std::string& snap) {
  // Clone v2: a snapshot with clones moves to the trash namespace until
  // its last clone goes, so removing it never breaks a clone.
  const int r = rbd_snap_remove2(IMG, snap.c_str(), 0, NoProgress, nullptr);
  int is_protected = 0;
  if (r == -EBUSY && rbd_snap_is_protected(IMG, snap.c_str(), &is_protected) == 0 && is_protected)
    return Status::Busy(describe() + "@" + snap + " is protected (rbd snap protect): `rbd snap "
                        "unprotect` it first");
  return FromRbd("remove snapshot " + describe() + "@" + snap, r);
}

Status Image::RollbackTo(const std::string& snap) {
  return FromRbd("roll back " + describe() + " to " + snap, rbd_snap_rollback(IMG, snap.c_str()));
}

Result<ParentInfo> Image::Parent() {
  rbd_linked_image_spec_t parent{};
  rbd_snap_spec_t snap{};
  int r = rbd_get_parent(IMG, &parent, &snap);
  if (r == -ENOENT) return ParentInfo{};
  RETURN_IF_ERROR(FromRbd("parent of " + describe(), r));
  ParentInfo p{parent.image_name ? parent.image_name : "", snap.name ? snap.name : ""};
  rbd_linked_image_spec_cleanup(&parent);
  rbd_snap_spec_cleanup(&snap);
  return p;
}

bool Image::FastDiff() {
  uint64_t features = 0, flags = 0;
  return rbd_get_features(IMG, &features) == 0 && (features & RBD_FEATURE_FAST_DIFF) &&
         rbd_get_flags(IMG, &flags) == 0 && !(flags & RBD_FLAG_FAST_DIFF_INVALID);
}

Result<uint64_t> Image::UsedBytes(bool include_parent) {
  if (!FastDiff()) {
    ASSIGN_OR_RETURN(ImageStat st, Stat());
    return st.size_bytes;
  }
  uint64_t used = 0;
  RETURN_IF_ERROR(DiffIterate("", [&](const DiffExtent& e) {
    if (e.exists) used += e.length;
    return Status::Ok();
  }, include_parent, 0, UINT64_MAX, /*whole_objects=*/true));
  return used;
}

Status Image::RenameSnapshot(const std::string& from, const std::string& to) {
  if (!ValidImageName(to)) return Status::InvalidArgument("'" + to + "' is not a valid RBD snapshot name");
  return FromRbd("rename snapshot " + describe() + "@" + from + " to " + to,
                 rbd_snap_rename(IMG, from.c_str(), to.c_str()));
}

Status Image::RenameTo(const std::string& to) {
  RETURN_IF_ERROR(RenameImage(*io_, name_, to));
  name_ = to;
  return Status::Ok();
}

Status Image::Flatten() { return FromRbd("flatten " + describe(), rbd_flatten(IMG)); }

Status Image::Flush() { return FromRbd("flush " + describe(), rbd_flush(IMG)); }

Result<std::optional<std::string>> Image::GetMeta(const std::string& key) {
  return ReadMetaValue(
      [&](char* buf, size_t* len) { return rbd_metadata_get(IMG, key.c_str(), buf, len); },
      "read metadata " + key + " of " + describe());
}

Status Image::SetMeta(const std::string& key, const std::string& value) {
  return FromRbd("set metadata " + key + " of " + describe(),
                 rbd_metadata_set(IMG, key.c_str(), value.c_str()));
}

Status Image::RemoveMeta(const std::string& key) {
  int r = rbd_metadata_remove(IMG, key.c_str());
  if (r == -ENOENT) return Status::Ok();
  return FromRbd("remove metadata " + key + " of " + describe(), r);
}

Result<std::map<std::string, std::string>> Image::ListMeta(const std::string& prefix) {
  std::map<std::string, std::string> out;
  std::string keys(4096, '\0'), vals(16384, '\0');
  size_t klen = keys.size(), vlen = vals.size();
  int r;
  while ((r = rbd_metadata_list(IMG, "", 0, keys.data(), &klen, vals.data(), &vlen)) == -ERANGE) {
    keys.resize(klen);
    vals.resize(vlen);
  }
  RETURN_IF_ERROR(FromRbd("list metadata of " + describe(), r));
  size_t ki = 0, vi = 0;
  while (ki < klen && vi < vlen) {
    std::string k(keys.c_str() + ki);
    std::string v(vals.c_str() + vi);
    if (k.empty()) break;
    ki += k.size() + 1;
    vi += v.size() + 1;
    if (k.rfind(prefix, 0) == 0) out.emplace(std::move(k), std::move(v));
  }
  return out;
}

Result<std::string> Image::LockOwner() {
  rbd_lock_mode_t mode;
  char* owners[4] = {};
  size_t n = 4;
  int r = rbd_lock_get_owners(IMG, &mode, owners, &n);
  if (r == -ENOENT) return std::string();
  // A lock librbd did not take (an advisory one, `rbd lock add`): librbd
  // cannot name or break it.
  if (r == -EBUSY)
    return Status::Busy(describe() + " holds a lock that is not librbd's exclusive lock (as "
                        "`rbd lock add` takes): `rbd lock ls` names it and `rbd lock rm` "
                        "removes it; --ceph-break-lock cannot");
  RETURN_IF_ERROR(FromRbd("lock owners of " + describe(), r));
  std::string s = n ? owners[0] : "";
  rbd_lock_get_owners_cleanup(owners, n);
  return s;
}

Result<size_t> Image::WatcherCount() {
  std::vector<rbd_image_watcher_t> w(8);
  size_t n = w.size();
  int r;
  while ((r = rbd_watchers_list(IMG, w.data(), &n)) == -ERANGE) w.resize(n);
  RETURN_IF_ERROR(FromRbd("watchers of " + describe(), r));
  rbd_watchers_list_cleanup(w.data(), n);
  return n;
}

Result<bool> Image::StillNamed() {
  char id[96] = {};
  const int r = rbd_get_id(IMG, id, sizeof id);
  if (r == -EINVAL) return true;  // an old-format image: no id to compare (not checked)
  RETURN_IF_ERROR(FromRbd("id of " + describe(), r));
  // The name's id object (rbd_id.NAME) holds the id as Ceph encodes a
  // string: a little-endian 32-bit length, then the bytes. A rename makes
  // a new one and removes the old.
  char buf[128] = {};
  const int n = rados_read(H(*io_), ("rbd_id." + name_).c_str(), buf, sizeof buf, 0);
  if (n == -ENOENT) return false;
  if (n < 0) return FromRbd("look up " + describe(), n);
  if (n < 4) return false;
  const uint32_t len = static_cast<uint8_t>(buf[0]) | static_cast<uint8_t>(buf[1]) << 8 |
                       static_cast<uint32_t>(static_cast<uint8_t>(buf[2])) << 16 |
                       static_cast<uint32_t>(static_cast<uint8_t>(buf[3])) << 24;
  if (len > static_cast<uint32_t>(n) - 4) return false;
  return std::string(buf + 4, len) == id;
}

Status Image::AcquireExclusiveLock(bool break_lock) {
  ASSIGN_OR_RETURN(std::string owner, LockOwner());
  if (!owner.empty() && break_lock) {
    RETURN_IF_ERROR(FromRbd("break the lock of " + owner + " on " + describe(),
                            rbd_lock_break(IMG, RBD_LOCK_MODE_EXCLUSIVE, owner.c_str())));
    owner.clear();
  }
  if (!owner.empty()) {
    return Status::Busy(describe() + " is locked by Ceph client " + owner +
                        " (another writer holds its exclusive lock; if that client is "
                        "dead, --ceph-break-lock takes it over)");
  }
  int r = rbd_lock_acquire(IMG, RBD_LOCK_MODE_EXCLUSIVE);
  if (r < 0) {
    auto now = LockOwner();
    const std::string who = now.ok() && !now->empty() ? " by Ceph client " + *now : "";
    if (r == -EROFS || r == -EBUSY || r == -EAGAIN)
      return Status::Busy(describe() + " is locked" + who + " (another writer holds its exclusive lock)");
    return FromRbd("lock " + describe(), r);
  }
  return Status::Ok();
}

namespace {
struct DiffCtx {
  const std::function<Status(const DiffExtent&)>* sink;
  Status status;
};
int DiffCb(uint64_t off, size_t len, int exists, void* arg) {
  auto* c = static_cast<DiffCtx*>(arg);
  c->status = (*c->sink)(DiffExtent{off, len, exists != 0});
  return c->status.ok() ? 0 : -ECANCELED;
}
}  // namespace

Status Image::DiffIterate(const std::string& from_snap,
                          const std::function<Status(const DiffExtent&)>& sink,
                          bool include_parent, uint64_t offset, uint64_t length,
                          bool whole_objects) {
  ASSIGN_OR_RETURN(ImageStat st, Stat());
  if (offset >= st.size_bytes) return Status::Ok();
  length = std::min(length, st.size_bytes - offset);
  const char* from = from_snap.empty() ? nullptr : from_snap.c_str();
  const std::string what = "diff " + describe() + (from_snap.empty() ? "" : " from " + from_snap);
  // include_parent: a clone's data inherited from its parent counts as its
  // own (a diff from nothing must list it).
  auto iterate = [&](uint64_t off, uint64_t len, bool whole,
                     const std::function<Status(const DiffExtent&)>& to) -> Status {
    DiffCtx c{&to, Status::Ok()};
    const int r = rbd_diff_iterate2(IMG, from, off, len, include_parent ? 1 : 0, whole ? 1 : 0,
                                    &DiffCb, &c);
    if (!c.status.ok()) return c.status;
    return FromRbd(what, r);
  };
  if (whole_objects || !FastDiff()) return iterate(offset, length, whole_objects, sink);
  // Exact extents are found by asking the OSD of each object in the range
  // (a 1 GiB clone of 256 KiB objects: 4096 requests, most for objects
  // that were never written). The object maps name the changed objects
  // first (a few reads); only those are asked. Whole objects are a
  // superset of the exact extents, so nothing is missed.
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // [begin, end), merged
  RETURN_IF_ERROR(iterate(offset, length, true, [&](const DiffExtent& e) {
    runs.emplace_back(e.offset, e.offset + e.length);
    return Status::Ok();
  }));
  std::sort(runs.begin(), runs.end());
  size_t kept = 0;
  for (auto& r : runs) {
    if (kept && runs[kept - 1].second >= r.first)
      runs[kept - 1].second = std::max(runs[kept - 1].second, r.second);
    else
      runs[kept++] = r;
  }
  runs.resize(kept);
  for (auto [begin, end] : runs) {
    const uint64_t b = std::max(begin, offset), e = std::min(end, offset + length);
    if (b < e) RETURN_IF_ERROR(iterate(b, e - b, false, sink));
  }
  return Status::Ok();
}

#undef IMG

}  // namespace stack::rbd

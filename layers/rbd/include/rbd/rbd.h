// layers/rbd: Ceph RBD images through librbd's C API (spec/ceph.md).
//
//   Cluster   a connection (rados_t) to the cluster of a ceph.conf, with
//             timeouts so an unreachable cluster is an IoError in seconds;
//   IoCtx     a pool (and namespace) of that cluster;
//   Image     an open image (rbd_image_t): snapshots, metadata, locks;
//   RbdDevice an image (or one of its snapshots) as a BlockDevice.
//
// Every librbd/librados error is mapped to a Status in one place
// (src/rbd_status.cc). Handles are RAII: destroying one closes it; an
// IoCtx or Image keeps its Cluster alive (shared_ptr), so they may be
// destroyed in any order.
//
// Thread-safety: every class may be used from any thread: librados and
// librbd serialise what must be on one handle themselves (RbdVolumeStore
// adds its own mutex around sequences of calls); an RbdDevice's reads and
// writes go straight to librbd and may run on several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/status.h"

namespace stack::rbd {

// Loads librbd.so.1 (and librados) on first use: Unsupported naming the
// library when it cannot be loaded. Cluster::Connect calls it first; every
// other call of this layer comes after a Connect. Thread-safe.
Status LoadLibrbd();

struct ClusterOptions {
  std::string conf_path;  // "" = $CEPH_CONF or the default search
  std::string client_id;  // "" = "admin"
  // Monitor, OSD and mount timeouts: an unreachable cluster fails after
  // about this long (IoError) instead of hanging.
  int timeout_seconds = 10;
};

class IoCtx;

class Cluster : public std::enable_shared_from_this<Cluster> {
 public:
  // Connects. IoError (naming the conf) when the cluster does not answer.
  static Result<std::shared_ptr<Cluster>> Connect(const ClusterOptions& options);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // The pool `pool` (namespace `ns`, "" = the default). NotFound for a
  // missing pool; Unsupported when the pool is not enabled for rbd.
  Result<std::shared_ptr<IoCtx>> OpenIoCtx(const std::string& pool, const std::string& ns);
  // The cluster's client address (names this process in lock owners).
  std::string client_address();

  // The cluster's fsid (names the store in `pool info`), "" if unknown.
  std::string fsid();

  // Raw capacity of the cluster's OSDs as `ceph df` reports it.
  struct Space {
    uint64_t total_bytes = 0;
    uint64_t used_bytes = 0;
    uint64_t avail_bytes = 0;
  };
  Result<Space> ClusterSpace();

  void* handle() const { return cluster_; }  // rados_t

 private:
  Cluster() = default;
  void* cluster_ = nullptr;
};

class IoCtx {
 public:
  ~IoCtx();
  IoCtx(const IoCtx&) = delete;
  IoCtx& operator=(const IoCtx&) = delete;
  void* handle() const { return io_; }  // rados_ioctx_t
  const std::string& describe() const { return describe_; }  // "rbd:pool[/ns]"

 private:
  friend class Cluster;
  IoCtx() = default;
  std::shared_ptr<Cluster> cluster_;
  void* io_ = nullptr;
  std::string describe_;
};

struct ImageStat {
  uint64_t size_bytes = 0;
  uint64_t object_bytes = 0;
};

struct SnapInfo {
  uint64_t id = 0;
  std::string name;
  uint64_t size_bytes = 0;
  int64_t created_unix_ns = 0;
};

struct ParentInfo {
  std::string image;  // "" = none
  std::string snapshot;
};

// A changed extent of an image against an older snapshot (diff_iterate2).
struct DiffExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool exists = true;  // false: now a hole (discarded / zeroed)
};

// Image-level operations that need no open image.
// Creates `name` (size_bytes, 4 MiB objects, features layering,
// exclusive-lock, object-map, fast-diff, deep-flatten). AlreadyExists.
Status CreateImage(IoCtx& io, const std::string& name, uint64_t size_bytes);
// Clone v2 of `parent`@`snap` as `name` (no protect needed), same features,
// 256 KiB objects (a first write to an object copies it up whole).
Status CloneImage(IoCtx& io, const std::string& parent, const std::string& snap,
                  const std::string& name);
// Removes the image (its snapshots must be gone first: Busy otherwise).
// With `has_dependents`: an image RBD keeps because of its snapshots or of
// clones of its trashed snapshots sets *has_dependents and returns Ok
// (nothing was removed).
Status RemoveImage(IoCtx& io, const std::string& name, bool* has_dependents = nullptr);
Status RenameImage(IoCtx& io, const std::string& from, const std::string& to);

// An advisory RADOS lock on object `oid` of the pool/namespace (created
// empty if missing), held until destruction or for `seconds`, whichever
// ends first, so a killed holder's lock lapses. Clients that take it
// before work that two of them must not do at once (librbd can wait
// forever when two clients remove one image) exclude each other.
// Exclusive: one holder. Shared: any number of shared holders, and no
// exclusive one meanwhile (work that may run side by side but never
// beside the exclusive holder's).
// Thread-safety: none; one owner.
class ObjectLock {
 public:
  enum class Mode { kExclusive, kShared };
  // Busy when another client holds it (exclusively, or at all for kExclusive).
  static Result<std::unique_ptr<ObjectLock>> TryAcquire(std::shared_ptr<IoCtx> io,
                                                        const std::string& oid, int seconds,
                                                        Mode mode = Mode::kExclusive);
  ~ObjectLock();
  ObjectLock(const ObjectLock&) = delete;
  ObjectLock& operator=(const ObjectLock&) = delete;

 private:
  ObjectLock() = default;
  std::shared_ptr<IoCtx> io_;
  std::string oid_, cookie_;
};

// Image names in the pool/namespace (unsorted).
Result<std::vector<std::string>> ListImages(IoCtx& io);
// The pool's RBD metadata (`rbd_pool_metadata_*`, the pool's, whatever the
// namespace). Get: nullopt when the key is unset.
Result<std::optional<std::string>> GetPoolMeta(IoCtx& io, const std::string& key);
Status SetPoolMeta(IoCtx& io, const std::string& key, const std::string& value);

class Image {
 public:
  // Opens `name` (at snapshot `snap` when given: read-only).
  static Result<std::shared_ptr<Image>> Open(std::shared_ptr<IoCtx> io, const std::string& name,
                                             const std::optional<std::string>& snap,
                                             bool read_only);
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  const std::string& name() const { return name_; }
  bool read_only() const { return read_only_; }
  std::string describe() const;  // "rbd:pool/image[@snap]"

  Result<ImageStat> Stat();
  // When RBD created the image (Unix ns); 0 if it cannot say.
  int64_t CreatedUnixNs();
  Status Resize(uint64_t size_bytes);
  // The user's snapshots (not those clone v2 keeps in the trash).
  Result<std::vector<SnapInfo>> Snapshots();
  Status CreateSnapshot(const std::string& snap);
  Status RemoveSnapshot(const std::string& snap);
  Status RollbackTo(const std::string& snap);
  Result<ParentInfo> Parent();
  // Copies the parent's data in and detaches the image from it.
  Status Flatten();
  // Bytes allocated, with or without the parent's, in whole objects as
  // fast-diff reports them (`rbd du`): from the object maps, not a
  // request to every object. Without a valid fast-diff (another tool's
  // image, or object maps a crash invalidated) the image's size, an upper
  // bound: asking every object would take hours for a large image.
  Result<uint64_t> UsedBytes(bool include_parent = true);
  // Whether the image's object maps answer diffs (fast-diff, valid).
  bool FastDiff();

  // Image metadata (rbd image-meta). Get: nullopt when the key is unset.
  Result<std::optional<std::string>> GetMeta(const std::string& key);
  Status SetMeta(const std::string& key, const std::string& value);
  Status RemoveMeta(const std::string& key);
  // Every key starting with `prefix`.
  Result<std::map<std::string, std::string>> ListMeta(const std::string& prefix);

  // Takes the exclusive lock for this client. Busy naming the owner when
  // another client holds it (librbd would otherwise ask it to hand over),
  // unless `break_lock`: then the owner's lock is broken first (librbd
  // blocklists that client: for a holder known to be dead).
  Status AcquireExclusiveLock(bool break_lock = false);
  // Owners of the image's exclusive lock ("" if none).
  Result<std::string> LockOwner();
  // Clients watching the image's header: every client holding it open for
  // writing (a read-only open watches nothing). A killed client's watch
  // stays until the OSD times it out (osd_client_watch_timeout).
  Result<size_t> WatcherCount();
  // Whether name() still names this image in its pool: false once another
  // client renamed or removed it after this handle was opened (the handle
  // follows the image, not the name). One small read. Old-format (v1)
  // images have no id: always true.
  Result<bool> StillNamed();

  // Extents changed since `from_snap` ("" = since creation) up to this
  // image (or its open snapshot). Whole objects when fast-diff is off.
  // include_parent: a clone's extents inherited from its parent count.
  // Only [offset, offset + length) is looked at (clipped to the size).
  // whole_objects: each changed object whole, from the object maps
  // (fast-diff: a few reads, however many objects); else exact extents,
  // which asks the OSD of every object in the range.
  Status DiffIterate(const std::string& from_snap,
                     const std::function<Status(const DiffExtent&)>& sink,
                     bool include_parent = true, uint64_t offset = 0,
                     uint64_t length = UINT64_MAX, bool whole_objects = false);
  Status RenameSnapshot(const std::string& from, const std::string& to);
  // Renames the image this handle has open (by the name it was opened
  // with) to `to`; the handle then goes by `to`. Not while another thread
  // uses the handle.
  Status RenameTo(const std::string& to);
  Status Flush();

  void* handle() const { return image_; }  // rbd_image_t

 private:
  Image() = default;
  std::shared_ptr<IoCtx> io_;
  void* image_ = nullptr;
  std::string name_;
  std::optional<std::string> snap_;
  bool read_only_ = false;
};

// An image (or snapshot) as a BlockDevice of 4096-byte blocks (the
// store's unit; LUKS sectors and ext4 blocks are multiples). Discard
// releases objects and reads back zeros; WriteZeroes is rbd write_zeroes;
// Flush is rbd_flush (durable on the OSDs). The Image is shared with the
// store that opened it (one handle holds the image's exclusive lock, so the
// store's snapshot and metadata calls go through it too).
// Thread-safety: every method from any thread (librbd is thread-safe for
// I/O; the size is read from librbd on each call).
class RbdDevice final : public BlockDevice {
 public:
  explicit RbdDevice(std::shared_ptr<Image> image, bool read_only);
  ~RbdDevice() override;

  uint32_t block_size() const override { return 4096; }
  uint64_t block_count() const override;
  DeviceCapabilities capabilities() const override;
  std::string describe() const override;
  Image& image() { return *image_; }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override;
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status DoFlush() override;
  Status DoDiscard(uint64_t offset, uint64_t length) override;
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override;
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override;

 private:
  std::shared_ptr<Image> image_;
  bool read_only_;
};

// True if `name` is an image name RBD accepts and we use: 1..255 bytes of
// [A-Za-z0-9._:+-], no '/' or '@'.
bool ValidImageName(const std::string& name);

}  // namespace stack::rbd

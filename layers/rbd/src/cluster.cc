// Cluster and IoCtx (see rbd/rbd.h).
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "rbd/rbd.h"
#include "rbd_status.h"

namespace stack::rbd {

Cluster::~Cluster() {
  if (cluster_) rados_shutdown(static_cast<rados_t>(cluster_));
}

Result<std::shared_ptr<Cluster>> Cluster::Connect(const ClusterOptions& options) {
  RETURN_IF_ERROR(LoadLibrbd());
  std::shared_ptr<Cluster> c(new Cluster());
  rados_t h = nullptr;
  const char* id = options.client_id.empty() ? nullptr : options.client_id.c_str();
  RETURN_IF_ERROR(FromRbd("ceph client " + options.client_id, rados_create(&h, id)));
  c->cluster_ = h;
  std::string conf = options.conf_path;
  if (conf.empty()) {
    if (const char* env = std::getenv("CEPH_CONF")) conf = env;
  }
  const std::string where = conf.empty() ? "the default ceph.conf" : conf;
  RETURN_IF_ERROR(FromRbd("read " + where, rados_conf_read_file(h, conf.empty() ? nullptr : conf.c_str())));
  // librbd's cache stays write-through until an image's first flush (for
  // guests that never flush). Every writer of ours flushes at its
  // durability points (Commit, a device's Flush), so it may write back
  // from the start: a command's small writes (an fs edit's metadata) then
  // go out together at the flush instead of one round trip each.
  // $CEPH_ARGS may still say otherwise.
  (void)rados_conf_set(h, "rbd_cache_writethrough_until_flush", "false");
  // $CEPH_ARGS and the usual overrides, as the ceph tools read them.
  (void)rados_conf_parse_env(h, nullptr);
  // One completion thread, whatever the configuration says. With librbd
  // 16.2 (bookworm) and two, an image opened and closed at once (a listing
  // opens each image and snapshot read-only for microseconds) races the
  // thread still finishing the open: it locks the image state's mutex after
  // our close freed it, and the process hangs for good (no op is pending, so
  // no timeout fires) or aborts. Seen in CI (e2e.rbd killed at 1200 s) and
  // in about 1 of 5 `pool info` runs on two loaded cores; with one thread,
  // 0 of 300. The close's own steps then run on that thread, after it.
  RETURN_IF_ERROR(FromRbd("set librados_thread_count",
                          rados_conf_set(h, "librados_thread_count", "1")));
  // After them, as our contract depends on it: by default librbd drops the
  // part of a discard that does not cover whole 64 KiB units, which then
  // reads back its old bytes, while RbdDevice promises that a discarded
  // range reads as zeros (mkfs and the pool of an fs edit rely on it).
  // Partial units are zeroed instead.
  RETURN_IF_ERROR(FromRbd("set rbd_skip_partial_discard",
                          rados_conf_set(h, "rbd_skip_partial_discard", "false")));
  // Without these an unreachable cluster blocks forever (librados waits
  // for a monitor); a timeout turns it into an IoError.
  // An op timeout the configuration sets (ceph.conf, $CEPH_ARGS) is kept;
  // Ceph's default for them is 0, wait forever. (client_mount_timeout's
  // default is 300 s: always ours.)
  const std::string t = std::to_string(options.timeout_seconds);
  for (const char* key : {"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"}) {
    char buf[64] = {};
    if (std::string(key) != "client_mount_timeout" &&
        rados_conf_get(h, key, buf, sizeof buf) == 0 && std::atof(buf) > 0)
      continue;
    RETURN_IF_ERROR(FromRbd(std::string("set ") + key, rados_conf_set(h, key, t.c_str())));
  }
  // Quiet: errors come back as return values, not on our stderr.
  (void)rados_conf_set(h, "log_to_stderr", "false");
  (void)rados_conf_set(h, "err_to_stderr", "false");
  int r = rados_connect(h);
  if (r < 0) {
    // ETIMEDOUT / ENOENT (no monitor address) / ECONNREFUSED: all mean the
    // cluster cannot be reached.
    return Status::IoError("cannot reach the Ceph cluster of " + where + " (within " + t +
                               " s): " + FromRbd("connect", r).message(),
                           -r);
  }
  return c;
}

std::string Cluster::client_address() {
  char* addr = nullptr;
  // rados_getaddrs: the client's own address (lock owners name it).
  if (rados_getaddrs(static_cast<rados_t>(cluster_), &addr) < 0 || !addr) return "";
  std::string s(addr);
  rados_buffer_free(addr);
  return s;
}

std::string Cluster::fsid() {
  char buf[64] = {};
  if (rados_cluster_fsid(static_cast<rados_t>(cluster_), buf, sizeof buf) < 0) return "";
  return buf;
}

Result<Cluster::Space> Cluster::ClusterSpace() {
  rados_cluster_stat_t st{};
  RETURN_IF_ERROR(FromRbd("cluster stat", rados_cluster_stat(static_cast<rados_t>(cluster_), &st)));
  return Space{st.kb << 10, st.kb_used << 10, st.kb_avail << 10};
}

Result<std::shared_ptr<IoCtx>> Cluster::OpenIoCtx(const std::string& pool, const std::string& ns) {
  const std::string describe = "rbd:" + pool + (ns.empty() ? "" : "/" + ns);
  rados_ioctx_t io = nullptr;
  int r = rados_ioctx_create(static_cast<rados_t>(cluster_), pool.c_str(), &io);
  if (r == -ENOENT) return Status::NotFound("Ceph pool '" + pool + "' does not exist");
  RETURN_IF_ERROR(FromRbd("open Ceph pool " + pool, r));
  std::shared_ptr<IoCtx> ctx(new IoCtx());
  ctx->io_ = io;
  ctx->cluster_ = shared_from_this();
  ctx->describe_ = describe;
  if (!ns.empty()) rados_ioctx_set_namespace(io, ns.c_str());
  // A pool not enabled for rbd would take images that `rbd` tools and
  // health checks then complain about: refuse it.
  char apps[256];
  size_t len = sizeof apps;
  r = rados_application_list(io, apps, &len);
  if (r >= 0) {
    bool rbd = false;
    for (size_t i = 0; i < len;) {
      std::string app(apps + i);
      if (app.empty()) break;
      if (app == "rbd") rbd = true;
      i += app.size() + 1;
    }
    if (!rbd)
      return Status::Unsupported("Ceph pool '" + pool +
                                 "' is not enabled for rbd (ceph osd pool application enable " +
                                 pool + " rbd)");
  }
  // RADOS takes any namespace name: a mistyped one would read as an empty
  // pool, and a write would fail later, naming an image.
  if (!ns.empty()) {
    bool exists = false;
    RETURN_IF_ERROR(FromRbd("look up namespace " + describe,
                            rbd_namespace_exists(io, ns.c_str(), &exists)));
    if (!exists)
      return Status::NotFound("no namespace '" + ns + "' in Ceph pool '" + pool +
                              "' (rbd namespace create " + pool + "/" + ns + ")");
  }
  return ctx;
}

IoCtx::~IoCtx() {
  if (io_) rados_ioctx_destroy(static_cast<rados_ioctx_t>(io_));
}

namespace {
constexpr const char* kLockName = "stack";
}  // namespace

Result<std::unique_ptr<ObjectLock>> ObjectLock::TryAcquire(std::shared_ptr<IoCtx> io,
                                                          const std::string& oid, int seconds,
                                                          Mode mode) {
  std::unique_ptr<ObjectLock> l(new ObjectLock());
  l->io_ = std::move(io);
  l->oid_ = oid;
  // One cookie per holder: a second TryAcquire in this process is Busy too.
  static std::atomic<uint64_t> next{0};
  l->cookie_ = std::to_string(::getpid()) + "." + std::to_string(next.fetch_add(1));
  timeval duration{seconds, 0};
  rados_ioctx_t h = static_cast<rados_ioctx_t>(l->io_->handle());
  const int r = mode == Mode::kExclusive
                    ? rados_lock_exclusive(h, oid.c_str(), kLockName, l->cookie_.c_str(), "stack",
                                           &duration, 0)
                    : rados_lock_shared(h, oid.c_str(), kLockName, l->cookie_.c_str(), "",
                                        "stack", &duration, 0);
  if (r == -EBUSY || r == -EEXIST)
    return Status::Busy("object lock " + oid + " of " + l->io_->describe() +
                        " is held by another client");
  RETURN_IF_ERROR(FromRbd("lock object " + oid + " of " + l->io_->describe(), r));
  return l;
}

ObjectLock::~ObjectLock() {
  (void)rados_unlock(static_cast<rados_ioctx_t>(io_->handle()), oid_.c_str(), kLockName,
                     cookie_.c_str());
}

}  // namespace stack::rbd

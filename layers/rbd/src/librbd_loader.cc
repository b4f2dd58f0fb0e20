// librbd and librados, loaded when first needed instead of linked.
//
// Linking them made every `stack` command pay for Ceph's start-up (shared
// libraries and their static constructors: twice the run time of a short
// command and 16 MiB more memory) although only rbd: pools use them. Here
// each function layers/rbd calls is defined with the header's own
// prototype (so a mismatch fails to compile) and forwards to the symbol
// dlsym finds in librbd.so.1 (which brings librados.so.2). LoadLibrbd() is
// called before any of them (Cluster::Connect); a function called without
// it loads the library itself and aborts if it cannot, which would be a
// bug in this layer. A function layers/rbd starts to use must be added
// below: the link fails until it is.
#include <dlfcn.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "rbd/rbd.h"

namespace stack::rbd {
namespace {

struct Library {
  void* handle = nullptr;
  std::string error;
};

const Library& Lib() {
  static const Library lib = [] {
    Library l;
    l.handle = dlopen("librbd.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!l.handle) {
      const char* e = dlerror();
      l.error = e ? e : "unknown error";
    }
    return l;
  }();
  return lib;
}

void* Symbol(const char* name) {
  const Library& l = Lib();
  void* p = l.handle ? dlsym(l.handle, name) : nullptr;
  if (!p) {
    std::fprintf(stderr, "stack: internal error: %s unavailable (%s)\n", name,
                 l.handle ? "missing from librbd.so.1" : l.error.c_str());
    std::abort();
  }
  return p;
}

// $STACK_RBD_TRACE set (to anything): each librbd/librados call prints its
// name, its start (ms since the first call) and its wall time to stderr,
// to see where an rbd: command's round trips go. Unset: one cached test.
bool Tracing() {
  static const bool on = std::getenv("STACK_RBD_TRACE") != nullptr;
  return on;
}

std::chrono::steady_clock::time_point TraceStart() { return std::chrono::steady_clock::now(); }

void TraceEnd(const char* name, std::chrono::steady_clock::time_point start) {
  static const auto epoch = start;
  using ms = std::chrono::duration<double, std::milli>;
  const auto now = std::chrono::steady_clock::now();
  std::fprintf(stderr, "rbd-trace %9.3f %8.3f ms %s\n", ms(start - epoch).count(),
               ms(now - start).count(), name);
}

}  // namespace

Status LoadLibrbd() {
  const Library& l = Lib();
  if (l.handle) return Status::Ok();
  return Status::Unsupported("rbd: pools need Ceph's client library (Debian package librbd1): " +
                             l.error);
}

}  // namespace stack::rbd

#define STACK_RBD_FORWARD(ret, name, params, args)                                      \
  extern "C" ret name params {                                                          \
    static const auto fn = reinterpret_cast<ret(*) params>(stack::rbd::Symbol(#name));  \
    if (!stack::rbd::Tracing()) return fn args;                                         \
    const auto stack_t0 = stack::rbd::TraceStart();                                     \
    ret stack_r = fn args;                                                              \
    stack::rbd::TraceEnd(#name, stack_t0);                                              \
    return stack_r;                                                                     \
  }
#define STACK_RBD_FORWARD_VOID(name, params, args)                                      \
  extern "C" void name params {                                                         \
    static const auto fn = reinterpret_cast<void(*) params>(stack::rbd::Symbol(#name)); \
    if (!stack::rbd::Tracing()) return fn args;                                         \
    const auto stack_t0 = stack::rbd::TraceStart();                                     \
    fn args;                                                                            \
    stack::rbd::TraceEnd(#name, stack_t0);                                              \
  }

// clang-format off
STACK_RBD_FORWARD(int, rados_application_list, (rados_ioctx_t io, char *values, size_t *values_len), (io, values, values_len))
STACK_RBD_FORWARD_VOID(rados_buffer_free, (char *buf), (buf))
STACK_RBD_FORWARD(int, rados_conf_parse_env, (rados_t cluster, const char *var), (cluster, var))
STACK_RBD_FORWARD(int, rados_conf_read_file, (rados_t cluster, const char *path), (cluster, path))
STACK_RBD_FORWARD(int, rados_conf_set, (rados_t cluster, const char *option, const char *value), (cluster, option, value))
STACK_RBD_FORWARD(int, rados_connect, (rados_t cluster), (cluster))
STACK_RBD_FORWARD(int, rados_create, (rados_t *cluster, const char * const id), (cluster, id))
STACK_RBD_FORWARD(int, rados_getaddrs, (rados_t cluster, char** addrs), (cluster, addrs))
STACK_RBD_FORWARD(int, rados_ioctx_create, (rados_t cluster, const char *pool_name, rados_ioctx_t *ioctx), (cluster, pool_name, ioctx))
STACK_RBD_FORWARD(int, rados_lock_exclusive, (rados_ioctx_t io, const char * oid, const char * name, const char * cookie, const char * desc, struct timeval * duration, uint8_t flags), (io, oid, name, cookie, desc, duration, flags))
STACK_RBD_FORWARD(int, rados_unlock, (rados_ioctx_t io, const char *o, const char *name, const char *cookie), (io, o, name, cookie))
STACK_RBD_FORWARD_VOID(rados_ioctx_destroy, (rados_ioctx_t io), (io))
STACK_RBD_FORWARD_VOID(rados_ioctx_set_namespace, (rados_ioctx_t io, const char *nspace), (io, nspace))
STACK_RBD_FORWARD_VOID(rados_shutdown, (rados_t cluster), (cluster))
STACK_RBD_FORWARD(int, rbd_clone3, (rados_ioctx_t p_ioctx, const char *p_name, const char *p_snapname, rados_ioctx_t c_ioctx, const char *c_name, rbd_image_options_t c_opts), (p_ioctx, p_name, p_snapname, c_ioctx, c_name, c_opts))
STACK_RBD_FORWARD(int, rbd_close, (rbd_image_t image), (image))
STACK_RBD_FORWARD(int, rbd_namespace_exists, (rados_ioctx_t io, const char *namespace_name, bool *exists), (io, namespace_name, exists))
STACK_RBD_FORWARD(int, rbd_create4, (rados_ioctx_t io, const char *name, uint64_t size, rbd_image_options_t opts), (io, name, size, opts))
STACK_RBD_FORWARD(int, rbd_diff_iterate2, (rbd_image_t image, const char *fromsnapname, uint64_t ofs, uint64_t len, uint8_t include_parent, uint8_t whole_object, int (*cb)(uint64_t, size_t, int, void *), void *arg), (image, fromsnapname, ofs, len, include_parent, whole_object, cb, arg))
STACK_RBD_FORWARD(int, rbd_discard, (rbd_image_t image, uint64_t ofs, uint64_t len), (image, ofs, len))
STACK_RBD_FORWARD(int, rbd_flush, (rbd_image_t image), (image))
STACK_RBD_FORWARD(int, rbd_get_parent, (rbd_image_t image, rbd_linked_image_spec_t *parent_image, rbd_snap_spec_t *parent_snap), (image, parent_image, parent_snap))
STACK_RBD_FORWARD(int, rbd_get_size, (rbd_image_t image, uint64_t *size), (image, size))
STACK_RBD_FORWARD_VOID(rbd_image_options_create, (rbd_image_options_t* opts), (opts))
STACK_RBD_FORWARD_VOID(rbd_image_options_destroy, (rbd_image_options_t opts), (opts))
STACK_RBD_FORWARD(int, rbd_image_options_set_uint64, (rbd_image_options_t opts, int optname, uint64_t optval), (opts, optname, optval))
STACK_RBD_FORWARD_VOID(rbd_image_spec_list_cleanup, (rbd_image_spec_t *images, size_t num_images), (images, num_images))
STACK_RBD_FORWARD_VOID(rbd_linked_image_spec_cleanup, (rbd_linked_image_spec_t *image), (image))
STACK_RBD_FORWARD(int, rbd_list2, (rados_ioctx_t io, rbd_image_spec_t* images, size_t *max_images), (io, images, max_images))
STACK_RBD_FORWARD(int, rbd_lock_acquire, (rbd_image_t image, rbd_lock_mode_t lock_mode), (image, lock_mode))
STACK_RBD_FORWARD(int, rbd_lock_break, (rbd_image_t image, rbd_lock_mode_t lock_mode, const char *lock_owner), (image, lock_mode, lock_owner))
STACK_RBD_FORWARD(int, rbd_lock_get_owners, (rbd_image_t image, rbd_lock_mode_t *lock_mode, char **lock_owners, size_t *max_lock_owners), (image, lock_mode, lock_owners, max_lock_owners))
STACK_RBD_FORWARD_VOID(rbd_lock_get_owners_cleanup, (char **lock_owners, size_t lock_owner_count), (lock_owners, lock_owner_count))
STACK_RBD_FORWARD(int, rbd_watchers_list, (rbd_image_t image, rbd_image_watcher_t *watchers, size_t *max_watchers), (image, watchers, max_watchers))
STACK_RBD_FORWARD_VOID(rbd_watchers_list_cleanup, (rbd_image_watcher_t *watchers, size_t num_watchers), (watchers, num_watchers))
STACK_RBD_FORWARD(int, rbd_metadata_get, (rbd_image_t image, const char *key, char *value, size_t *val_len), (image, key, value, val_len))
STACK_RBD_FORWARD(int, rbd_metadata_list, (rbd_image_t image, const char *start, uint64_t max, char *keys, size_t *key_len, char *values, size_t *vals_len), (image, start, max, keys, key_len, values, vals_len))
STACK_RBD_FORWARD(int, rbd_metadata_remove, (rbd_image_t image, const char *key), (image, key))
STACK_RBD_FORWARD(int, rbd_metadata_set, (rbd_image_t image, const char *key, const char *value), (image, key, value))
STACK_RBD_FORWARD(int, rbd_open, (rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name), (io, name, image, snap_name))
STACK_RBD_FORWARD(int, rbd_open_read_only, (rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name), (io, name, image, snap_name))
STACK_RBD_FORWARD(ssize_t, rbd_read, (rbd_image_t image, uint64_t ofs, size_t len, char *buf), (image, ofs, len, buf))
STACK_RBD_FORWARD(int, rbd_remove, (rados_ioctx_t io, const char *name), (io, name))
STACK_RBD_FORWARD(int, rbd_rename, (rados_ioctx_t src_io_ctx, const char *srcname, const char *destname), (src_io_ctx, srcname, destname))
STACK_RBD_FORWARD(int, rbd_resize2, (rbd_image_t image, uint64_t size, bool allow_shrink, librbd_progress_fn_t cb, void *cbdata), (image, size, allow_shrink, cb, cbdata))
STACK_RBD_FORWARD(int, rbd_snap_create2, (rbd_image_t image, const char *snap_name, uint32_t flags, librbd_progress_fn_t cb, void *cbdata), (image, snap_name, flags, cb, cbdata))
STACK_RBD_FORWARD(int, rbd_snap_get_timestamp, (rbd_image_t image, uint64_t snap_id, struct timespec *timestamp), (image, snap_id, timestamp))
STACK_RBD_FORWARD(int, rbd_snap_is_protected, (rbd_image_t image, const char *snap_name, int *is_protected), (image, snap_name, is_protected))
STACK_RBD_FORWARD(int, rbd_snap_list, (rbd_image_t image, rbd_snap_info_t *snaps, int *max_snaps), (image, snaps, max_snaps))
STACK_RBD_FORWARD_VOID(rbd_snap_list_end, (rbd_snap_info_t *snaps), (snaps))
STACK_RBD_FORWARD(int, rbd_snap_remove2, (rbd_image_t image, const char *snap_name, uint32_t flags, librbd_progress_fn_t cb, void *cbdata), (image, snap_name, flags, cb, cbdata))
STACK_RBD_FORWARD(int, rbd_snap_rename, (rbd_image_t image, const char *snapname, const char* dstsnapsname), (image, snapname, dstsnapsname))
STACK_RBD_FORWARD(int, rbd_snap_rollback, (rbd_image_t image, const char *snapname), (image, snapname))
STACK_RBD_FORWARD_VOID(rbd_snap_spec_cleanup, (rbd_snap_spec_t *snap), (snap))
STACK_RBD_FORWARD(int, rbd_stat, (rbd_image_t image, rbd_image_info_t *info, size_t infosize), (image, info, infosize))
STACK_RBD_FORWARD(ssize_t, rbd_write, (rbd_image_t image, uint64_t ofs, size_t len, const char *buf), (image, ofs, len, buf))
STACK_RBD_FORWARD(ssize_t, rbd_write_zeroes, (rbd_image_t image, uint64_t ofs, size_t len, int zero_flags, int op_flags), (image, ofs, len, zero_flags, op_flags))
STACK_RBD_FORWARD(int, rados_cluster_fsid, (rados_t cluster, char *buf, size_t len), (cluster, buf, len))
STACK_RBD_FORWARD(int, rbd_flatten, (rbd_image_t image), (image))
STACK_RBD_FORWARD(int, rbd_snap_get_namespace_type, (rbd_image_t image, uint64_t snap_id, rbd_snap_namespace_type_t *namespace_type), (image, snap_id, namespace_type))
STACK_RBD_FORWARD(int, rados_conf_get, (rados_t cluster, const char *option, char *buf, size_t len), (cluster, option, buf, len))
STACK_RBD_FORWARD(int, rbd_aio_create_completion, (void *cb_arg, rbd_callback_t complete_cb, rbd_completion_t *c), (cb_arg, complete_cb, c))
STACK_RBD_FORWARD(int, rbd_aio_write, (rbd_image_t image, uint64_t off, size_t len, const char *buf, rbd_completion_t c), (image, off, len, buf, c))
STACK_RBD_FORWARD(int, rbd_aio_wait_for_complete, (rbd_completion_t c), (c))
STACK_RBD_FORWARD(ssize_t, rbd_aio_get_return_value, (rbd_completion_t c), (c))
STACK_RBD_FORWARD_VOID(rbd_aio_release, (rbd_completion_t c), (c))
STACK_RBD_FORWARD(int, rados_cluster_stat, (rados_t cluster, struct rados_cluster_stat_t *result), (cluster, result))
STACK_RBD_FORWARD(int, rbd_pool_metadata_get, (rados_ioctx_t io_ctx, const char *key, char *value, size_t *val_len), (io_ctx, key, value, val_len))
STACK_RBD_FORWARD(int, rbd_pool_metadata_set, (rados_ioctx_t io_ctx, const char *key, const char *value), (io_ctx, key, value))
STACK_RBD_FORWARD(int, rados_lock_shared, (rados_ioctx_t io, const char * o, const char * name, const char * cookie, const char * tag, const char * desc, struct timeval * duration, uint8_t flags), (io, o, name, cookie, tag, desc, duration, flags))
STACK_RBD_FORWARD(int, rados_read, (rados_ioctx_t io, const char *oid, char *buf, size_t len, uint64_t off), (io, oid, buf, len, off))
STACK_RBD_FORWARD(int, rbd_get_id, (rbd_image_t image, char *id, size_t id_len), (image, id, id_len))
STACK_RBD_FORWARD(int, rbd_get_create_timestamp, (rbd_image_t image, struct timespec *timestamp), (image, timestamp))
STACK_RBD_FORWARD(int, rbd_get_features, (rbd_image_t image, uint64_t *features), (image, features))
STACK_RBD_FORWARD(int, rbd_get_flags, (rbd_image_t image, uint64_t *flags), (image, flags))
// clang-format on

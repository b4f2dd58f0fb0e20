// nbdkit-stack-plugin.so: the boundary between nbdkit's C callbacks and
// Server/Export. Every callback is noexcept in effect: a Status becomes
// nbdkit_error + an errno, and any exception is caught here, so none
// crosses into nbdkit. Semantics of each NBD command: spec/serve.md.
//
// Configuration (nbdkit stack-plugin KEY=VALUE ...):
//   pool=PATH          the pool (required)
//   export=NAME        an entry to serve; repeatable (required)
//   view=plain|stored  default plain
//   keyfile=PATH       passphrase: the whole file (as `stack -k FILE`)
//   keyfd=N            passphrase: all bytes of inherited descriptor N
//                      (how `stack serve` hands it over; N is closed)
//   password=-|+FILE|-FD  passphrase by nbdkit's conventions
//   report_fd=N        inherited descriptor: "ready\n" once serving, or
//                      "<Code>: <message>\n" if startup failed (for `stack serve`)
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "pool/store.h"
#include "run_cli.h"
#include "server.h"
#include "stack/open_pool.h"
#include "stack/secrets.h"

namespace {

using stack::Code;
using stack::Status;
using stack::nbd::Export;
using stack::nbd::Server;
using stack::nbd::ServerConfig;
using stack::nbd::View;

ServerConfig g_config;
std::string g_key_file;
int g_key_fd = -1;
int g_report_fd = -1;
std::unique_ptr<Server> g_server;

int ErrnoFor(const Status& st) {
  switch (st.code()) {
    case Code::kNoSpace: return ENOSPC;
    case Code::kReadOnly: return EROFS;
    case Code::kOutOfRange: return ENOSPC;  // NBD: a write past the end is ENOSPC
    case Code::kInvalidArgument: return EINVAL;
    case Code::kUnsupported: return ENOTSUP;
    case Code::kIoError: return st.sys_errno() ? st.sys_errno() : EIO;
    default: return EIO;
  }
}

// Reports st to nbdkit (log line and the errno the client gets); returns -1.
int Fail(const Status& st) {
  nbdkit_error("%s", st.ToString().c_str());
  nbdkit_set_error(ErrnoFor(st));
  return -1;
}

int FailException(const char* what) {
  nbdkit_error("internal error: %s", what);
  nbdkit_set_error(EIO);
  return -1;
}

// Runs f, turning exceptions into an nbdkit error. f returns int.
template <typename F>
int Guard(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return FailException(e.what());
  } catch (...) {
    return FailException("unknown exception");
  }
}

void Report(const std::string& line) {
  if (g_report_fd < 0) return;
  std::string s = line + "\n";
  ssize_t n = ::write(g_report_fd, s.data(), s.size());
  (void)n;  // a gone reader (stack serve died) changes nothing here
}

stack::Result<stack::fde::Secret> ReadAllFromFd(int fd) {
  // Straight into secure memory, growing it as needed.
  ASSIGN_OR_RETURN(stack::fde::Secret buf, stack::fde::Secret::Zeroed(4096));
  size_t used = 0;
  for (;;) {
    if (used == buf.size()) {
      ASSIGN_OR_RETURN(stack::fde::Secret bigger, stack::fde::Secret::Zeroed(buf.size() * 2));
      std::memcpy(bigger.data(), buf.data(), used);
      buf = std::move(bigger);
    }
    ssize_t n = ::read(fd, buf.data() + used, buf.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("keyfd " + std::to_string(fd), errno);
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  buf.Truncate(used);
  return buf;
}

int ParseFd(const char* key, const char* value, int* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(value, &end, 10);
  if (errno || end == value || *end || v < 3 || v > 65535) {
    nbdkit_error("%s=%s: expected a file descriptor number >= 3", key, value);
    return -1;
  }
  *out = static_cast<int>(v);
  return 0;
}

int SetPassphrase(stack::Result<stack::fde::Secret> r) {
  if (!r.ok()) return Fail(r.status());
  if (g_config.passphrase) {
    nbdkit_error("the passphrase was given twice (keyfile=, keyfd=, password=)");
    return -1;
  }
  g_config.passphrase = std::move(*r);
  return 0;
}

// ------------------------------------------------------------- callbacks

void stack_unload() {
  try {
    g_server.reset();
  } catch (...) {
  }
}

int stack_config(const char* key, const char* value) {
  return Guard([&]() -> int {
    std::string k = key;
    if (k == "pool" && stack::compose::IsRbdPool(value)) {
      g_config.pool_path = value;  // a Ceph pool, not a path
    } else if (k == "pool") {
      char* abs = nbdkit_absolute_path(value);  // nbdkit may chdir("/")
      if (!abs) return -1;
      g_config.pool_path = abs;
      std::free(abs);
    } else if (k == "export") {
      g_config.exports.emplace_back(value);
    } else if (k == "view") {
      std::string v = value;
      if (v == "plain") g_config.view = View::kPlain;
      else if (v == "stored") g_config.view = View::kStored;
      else {
        nbdkit_error("view=%s: expected plain or stored", value);
        return -1;
      }
    } else if (k == "keyfile") {
      char* abs = nbdkit_absolute_path(value);
      if (!abs) return -1;
      g_key_file = abs;
      std::free(abs);
    } else if (k == "keyfd") {
      return ParseFd(key, value, &g_key_fd);
    } else if (k == "password") {
      char* pw = nullptr;
      if (nbdkit_read_password(value, &pw) == -1) return -1;
      size_t n = std::strlen(pw);
      auto secret = stack::fde::Secret::Copy({reinterpret_cast<uint8_t*>(pw), n});
      explicit_bzero(pw, n);
      std::free(pw);
      return SetPassphrase(std::move(secret));
    } else if (k == "report_fd") {
      return ParseFd(key, value, &g_report_fd);
    } else {
      nbdkit_error("unknown parameter '%s'", key);
      return -1;
    }
    return 0;
  });
}

int stack_config_complete() {
  return Guard([&]() -> int {
    if (!g_key_file.empty()) {
      stack::compose::SecretSource src;
      src.key_file = g_key_file;
      if (SetPassphrase(stack::compose::ObtainSecret(src)) == -1) return -1;
    }
    if (g_key_fd >= 0) {
      auto r = ReadAllFromFd(g_key_fd);
      ::close(g_key_fd);
      if (SetPassphrase(std::move(r)) == -1) return -1;
    }
    if (g_config.pool_path.empty() || g_config.exports.empty()) {
      nbdkit_error("pool=PATH and at least one export=NAME are required");
      return -1;
    }
    return 0;
  });
}

// Opens the pool and every export (g_config is consumed).
int OpenServer() {
  return Guard([&]() -> int {
    auto s = Server::Open(std::move(g_config));
    g_config = ServerConfig();
    if (!s.ok()) {
      Report(s.status().ToString());
      return Fail(s.status());
    }
    g_server = std::move(*s);
    return 0;
  });
}

// Armed from get_ready until after_fork: the one fork in between is
// nbdkit's own (into the background), whose parent then calls exit(). That
// exit would run this plugin's teardown in a process that is not the server
// (closing the pool the daemon serves: its holder note unlinked, the cipher
// handles freed while static state is being destroyed: glibc aborted there,
// "munmap_chunk(): invalid pointer"). The parent leaves at once instead, as
// nbdkit's parent would, with status 0.
std::atomic<bool> g_parent_must_vanish{false};

void ParentAfterFork() {
  if (g_parent_must_vanish.load()) ::_exit(EXIT_SUCCESS);
}

// Before nbdkit forks: the pool's flock and descriptors are inherited by
// the forked server, and no thread is started here (fork keeps none). An
// RBD pool is opened after the fork instead: librados starts threads.
int stack_get_ready() {
  static const int registered = ::pthread_atfork(nullptr, ParentAfterFork, nullptr);
  if (registered != 0) {
    nbdkit_error("pthread_atfork: %s", std::strerror(registered));
    return -1;
  }
  g_parent_must_vanish = true;
  return Guard([&]() -> int {
    // Forwarded commands (the control socket) run the CLI in this process.
    stack::cli::InstallCli();
    stack::pool::SetLockHolderName("stack serve (nbdkit)");
    if (stack::compose::IsRbdPool(g_config.pool_path)) return 0;
    return OpenServer();
  });
}

// Sockets are listening by now (nbdkit binds them before forking).
int stack_after_fork() {
  g_parent_must_vanish = false;  // the server (forked or not): later forks are ours
  if (!g_server && OpenServer() != 0) return -1;  // an RBD pool (get_ready)
  // Other `stack` commands on the pool are answered from here on (the
  // control server's thread is started after the fork, which keeps none).
  Guard([&]() -> int {
    g_server->StartControl();
    return 0;
  });
  Report("ready");
  if (g_report_fd >= 0) ::close(g_report_fd);
  g_report_fd = -1;
  return 0;
}

// All connections are closed: commit what the clients wrote without a flush.
void stack_cleanup() {
  try {
    if (!g_server) return;
    g_server->StopControl();  // a forwarded command finishes before the commit
    Status st = g_server->Commit();
    if (!st.ok()) nbdkit_error("commit at shutdown: %s", st.ToString().c_str());
  } catch (...) {
  }
}

int stack_list_exports(int /*readonly*/, int /*is_tls*/, struct nbdkit_exports* exports) {
  return Guard([&]() -> int {
    for (const std::string& n : g_server->names()) {
      if (nbdkit_add_export(exports, n.c_str(), nullptr) == -1) return -1;
    }
    return 0;
  });
}

// The empty name (a client that names no export) means the first export.
const char* stack_default_export(int /*readonly*/, int /*is_tls*/) {
  try {
    return nbdkit_strdup_intern(g_server->names().front().c_str());
  } catch (...) {
    return nullptr;
  }
}

struct Handle {
  Export* ex;
};

void* stack_open(int /*readonly*/) {
  try {
    const char* name = nbdkit_export_name();
    std::string n = name ? name : "";
    if (n.empty()) n = g_server->names().front();
    Export* ex = g_server->Find(n);
    if (!ex) {
      nbdkit_error("NotFound: no export '%s' (served: see --list)", n.c_str());
      nbdkit_set_error(ENOENT);
      return nullptr;
    }
    return new Handle{ex};
  } catch (...) {
    FailException("open");
    return nullptr;
  }
}

void stack_close(void* h) { delete static_cast<Handle*>(h); }

Export& Ex(void* h) { return *static_cast<Handle*>(h)->ex; }

int64_t stack_get_size(void* h) { return static_cast<int64_t>(Ex(h).size()); }

int stack_block_size(void* h, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  const Export& e = Ex(h);
  // NBD limits: minimum 1..64 KiB, preferred and maximum multiples of it.
  *minimum = std::min<uint32_t>(e.unit(), 65536);
  *preferred = std::max<uint32_t>(e.write_unit(), 4096);
  *maximum = std::max<uint32_t>(32u << 20, *preferred);
  return 0;
}

int stack_can_write(void* h) { return Ex(h).read_only() ? 0 : 1; }
int stack_can_flush(void*) { return 1; }
int stack_can_trim(void* h) { return Ex(h).can_trim() ? 1 : 0; }
int stack_can_zero(void*) { return 1; }
// Always advertised: an export that cannot zero fast answers a fast-zero
// request with ENOTSUP at once (stack_zero), as NBD allows. Not advertising
// it was worse: nbdkit 1.32 aborts the whole server (an assertion) when a
// non-conforming client sends the flag anyway.
int stack_can_fast_zero(void*) { return 1; }
int stack_can_fua(void*) { return NBDKIT_FUA_NATIVE; }
int stack_can_extents(void*) { return 1; }
// Every connection of every export goes through the one Pool: a write is
// acknowledged only once it is in the pool's transaction (no per-connection
// cache), and a flush on any connection commits that whole transaction.
int stack_can_multi_conn(void*) { return 1; }

int stack_pread(void* h, void* buf, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  return Guard([&]() -> int {
    Status st = Ex(h).Read(offset, {static_cast<uint8_t*>(buf), count});
    return st.ok() ? 0 : Fail(st);
  });
}

int stack_pwrite(void* h, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard([&]() -> int {
    Status st = Ex(h).Write(offset, {static_cast<const uint8_t*>(buf), count},
                            (flags & NBDKIT_FLAG_FUA) != 0);
    return st.ok() ? 0 : Fail(st);
  });
}

int stack_flush(void* h, uint32_t /*flags*/) {
  return Guard([&]() -> int {
    // A read-only export's flush commits the pool too: a flush on any
    // connection of any export makes every acknowledged write durable
    // (spec/serve.md), whichever export the client flushes.
    Status st = Ex(h).read_only() ? g_server->Commit() : Ex(h).Flush();
    return st.ok() ? 0 : Fail(st);
  });
}

int stack_trim(void* h, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard([&]() -> int {
    Status st = Ex(h).Trim(offset, count, (flags & NBDKIT_FLAG_FUA) != 0);
    return st.ok() ? 0 : Fail(st);
  });
}

int stack_zero(void* h, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard([&]() -> int {
    Export& e = Ex(h);
    if ((flags & NBDKIT_FLAG_FAST_ZERO) && !e.fast_zero()) {
      nbdkit_set_error(ENOTSUP);
      return -1;
    }
    // MAY_TRIM needs no branch: the stored view's zeros are always holes
    // (the pool unmaps all-zero blocks), the plain view's never can be.
    Status st = e.Zero(offset, count, (flags & NBDKIT_FLAG_FUA) != 0);
    return st.ok() ? 0 : Fail(st);
  });
}

int stack_extents(void* h, uint32_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents* extents) {
  return Guard([&]() -> int {
    Export& e = Ex(h);
    auto r = e.Allocated(offset, count);
    if (!r.ok()) return Fail(r.status());
    const uint32_t hole = NBDKIT_EXTENT_HOLE | (e.holes_read_zero() ? NBDKIT_EXTENT_ZERO : 0);
    const uint64_t end = std::min<uint64_t>(e.size(), offset + count);
    uint64_t pos = offset / e.unit() * e.unit();
    for (const stack::Extent& x : *r) {
      if (x.offset > pos && nbdkit_add_extent(extents, pos, x.offset - pos, hole) == -1) return -1;
      if (nbdkit_add_extent(extents, x.offset, x.length, 0) == -1) return -1;
      pos = x.end();
      if (flags & NBDKIT_FLAG_REQ_ONE) return 0;
    }
    if (pos < end && nbdkit_add_extent(extents, pos, end - pos, hole) == -1) return -1;
    return 0;
  });
}

}  // namespace

static struct nbdkit_plugin plugin = [] {
  struct nbdkit_plugin p = {};
  p.name = "stack";
  p.longname = "stack pool volumes";
  p.version = "0.1.0";
  p.description = "Serves the volumes and snapshots of a stack pool (plain or stored view)";
  p.unload = stack_unload;
  p.config = stack_config;
  p.config_complete = stack_config_complete;
  p.config_help =
      "pool=PATH            The pool (required).\n"
      "export=NAME          An entry to serve; repeatable (required).\n"
      "view=plain|stored    Decrypted device or the bytes as stored (default plain).\n"
      "keyfile=PATH         Passphrase: the whole file.\n"
      "keyfd=N              Passphrase: all bytes of inherited descriptor N.\n"
      "password=-|+FILE|-FD Passphrase by nbdkit's conventions.";
  p.magic_config_key = "export";
  p.get_ready = stack_get_ready;
  p.after_fork = stack_after_fork;
  p.cleanup = stack_cleanup;
  p.list_exports = stack_list_exports;
  p.default_export = stack_default_export;
  p.open = stack_open;
  p.close = stack_close;
  p.get_size = stack_get_size;
  p.block_size = stack_block_size;
  p.can_write = stack_can_write;
  p.can_flush = stack_can_flush;
  p.can_trim = stack_can_trim;
  p.can_zero = stack_can_zero;
  p.can_fast_zero = stack_can_fast_zero;
  p.can_fua = stack_can_fua;
  p.can_extents = stack_can_extents;
  p.can_multi_conn = stack_can_multi_conn;
  p.pread = stack_pread;
  p.pwrite = stack_pwrite;
  p.flush = stack_flush;
  p.trim = stack_trim;
  p.zero = stack_zero;
  p.extents = stack_extents;
  return p;
}();

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
NBDKIT_REGISTER_PLUGIN(plugin)

// `stack serve`: pool entries live over NBD, served by nbdkit with stack's
// plugin (nbd/, spec/serve.md). Everything that can be refused is refused
// here before nbdkit starts (usage, unknown entry, busy pool, a container
// we cannot open); the passphrase is read once, here, and handed to the
// plugin through an inherited descriptor.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "command.h"
#include "fde/luks.h"
#include "nbdkit_process.h"
#include "output.h"
#include "pool/pool.h"
#include "stack/open_pool.h"
#include "stack/secrets.h"
#include "target_args.h"

namespace stack::cli {
namespace {

struct ServeArgs {
  std::string pool;
  std::vector<std::string> names;
  std::string view = "plain";
  std::string socket;
  std::string tcp;
  std::string key_file;
  bool fork = false;
  std::string pidfile;
  std::string tls_psk;
};

// sun_path holds 108 bytes with the terminating NUL.
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;

std::string Absolute(const std::string& p) {
  if (compose::IsRbdPool(p)) return p;  // not a path
  std::error_code ec;
  auto a = std::filesystem::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// The default socket: next to the pool (POOL.nbd.sock, found where the pool
// is, guarded by its directory's permissions); when that path does not fit
// in sun_path, $XDG_RUNTIME_DIR/stack-nbd-<hash of the pool path>.sock.
// An RBD pool has no directory: always the latter.
Result<std::string> DefaultSocket(const std::string& pool_abs) {
  std::string next = pool_abs + ".nbd.sock";
  if (next.size() <= kMaxSocketPath && !compose::IsRbdPool(pool_abs)) return next;
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a(pool_abs)));
    std::string p = std::string(xdg) + "/stack-nbd-" + hex + ".sock";
    if (p.size() <= kMaxSocketPath) return p;
  }
  return Status::InvalidArgument("the socket path next to the pool (" + next + ") is longer than " +
                                 std::to_string(kMaxSocketPath) +
                                 " bytes and $XDG_RUNTIME_DIR is unset or too long: give --socket");
}

// A socket file left by a killed server is removed; one a server answers
// on is Busy; anything else is not ours to delete.
Status ClearSocket(const std::string& path) {
  if (path.size() > kMaxSocketPath) {
    return Status::InvalidArgument("--socket " + path + " is longer than " +
                                   std::to_string(kMaxSocketPath) + " bytes (sun_path)");
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno("stat " + path, errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::AlreadyExists(path + " exists and is not a socket");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket", errno);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (rc == 0) return Status::Busy("socket " + path + " is in use by a running server");
  if (err != ECONNREFUSED) return Status::FromErrno("connect " + path, err);
  if (::unlink(path.c_str()) != 0) return Status::FromErrno("remove stale socket " + path, errno);
  return Status::Ok();
}

// Percent-encodes all but RFC 3986 unreserved characters and '/'.
std::string UriEscape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Result<std::string> FindPlugin() {
  if (const char* env = std::getenv("STACK_NBDKIT_PLUGIN"); env && *env) {
    if (::access(env, R_OK) != 0) {
      return Status::NotFound(std::string("STACK_NBDKIT_PLUGIN=") + env + ": no such file");
    }
    return std::string(env);
  }
  // The build tree's (running from a build) or the installed one.
  for (const char* p : {STACK_NBD_PLUGIN_BUILD, STACK_NBD_PLUGIN_INSTALLED}) {
    if (::access(p, R_OK) == 0) return std::string(p);
  }
  return Status::Unsupported(std::string("the nbdkit plugin is not installed (looked for ") +
                             STACK_NBD_PLUGIN_INSTALLED + "; set STACK_NBDKIT_PLUGIN)");
}

struct Checked {
  std::vector<pool::EntryInfo> entries;
  bool need_key = false;
};

// What nbdkit would otherwise refuse after the KDF, refused first: an
// unknown entry (NotFound), a pool held by a writer (Busy), an encrypted
// entry this build cannot open (before any prompt).
Result<Checked> Precheck(const ServeArgs& a, bool plain) {
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, compose::PoolAccess::kReadOnly));
  Checked c;
  for (const std::string& n : a.names) {
    auto e = p->Stat(n);
    if (!e.ok()) return e.status();
    c.entries.push_back(*e);
    if (!plain) continue;
    ASSIGN_OR_RETURN(auto dev, p->OpenVolume(n, true));
    ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*dev));
    if (kind == fde::ContainerKind::kNone) continue;
    Status st = fde::CheckOpenable(*dev);
    if (!st.ok()) return st.WithContext("'" + n + "'");
    c.need_key = true;
  }
  return c;
}

Status Serve(const ServeArgs& a, const CommandContext& ctx) {
  if (a.pool.empty()) return Status::InvalidArgument("--pool is required");
  if (a.names.empty()) return Status::InvalidArgument("expected NAME... (the entries to serve)");
  if (a.view != "plain" && a.view != "stored") {
    return Status::InvalidArgument("--view " + a.view + ": expected plain or stored");
  }
  if (!a.socket.empty() && !a.tcp.empty()) {
    return Status::InvalidArgument("--socket and --tcp exclude each other");
  }
  for (size_t i = 0; i < a.names.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (a.names[i] == a.names[j]) {
        return Status::InvalidArgument("'" + a.names[i] + "' given twice");
      }
    }
  }
  const bool plain = a.view == "plain";
  std::string host, port;
  if (!a.tcp.empty()) {
    const size_t colon = a.tcp.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == a.tcp.size()) {
      return Status::InvalidArgument("--tcp " + a.tcp + ": expected ADDR:PORT");
    }
    host = a.tcp.substr(0, colon);
    port = a.tcp.substr(colon + 1);
    if (port.find_first_not_of("0123456789") != std::string::npos) {
      return Status::InvalidArgument("--tcp " + a.tcp + ": the port is not a number");
    }
    // The ready line names this port: 0 (any port) or one past 65535 would
    // name a port nobody listens on.
    if (port.size() > 5 || std::stoul(port) == 0 || std::stoul(port) > 65535) {
      return Status::InvalidArgument("--tcp " + a.tcp + ": the port must be 1 to 65535");
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
  }
  const std::string nbdkit = FindInPath("nbdkit");
  if (nbdkit.empty()) {
    return Status::Unsupported("nbdkit is not installed (Debian package nbdkit)");
  }
  ASSIGN_OR_RETURN(std::string plugin, FindPlugin());
  const std::string pool_abs = Absolute(a.pool);
  ASSIGN_OR_RETURN(Checked checked, Precheck(a, plain));

  NbdkitLaunch l;
  l.nbdkit = nbdkit;
  l.plugin = plugin;
  l.fork = a.fork;
  std::string socket;
  if (a.tcp.empty()) {
    if (a.socket.empty()) {
      ASSIGN_OR_RETURN(socket, DefaultSocket(pool_abs));
    } else {
      socket = Absolute(a.socket);
    }
    RETURN_IF_ERROR(ClearSocket(socket));
    l.options = {"--unix", socket};
  } else {
    l.options = {"--ipaddr", host, "--port", port};
  }
  if (!a.pidfile.empty()) l.options.push_back("--pidfile=" + Absolute(a.pidfile));
  if (!a.tls_psk.empty()) {
    l.options.push_back("--tls=require");
    l.options.push_back("--tls-psk=" + Absolute(a.tls_psk));
  }
  l.params = {"pool=" + pool_abs, std::string("view=") + (plain ? "plain" : "stored")};
  for (const std::string& n : a.names) l.params.push_back("export=" + n);
  if (checked.need_key) {
    compose::SecretSource src;
    src.key_file = a.key_file;
    ASSIGN_OR_RETURN(fde::Secret pass, compose::ObtainSecret(src));
    l.passphrase = std::move(pass);
  }

  NbdkitProcess server;
  RETURN_IF_ERROR(server.Start(std::move(l)));
  // nbdkit sets its own umask (022): the socket is made owner-only here,
  // before any URI is printed.
  if (!socket.empty() && ::chmod(socket.c_str(), 0600) != 0) {
    return Status::FromErrno("chmod " + socket, errno);
  }

  const std::string scheme = a.tls_psk.empty() ? "nbd" : "nbds";
  nlohmann::json arr = nlohmann::json::array();
  for (const pool::EntryInfo& e : checked.entries) {
    const bool ro = e.read_only || e.kind == pool::EntryKind::kSnapshot;
    std::string uri;
    if (!socket.empty()) {
      uri = scheme + "+unix:///" + UriEscape(e.name) + "?socket=" + UriEscape(socket);
    } else {
      const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
      uri = scheme + "://" + h + ":" + port + "/" + UriEscape(e.name);
    }
    if (ctx.json) {
      arr.push_back({{"name", e.name}, {"view", a.view}, {"read_only", ro}, {"uri", uri}});
    } else {
      std::cout << "serving " << e.name << " (" << a.view << ", "
                << (ro ? "read-only" : "read-write") << ") at " << uri << "\n";
    }
  }
  if (ctx.json) {
    nlohmann::json doc = {{"pool", pool_abs}, {"exports", arr}};
    if (!socket.empty()) doc["socket"] = socket;
    PrintJson(doc);
  }
  std::cout.flush();
  if (a.fork) return Status::Ok();
  Status st = server.Wait();
  if (!socket.empty()) ::unlink(socket.c_str());  // nbdkit leaves it
  return st;
}

}  // namespace

void RegisterServeCommands(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<ServeArgs>();
  auto* s = app.add_subcommand(
      "serve",
      "Serve volumes and snapshots over NBD (nbdkit) until SIGINT/SIGTERM, which\n"
      "flushes, commits and exits 0. One ready line per export with its URI.\n"
      "  example: stack serve -p pool.stk vm1 -k pass.txt\n"
      "  then:    qemu-system-x86_64 -drive file=nbd+unix:///vm1?socket=pool.stk.nbd.sock,...");
  AddPoolOption(s, a->pool, "Pool file");
  s->add_option("names", a->names, "Entries to serve (VOLUME or VOLUME@SNAPSHOT; snapshots "
                                   "and read-only volumes are served read-only)");
  s->add_option("--view", a->view, "plain: the decrypted device; stored: the bytes as stored "
                                   "(the LUKS2 container)")
      ->capture_default_str();
  s->add_option("--socket", a->socket, "Unix socket path (default: POOL.nbd.sock next to the pool, "
                                       "or in $XDG_RUNTIME_DIR when that path is too long)");
  s->add_option("--tcp", a->tcp, "Listen on TCP ADDR:PORT instead of a unix socket");
  s->add_option("--key-file,-k", a->key_file, "Passphrase file ('-' = stdin); default: prompt");
  s->add_flag("--fork", a->fork, "Return once serving; the server runs in the background");
  s->add_option("--pidfile", a->pidfile, "Write the server's process id here once it is ready");
  s->add_option("--tls-psk", a->tls_psk, "Require TLS with this PSK file (nbdkit --tls-psk)");
  s->callback([&ctx, a] { ctx.action = [&ctx, a] { return Serve(*a, ctx); }; });
}

}  // namespace stack::cli

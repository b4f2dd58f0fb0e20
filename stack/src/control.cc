// The control socket: server, client and the forwarded command's context
// (see stack/control.h, spec/control.md).
#include "stack/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <map>
#include <thread>

#include "block/text.h"
#include "block/unique_fd.h"
#include "control_wire.h"
#include "pool/pool.h"

extern char** environ;

namespace stack::compose {
namespace {

CommandRunner& Runner() {
  static CommandRunner r;
  return r;
}

std::string& HolderDescription() {
  static std::string d = "pid " + std::to_string(::getpid());
  return d;
}

// What a forwarded command runs against; set in the worker thread only.
struct Forwarded {
  std::shared_ptr<pool::Pool> pool;
  dev_t dev = 0;
  ino_t ino = 0;
  const ControlOptions* options = nullptr;
  std::string holder_cwd;
  std::map<std::string, std::string> env;
  int tty = -1;
};
thread_local const Forwarded* t_forwarded = nullptr;

// True when `pid` is stopped (SIGSTOP, SIGTSTP from Ctrl-Z, or a debugger):
// state T or t in /proc/<pid>/stat. Its socket still accepts connections,
// but it takes no command until it is resumed.
bool IsStopped(pid_t pid) {
  if (pid <= 0) return false;
  UniqueFd fd(::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return false;
  char buf[512];
  const ssize_t n = ::read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return false;
  const std::string stat(buf, static_cast<size_t>(n));
  const size_t close = stat.rfind(')');  // the command name may hold ')' and spaces
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  return stat[close + 2] == 'T' || stat[close + 2] == 't';
}

std::string StoppedMessage(const std::string& pool_path, pid_t pid) {
  return "pool " + pool_path + " is held by process " + std::to_string(pid) +
         ", which is stopped: resume it (fg, or kill -CONT " + std::to_string(pid) + ")";
}

void FlushStdio() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
}

}  // namespace

void SetCommandRunner(CommandRunner runner) { Runner() = std::move(runner); }
void SetHolderDescription(std::string description) { HolderDescription() = std::move(description); }

std::string SocketPathFor(const std::string& pool_path) {
  char* real = ::realpath(pool_path.c_str(), nullptr);
  if (!real) return {};
  std::string s = std::string(real) + ".ctl";
  std::free(real);
  return s;
}

std::optional<std::string> CommandEnv(const std::string& name) {
  if (t_forwarded) {
    auto it = t_forwarded->env.find(name);
    if (it == t_forwarded->env.end()) return std::nullopt;
    return it->second;
  }
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

bool InForwardedCommand() { return t_forwarded != nullptr; }

std::string StorePathOf(const pool::Pool& pool) {
  std::string path = pool.StorePath();
  const Forwarded* f = t_forwarded;
  if (f && f->pool.get() == &pool && !path.empty() && path[0] != '/')
    path = f->holder_cwd + "/" + path;
  return path;
}

std::optional<int> CommandTty() {
  if (!t_forwarded) return std::nullopt;
  return t_forwarded->tty;
}

Result<std::shared_ptr<pool::Pool>> HeldPoolFor(const std::string& path, PoolAccess access,
                                                const std::string& entry) {
  const Forwarded* f = t_forwarded;
  struct stat st {};
  if (!f || ::stat(path.c_str(), &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino)
    return std::shared_ptr<pool::Pool>();
  const ControlOptions& o = *f->options;
  if (access == PoolAccess::kWritable && o.policy == ControlPolicy::kReadOnly) {
    return Status::Busy("pool " + path + " is held by " + o.holder +
                        ", which answers only read-only commands while it runs");
  }
  if (std::find(o.busy_entries.begin(), o.busy_entries.end(), entry) != o.busy_entries.end()) {
    return Status::Busy("volume '" + entry + "' is being written by " + o.holder +
                        ": its file system is in flux, and its size and writability are the "
                        "writer's, until that finishes");
  }
  return f->pool;
}

// Server ---------------------------------------------------------------------

struct ControlServer::Impl {
  std::shared_ptr<pool::Pool> pool;
  ControlOptions options;
  std::optional<wire::SocketName> name;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string holder_cwd;
  int listen_fd = -1;
  int stop_r = -1, stop_w = -1;
  std::thread worker;

  ~Impl() {
    if (stop_w >= 0) {
      char b = 1;
      while (::write(stop_w, &b, 1) < 0 && errno == EINTR) {
      }
    }
    if (worker.joinable()) worker.join();
    if (name && listen_fd >= 0) ::unlinkat(name->dir_fd(), name->name().c_str(), 0);
    for (int fd : {listen_fd, stop_r, stop_w})
      if (fd >= 0) ::close(fd);
  }

  // The worker's own fd table and cwd, so a command's dup2 and fchdir touch
  // nothing of the holder's; every signal blocked, so the holder's threads
  // get them and a write to a closed client pipe is EPIPE, not SIGPIPE.
  Status InitWorker(int* devnull, int* home) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    if (::unshare(CLONE_FS | CLONE_FILES) != 0) return Status::FromErrno("unshare", errno);
    *devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    *home = ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*devnull < 0 || *home < 0) return Status::FromErrno("opening /dev/null and .", errno);
    for (int i = 0; i < 3; ++i) ::dup2(*devnull, i);  // our copies of the holder's stdio go
    return Status::Ok();
  }

  void Run(std::promise<Status> started) {
    int devnull = -1, home = -1;
    Status st = InitWorker(&devnull, &home);
    const bool ok = st.ok();
    started.set_value(std::move(st));
    if (!ok) return;
    for (;;) {
      pollfd p[2] = {{listen_fd, POLLIN, 0}, {stop_r, POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[1].revents) break;
      if (!p[0].revents) continue;
      int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      Serve(c, devnull, home);
      ::close(c);
    }
  }

  // Until the client's first bytes arrive, or false when the holder stops
  // or options.request_timeout_ms passes first: one connection that sends
  // nothing must not hold up the clients queued behind it or the holder's
  // end. The rest of the request is read with that timeout on each read.
  bool AwaitRequest(int conn) {
    const int ms = std::max(1, options.request_timeout_ms);
    const timeval tv{ms / 1000, (ms % 1000) * 1000};
    if (::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) return false;
    for (;;) {
      pollfd p[2] = {{conn, POLLIN, 0}, {stop_r, POLLIN, 0}};
      const int n = ::poll(p, 2, ms);
      if (n < 0 && errno == EINTR) continue;
      return n > 0 && !p[1].revents && p[0].revents;
    }
  }

  void Serve(int conn, int devnull, int home) {
    // The socket is 0600; this also stops root-owned or leaked descriptors.
    auto peer = wire::PeerCredOf(conn);
    if (!peer || peer->uid != ::geteuid()) return;
    if (!AwaitRequest(conn)) return;
    wire::Request req;
    std::vector<int> fds;
    if (!wire::RecvRequest(conn, &req, &fds)) return;
    Forwarded f;
    f.pool = pool;
    f.dev = dev;
    f.ino = ino;
    f.options = &options;
    f.holder_cwd = holder_cwd;
    for (auto& kv : req.env) {
      const size_t eq = kv.find('=');
      if (eq != std::string::npos) f.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    f.tty = fds.size() > 4 ? fds[4] : -1;
    int rc = 1;
    const mode_t holder_umask = ::umask(static_cast<mode_t>(req.umask));  // per thread (CLONE_FS)
    // 'A' cannot reach a client that is gone (it closed while waiting its
    // turn): its command is not run.
    if (wire::SendAll(conn, std::string(1, wire::kAccepted)) && ::fchdir(fds[0]) == 0 &&
        ::dup2(fds[1], 0) == 0 && ::dup2(fds[2], 1) == 1 && ::dup2(fds[3], 2) == 2) {
      t_forwarded = &f;
      try {
        rc = Runner()(req.argv);
      } catch (const std::exception& e) {
        std::cerr << "stack: internal error in the process holding the pool: " << e.what() << "\n";
      }
      FlushStdio();
      t_forwarded = nullptr;
    }
    // Whatever a failed flush (a client gone) left buffered goes nowhere,
    // and the streams are usable again for the next command.
    for (int i = 0; i < 3; ++i) ::dup2(devnull, i);
    FlushStdio();
    std::cout.clear();
    std::cerr.clear();
    std::clearerr(stdout);
    std::clearerr(stderr);
    (void)::fchdir(home);
    ::umask(holder_umask);
    for (int fd : fds) ::close(fd);
    std::string done(1, wire::kExited);
    for (int i = 0; i < 4; ++i) done.push_back(static_cast<char>((uint32_t(rc) >> (8 * i)) & 0xff));
    wire::SendAll(conn, done);  // a client that is gone is no concern of the holder
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlServer::~ControlServer() = default;

Result<std::unique_ptr<ControlServer>> ControlServer::Start(std::shared_ptr<pool::Pool> pool,
                                                            const std::string& pool_path,
                                                            ControlOptions options) {
  if (!Runner()) return Status::Unsupported("no command runner installed");
  auto impl = std::make_unique<Impl>();
  struct stat st {};
  if (::stat(pool_path.c_str(), &st) != 0) return Status::FromErrno("stat " + pool_path, errno);
  impl->dev = st.st_dev;
  impl->ino = st.st_ino;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) return Status::FromErrno("getcwd", errno);
  impl->holder_cwd = cwd;
  impl->pool = std::move(pool);
  impl->options = std::move(options);
  const std::string sock = SocketPathFor(pool_path);
  if (sock.empty()) return Status::FromErrno("resolving " + pool_path, errno);
  ASSIGN_OR_RETURN(auto name, wire::SocketName::For(sock));
  impl->name.emplace(std::move(name));
  ASSIGN_OR_RETURN(impl->listen_fd, wire::BindListen(*impl->name, 0600));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  impl->stop_r = p[0];
  impl->stop_w = p[1];
  // What the holder wrote so far reaches its own stdout, not a client's.
  FlushStdio();
  std::promise<Status> started;
  auto ready = started.get_future();
  Impl* raw = impl.get();
  impl->worker = std::thread([raw, s = std::move(started)]() mutable { raw->Run(std::move(s)); });
  RETURN_IF_ERROR(ready.get());  // impl's destructor joins the finished worker
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

std::unique_ptr<ControlServer> ServeWhileHolding(std::shared_ptr<pool::Pool> pool,
                                                 const std::string& pool_path,
                                                 std::vector<std::string> busy_entries) {
  if (!Runner() || t_forwarded) return nullptr;
  ControlOptions o;
  o.policy = ControlPolicy::kReadOnly;
  o.holder = HolderDescription();
  o.busy_entries = std::move(busy_entries);
  auto s = ControlServer::Start(std::move(pool), pool_path, std::move(o));
  return s.ok() ? std::move(*s) : nullptr;
}

std::unique_ptr<ControlServer> ServeWhileHolding(const std::shared_ptr<VolumeStore>& store,
                                                 const std::string& pool_path,
                                                 std::vector<std::string> busy_entries) {
  auto pool = store ? store->file_pool() : nullptr;
  if (!pool) return nullptr;
  return ServeWhileHolding(std::move(pool), pool_path, std::move(busy_entries));
}

// Client ---------------------------------------------------------------------

// How long a client waits for the holder to take its command before it
// says that it is waiting (and why, when the holder is stopped).
constexpr int kWaitNoticeMs = 2000;

Result<std::optional<int>> ForwardIfHeld(const std::string& pool_path,
                                         const std::vector<std::string>& argv) {
  const std::optional<int> local;
  if (t_forwarded || pool_path.empty()) return local;
  const std::string sock = SocketPathFor(pool_path);
  if (sock.empty()) return local;
  auto name = wire::SocketName::For(sock);
  if (!name.ok()) return local;
  auto conn = wire::Connect(*name);
  if (!conn.ok()) return local;  // nobody there, or a dead holder's socket
  UniqueFd s(*conn);
  // Our descriptors go only to a process of our own uid.
  auto peer = wire::PeerCredOf(s.get());
  if (!peer || peer->uid != ::geteuid()) return local;
  // A stopped holder would leave this command waiting in its queue without
  // a word; nothing is sent, so nothing runs when it is resumed.
  const pid_t holder = peer->pid;
  if (IsStopped(holder)) return Status::Busy(StoppedMessage(pool_path, holder));
  UniqueFd cwd(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (cwd.get() < 0) return local;
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  std::vector<int> fds = {cwd.get()};
  for (int i = 0; i < 3; ++i) fds.push_back(::fcntl(i, F_GETFD) >= 0 ? i : null_fd.get());
  UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (tty.get() >= 0) fds.push_back(tty.get());
  if (std::find(fds.begin(), fds.end(), -1) != fds.end()) return local;
  wire::Request req;
  req.argv = argv;
  for (char** e = environ; e && *e; ++e) req.env.emplace_back(*e);
  const mode_t mask = ::umask(0);  // reading it means setting it; the client has one thread here
  ::umask(mask);
  req.umask = mask;
  if (!wire::SendAll(s.get(), wire::Encode(req), fds)) return local;
  // The holder takes one command at a time: say so when this one waits its
  // turn, and why when the holder is stopped meanwhile. Waiting goes on
  // (once sent, giving up could race with the holder taking the command).
  // An interrupted client's command is not run if it was not yet taken:
  // the holder's 'A' cannot reach a closed socket, and it runs nothing then.
  bool told_busy = false, told_stopped = false;
  for (;;) {
    pollfd p{s.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, kWaitNoticeMs);
    if (n < 0 && errno == EINTR) continue;
    if (n != 0) break;
    // One line each, escaped as every message that names a path.
    if (IsStopped(holder)) {
      if (!told_stopped)
        std::cerr << "stack: " << EscapeText(StoppedMessage(pool_path, holder) + "; waiting")
                  << "\n";
      told_stopped = true;
    } else if (!told_busy) {
      std::cerr << "stack: "
                << EscapeText("pool " + pool_path + " is held by process " +
                              std::to_string(holder) +
                              ", busy with another command; waiting for it")
                << "\n";
      told_busy = true;
    }
  }
  char accepted = 0;
  if (!wire::RecvExact(s.get(), &accepted, 1) || accepted != wire::kAccepted) return local;
  char done[5];
  if (!wire::RecvExact(s.get(), done, sizeof(done)) || done[0] != wire::kExited) {
    return Status::IoError("the process holding pool " + pool_path +
                           " went away while running this command");
  }
  uint32_t rc = 0;
  for (int i = 0; i < 4; ++i) rc |= uint32_t(static_cast<uint8_t>(done[1 + i])) << (8 * i);
  return std::optional<int>(static_cast<int>(rc));
}

}  // namespace stack::compose

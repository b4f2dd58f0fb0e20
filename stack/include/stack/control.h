// The control socket: the process that holds a pool writable serves it
// (spec/control.md). While a holder runs, every other `stack` command on
// that pool is forwarded to it over `<pool>.ctl` and run there, on the
// already-open pool, by the same CLI code, so stdout, stderr, exit status
// and --json are those of a direct run by construction.
//
//   client (any `stack` command naming a pool):
//       ASSIGN_OR_RETURN(auto rc, ForwardIfHeld(pool_path, argv));
//       if (rc) return *rc;                      // else run locally
//   holder (build, import, fs writers; `serve` later):
//       auto server = ServeWhileHolding(pool, pool_path, {entry});   // RAII
//   the CLI, once per process:
//       SetCommandRunner([](auto& argv) { return RunCli(argv); });
//
// A forwarded command runs in the server's worker thread with the client's
// cwd, stdin, stdout and stderr (the worker has its own fd table and cwd:
// unshare(CLONE_FS | CLONE_FILES)); one command at a time. Inside it,
// compose::OpenPool and Target::Open on the served pool return the held
// pool, after checking the server's policy.
//
// Rules for holders: write nothing to stdout while serving (std::cout's
// buffer is shared with the worker), and destroy the server before closing
// the pool or printing a final report.
//
// Thread-safety: SetCommandRunner / SetHolderDescription once, before any
// server starts; the rest from any thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/status.h"
#include "stack/open_pool.h"

namespace stack::pool {
class Pool;
}

namespace stack::compose {

// Runs one command line (argv[0] is the program name) in the calling
// thread and returns its exit status. Called in the worker with the
// client's cwd and fds 0/1/2 in place. Without a runner nothing is served.
using CommandRunner = std::function<int(const std::vector<std::string>& argv)>;
void SetCommandRunner(CommandRunner runner);
// How Busy messages name this process ("stack build (pid 123)").
void SetHolderDescription(std::string description);

enum class ControlPolicy {
  // Long-running writers (build, import, populate): read-only opens of the
  // pool are answered; a writable open fails with Busy naming the holder.
  kReadOnly,
  // A serving holder: every open is answered (its own rules apply inside).
  kAll,
};

struct ControlOptions {
  ControlPolicy policy = ControlPolicy::kReadOnly;
  std::string holder;  // named in Busy messages
  // Entries the holder is writing: Target::Open of them is Busy even for a
  // reader (their file system is in flux).
  std::vector<std::string> busy_entries;
  // How long the holder waits for a connected client's request (each read
  // of it) before it hangs up; the client then runs the command itself. A
  // client sends its request as soon as it connects, so this only bounds
  // what a silent or stopped one holds up: every later client and the
  // holder's end (which does not wait for a client that has sent nothing).
  int request_timeout_ms = 10000;
};

class ControlServer {
 public:
  // Listens on SocketPathFor(pool_path) (0600; a stale socket is replaced:
  // the caller holds the pool's exclusive lock, so any socket there is
  // dead). REQUIRES: the caller holds `pool` writable.
  static Result<std::unique_ptr<ControlServer>> Start(std::shared_ptr<pool::Pool> pool,
                                                      const std::string& pool_path,
                                                      ControlOptions options);
  // Stops listening, waits for the running forwarded command, removes the
  // socket.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  struct Impl;

 private:
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What long-running writers in stack/ call after opening their pool:
// a kReadOnly server named by SetHolderDescription. Best effort: null when
// no runner is installed, when called inside a forwarded command (the pool
// is already served), or when the socket cannot be made (then clients get
// Busy, as without a server).
std::unique_ptr<ControlServer> ServeWhileHolding(std::shared_ptr<pool::Pool> pool,
                                                 const std::string& pool_path,
                                                 std::vector<std::string> busy_entries = {});
// The same for a volume store: only a pool file is served (other stores
// have no control socket: null).
std::unique_ptr<ControlServer> ServeWhileHolding(const std::shared_ptr<VolumeStore>& store,
                                                 const std::string& pool_path,
                                                 std::vector<std::string> busy_entries = {});

// Client: if `pool_path` is held by a process (of our uid) whose control
// socket answers, runs argv there and returns its exit status; nullopt
// when nobody answers (run locally: no holder, a stale socket, a holder
// that stopped before taking the command). IoError when the holder took
// the command and went away before answering. Sends the cwd, fds 0/1/2, a
// descriptor of the controlling terminal when there is one, and the
// environment. Nullopt inside a forwarded command (no forwarding chains).
Result<std::optional<int>> ForwardIfHeld(const std::string& pool_path,
                                         const std::vector<std::string>& argv);

// `<canonical pool path>.ctl`.
std::string SocketPathFor(const std::string& pool_path);

// The environment of the command being run: the client's inside a
// forwarded command, the process's otherwise.
std::optional<std::string> CommandEnv(const std::string& name);

// True in a control server's worker while it runs a forwarded command.
bool InForwardedCommand();

// The client's terminal inside a forwarded command (-1: it has none), or
// nullopt outside one (use /dev/tty).
std::optional<int> CommandTty();

// pool.StorePath() as a path valid in the calling thread: inside a
// forwarded command the held pool's path was given relative to the
// holder's cwd, not the client's, and is made absolute against it.
std::string StorePathOf(const pool::Pool& pool);

// For OpenPool and Target::Open only: inside a forwarded command, the held
// pool when `path` names it (Busy if the policy refuses `access`, or
// `entry` is one the holder is writing); null otherwise.
Result<std::shared_ptr<pool::Pool>> HeldPoolFor(const std::string& path, PoolAccess access,
                                                const std::string& entry = {});

}  // namespace stack::compose

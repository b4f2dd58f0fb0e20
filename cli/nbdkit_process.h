// NbdkitProcess: runs nbdkit with stack's plugin and supervises it for
// `stack serve` (spec/serve.md "stack serve").
//
// The passphrase reaches the plugin through an inherited memfd (keyfd=),
// never argv. The plugin reports on an inherited pipe (report_fd=): "ready"
// once the sockets listen, or "<Code>: <message>" when startup failed, which
// Start returns as that Status. nbdkit's stderr is held back until then, so
// a failed start prints one line (ours), and forwarded afterwards.
//
// Thread-safety: one object, one thread. Start installs SIGINT/SIGTERM handlers
// (a signal before Wait() is kept for it).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "block/status.h"
#include "fde/secret.h"

namespace stack::cli {

struct NbdkitLaunch {
  std::string nbdkit;                 // the nbdkit executable
  std::vector<std::string> options;   // server options (-U, -i/-p, --tls...)
  std::string plugin;                 // path of nbdkit-stack-plugin.so
  std::vector<std::string> params;    // plugin KEY=VALUE (no secrets)
  std::optional<fde::Secret> passphrase;
  bool fork = false;                  // nbdkit --fork: Start returns, the server stays
};

class NbdkitProcess {
 public:
  NbdkitProcess() = default;
  ~NbdkitProcess();
  NbdkitProcess(const NbdkitProcess&) = delete;
  NbdkitProcess& operator=(const NbdkitProcess&) = delete;

  // Starts nbdkit and returns once it accepts connections (OK), or with the
  // plugin's reported Status, or IoError naming how nbdkit ended.
  Status Start(NbdkitLaunch launch);
  // Foreground only: forwards nbdkit's stderr until it exits; SIGINT and
  // SIGTERM are passed on to it (it then closes its clients and the plugin
  // commits the pool). OK when nbdkit exited with status 0.
  Status Wait();

 private:
  Status Reap(bool block, int* status);
  pid_t pid_ = -1;
  int err_fd_ = -1;  // nbdkit's stderr (read end)
  std::string held_;  // stderr held back until ready
};

// Looks for `name` in $PATH; "" when absent.
std::string FindInPath(const std::string& name);

}  // namespace stack::cli

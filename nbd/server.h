// Server: what the nbdkit plugin serves: one opened pool and its exports.
//
// Opening (Server::Open) does everything that can fail before the first
// client connects: the pool is opened once (read-only when every export is
// read-only, else writable, through compose::OpenPool, so the rules every
// front end follows hold here too) and, in the plain view, each encrypted
// entry's LUKS container is unlocked once. A wrong passphrase is AuthFailed
// then, and the server does not start.
//
// Nothing here is specific to a pool *file*: exports reach the entries
// through pool::Pool::OpenVolume only.
//
// Thread-safety: Open, StartControl, StopControl and the destructor from
// one thread; Find, names and
// Commit from any thread (Export is thread-safe, the pool serialises).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/status.h"
#include "export.h"
#include "fde/secret.h"
#include "pool/pool.h"
#include "stack/control.h"

namespace stack::nbd {

struct ServerConfig {
  std::string pool_path;
  std::vector<std::string> exports;  // entry names, in the order given
  View view = View::kPlain;
  // The passphrase for the plain view's encrypted entries (one for all).
  std::optional<fde::Secret> passphrase;
};

class Server {
 public:
  // InvalidArgument: no pool, no export, a name given twice. NotFound: an
  // entry missing. Busy: the pool held by another process. AuthFailed:
  // the passphrase opens no keyslot of an entry. InvalidArgument too when
  // an encrypted entry is served plain without a passphrase.
  static Result<std::unique_ptr<Server>> Open(ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // nullptr when `name` is not served.
  Export* Find(const std::string& name);
  const std::vector<std::string>& names() const { return names_; }
  View view() const { return view_; }
  // Commits the pool (a no-op when open read-only).
  Status Commit();
  // When the pool is held writable: answers other `stack` commands on it
  // over its control socket (spec/control.md; every command, policy kAll),
  // run on this process's pool; entries served writable are Busy for the
  // file-system commands (a guest is writing them). Call after nbdkit
  // forks (the server's thread would not survive the fork). Best effort:
  // without a socket, other commands get Busy as before.
  void StartControl();
  // Stops answering, waiting for a forwarded command that is running.
  void StopControl();

 private:
  Server() = default;
  std::shared_ptr<VolumeStore> pool_;  // declared first: outlives the exports' devices
  std::string pool_path_;
  std::vector<std::unique_ptr<Export>> exports_;
  std::vector<std::string> names_;
  View view_ = View::kPlain;
  bool writable_ = false;
  std::unique_ptr<compose::ControlServer> control_;  // declared last: stops first
};

}  // namespace stack::nbd

// The control socket's bytes and addresses (spec/control.md "Protocol"),
// shared by the client and the server. Internal to stack/.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::compose::wire {

inline constexpr char kMagic[8] = {'S', 'T', 'K', 'C', 'T', 'L', '1', '\n'};
inline constexpr uint32_t kMaxPayload = 1u << 20;
inline constexpr char kAccepted = 'A';  // the holder took the command
inline constexpr char kExited = 'X';    // followed by the exit status, int32 LE
// cwd, stdin, stdout, stderr, then the client's terminal if it has one.
inline constexpr int kMinFds = 4;
inline constexpr int kMaxFds = 5;

struct Request {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=VALUE"
  uint32_t umask = 022;          // the client's: files the command creates get its modes
};

// Header (magic, uint32 LE payload length) + payload (uint32 LE count, then
// each string as uint32 LE length + bytes; argv then env), then the umask
// as uint32 LE.
std::string Encode(const Request& r);
// Parses a payload (after the header). nullopt if malformed.
std::optional<Request> DecodePayload(const std::string& payload);

// An AF_UNIX address for `path`, also when it is longer than sun_path:
// then through /proc/self/fd/<dirfd>/<name>. Keeps the directory open for
// unlinking the name later.
class SocketName {
 public:
  static Result<SocketName> For(const std::string& path);
  SocketName(SocketName&& o) noexcept;
  SocketName& operator=(SocketName&&) = delete;
  SocketName(const SocketName&) = delete;
  ~SocketName();
  int dir_fd() const { return dir_fd_; }
  const std::string& name() const { return name_; }     // within dir_fd
  const std::string& address() const { return address_; }  // fits sun_path
  const std::string& path() const { return path_; }

 private:
  SocketName() = default;
  int dir_fd_ = -1;
  std::string name_, address_, path_;
};

// socket(AF_UNIX, SOCK_STREAM) connected / bound to `n`.
Result<int> Connect(const SocketName& n);
Result<int> BindListen(const SocketName& n, mode_t mode);
// The process at the other end of a connected socket (SO_PEERCRED), as it
// was when it connected or listened.
struct PeerCred {
  uid_t uid = 0;
  pid_t pid = 0;
};
std::optional<PeerCred> PeerCredOf(int sock);
// Writes all of `data` (MSG_NOSIGNAL), with `fds` attached to the first byte.
bool SendAll(int sock, const std::string& data, const std::vector<int>& fds = {});
// Reads exactly n bytes; false on EOF or error.
bool RecvExact(int sock, void* buf, size_t n);
// Reads the header and payload, receiving the attached descriptors
// (O_CLOEXEC) into `fds`. false if malformed, short or too large (fds
// received are closed then).
bool RecvRequest(int sock, Request* out, std::vector<int>* fds);

}  // namespace stack::compose::wire

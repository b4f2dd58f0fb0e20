// Control socket bytes and addresses (see control_wire.h).
#include "control_wire.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stack::compose::wire {
namespace {

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU32(const std::string& s, size_t* pos, uint32_t* v) {
  if (s.size() - *pos < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= uint32_t(static_cast<uint8_t>(s[*pos + i])) << (8 * i);
  *pos += 4;
  return true;
}

void PutStrings(std::string* s, const std::vector<std::string>& v) {
  PutU32(s, static_cast<uint32_t>(v.size()));
  for (auto& x : v) {
    PutU32(s, static_cast<uint32_t>(x.size()));
    s->append(x);
  }
}

bool GetStrings(const std::string& s, size_t* pos, std::vector<std::string>* v) {
  uint32_t n = 0;
  if (!GetU32(s, pos, &n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len = 0;
    if (!GetU32(s, pos, &len) || s.size() - *pos < len) return false;
    v->push_back(s.substr(*pos, len));
    *pos += len;
  }
  return true;
}

Result<sockaddr_un> Address(const SocketName& n) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (n.address().size() >= sizeof(a.sun_path))
    return Status::InvalidArgument("socket name too long: " + n.path());
  std::memcpy(a.sun_path, n.address().data(), n.address().size());
  return a;
}

}  // namespace

std::string Encode(const Request& r) {
  std::string payload;
  PutStrings(&payload, r.argv);
  PutStrings(&payload, r.env);
  PutU32(&payload, r.umask);
  std::string out(kMagic, sizeof(kMagic));
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  return out + payload;
}

std::optional<Request> DecodePayload(const std::string& payload) {
  Request r;
  size_t pos = 0;
  if (!GetStrings(payload, &pos, &r.argv) || !GetStrings(payload, &pos, &r.env) ||
      !GetU32(payload, &pos, &r.umask))
    return std::nullopt;
  if (pos != payload.size() || r.argv.empty() || r.umask > 0777) return std::nullopt;
  return r;
}

Result<SocketName> SocketName::For(const std::string& path) {
  SocketName n;
  n.path_ = path;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  n.name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  n.dir_fd_ = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (n.dir_fd_ < 0) return Status::FromErrno("opening directory " + dir, errno);
  n.address_ = path.size() < sizeof(sockaddr_un{}.sun_path)
                   ? path
                   : "/proc/self/fd/" + std::to_string(n.dir_fd_) + "/" + n.name_;
  if (n.address_.size() >= sizeof(sockaddr_un{}.sun_path))
    return Status::InvalidArgument("control socket name too long: " + path);
  return n;
}

SocketName::SocketName(SocketName&& o) noexcept
    : dir_fd_(o.dir_fd_), name_(std::move(o.name_)), address_(std::move(o.address_)),
      path_(std::move(o.path_)) {
  o.dir_fd_ = -1;
}

SocketName::~SocketName() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Result<int> Connect(const SocketName& n) {
  ASSIGN_OR_RETURN(sockaddr_un a, Address(n));
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Status::FromErrno("socket", errno);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    const int e = errno;
    ::close(s);
    return Status::FromErrno("connecting to " + n.path(), e);
  }
  return s;
}

Result<int> BindListen(const SocketName& n, mode_t mode) {
  ASSIGN_OR_RETURN(sockaddr_un a, Address(n));
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Status::FromErrno("socket", errno);
  // Whatever sits at the name is a dead holder's socket (the caller holds
  // the pool's exclusive lock) or was planted: unlink never follows it.
  ::unlinkat(n.dir_fd(), n.name().c_str(), 0);
  // Permissions are set before listen(): nobody can connect in between.
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::fchmodat(n.dir_fd(), n.name().c_str(), mode, 0) != 0 || ::listen(s, 16) != 0) {
    const int e = errno;
    ::close(s);
    return Status::FromErrno("listening on " + n.path(), e);
  }
  return s;
}

std::optional<PeerCred> PeerCredOf(int sock) {
  ucred c{};
  socklen_t len = sizeof(c);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return std::nullopt;
  return PeerCred{c.uid, c.pid};
}

bool SendAll(int sock, const std::string& data, const std::vector<int>& fds) {
  size_t done = 0;
  bool first = true;
  while (done < data.size()) {
    iovec iov{const_cast<char*>(data.data() + done), data.size() - done};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (first && !fds.empty()) {
      if (fds.size() > static_cast<size_t>(kMaxFds)) return false;
      std::memset(ctl, 0, sizeof(ctl));
      m.msg_control = ctl;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(sock, &m, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    first = false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool RecvExact(int sock, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::recv(sock, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool RecvRequest(int sock, Request* out, std::vector<int>* fds) {
  char head[sizeof(kMagic) + 4];
  iovec iov{head, sizeof(head)};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  m.msg_control = ctl;
  m.msg_controllen = sizeof(ctl);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  } while (n < 0 && errno == EINTR);
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->push_back(fd);
    }
  }
  auto fail = [&] {
    for (int fd : *fds) ::close(fd);
    fds->clear();
    return false;
  };
  if (n != static_cast<ssize_t>(sizeof(head)) || (m.msg_flags & MSG_CTRUNC) ||
      std::memcmp(head, kMagic, sizeof(kMagic)) != 0 || fds->size() < size_t{kMinFds} ||
      fds->size() > size_t{kMaxFds})
    return fail();
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= uint32_t(static_cast<uint8_t>(head[sizeof(kMagic) + i])) << (8 * i);
  if (len > kMaxPayload) return fail();
  std::string payload(len, '\0');
  if (!RecvExact(sock, payload.data(), len)) return fail();
  auto r = DecodePayload(payload);
  if (!r) return fail();
  *out = std::move(*r);
  return true;
}

}  // namespace stack::compose::wire

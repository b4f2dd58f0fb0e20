// libFuzzer target for the control socket's request reader
// (stack/src/control_wire.h, spec/control.md "Protocol"). The input is the
// byte stream a client sends; it is sent over a socketpair with four
// descriptors attached, as a client does, and read with RecvRequest, the
// holder's reader. Checked: RecvRequest accepts exactly what the protocol
// allows (magic, a length of at most 1 MiB that the stream holds, a payload
// DecodePayload takes), an accepted payload encodes back to the same bytes,
// a refused request keeps no descriptor and an accepted one hands out the
// four, and none of the descriptors sent is left open either way.
// Seeds: fuzz/stack/seeds/control_wire_fuzzer/, requests sent by the real
// client (fuzz/stack/make_control_seeds.py).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../../stack/src/control_wire.h"

namespace {

namespace wire = stack::compose::wire;

constexpr size_t kHeader = sizeof(wire::kMagic) + 4;

// What the protocol says of `in`: the payload RecvRequest must accept, or
// false when it must refuse.
bool Expected(const std::string& in, std::string* payload) {
  if (in.size() < kHeader || std::memcmp(in.data(), wire::kMagic, sizeof(wire::kMagic)) != 0)
    return false;
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i)
    len |= uint32_t(static_cast<uint8_t>(in[sizeof(wire::kMagic) + i])) << (8 * i);
  if (len > wire::kMaxPayload || in.size() - kHeader < len) return false;
  *payload = in.substr(kHeader, len);
  return wire::DecodePayload(*payload).has_value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The socketpair holds the whole stream before it is read (one thread).
  if (size > 64 * 1024) return 0;
  const std::string in(reinterpret_cast<const char*>(data), size);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  // The descriptors sent are copies of a pipe's write end: once every copy
  // is closed, wherever it was, its read end says EOF. A copy left open in
  // this process (received and kept) shows as EAGAIN instead.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();
  std::vector<int> sent{pipe_fds[1]};
  for (int i = 1; i < wire::kMinFds; ++i) sent.push_back(::fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, 0));
  // An empty stream carries no descriptors (they ride on the first byte).
  if (!in.empty() && !wire::SendAll(sv[0], in, sent)) std::abort();
  ::shutdown(sv[0], SHUT_WR);
  for (int fd : sent) ::close(fd);

  wire::Request req;
  std::vector<int> got;
  const bool ok = wire::RecvRequest(sv[1], &req, &got);
  std::string payload;
  const bool want = Expected(in, &payload);
  if (ok != want) std::abort();
  if (ok) {
    if (got.size() != static_cast<size_t>(wire::kMinFds)) std::abort();
    if (req.argv.empty() || req.umask > 0777) std::abort();
    // Canonical: what was accepted is what the client's encoder writes.
    if (wire::Encode(req) != in.substr(0, kHeader + payload.size())) std::abort();
    for (int fd : got) {
      if (::fcntl(fd, F_GETFD) != FD_CLOEXEC) std::abort();  // received O_CLOEXEC
      ::close(fd);
    }
  } else if (!got.empty()) {
    std::abort();  // a refused request keeps nothing
  }
  ::close(sv[0]);
  ::close(sv[1]);
  char c;
  if (::read(pipe_fds[0], &c, 1) != 0) std::abort();  // a descriptor received and kept
  ::close(pipe_fds[0]);
  return 0;
}

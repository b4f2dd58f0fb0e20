// The control socket in one process: the server's worker gets the client's
// descriptors (a pipe on fd 1 here), runs the runner, and the exit status
// comes back; the policy is applied where the pool is opened.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "../../stack/src/control_wire.h"
#include "pool/pool.h"
#include "stack/control.h"
#include "stack/open_pool.h"

namespace compose = stack::compose;
namespace wire = stack::compose::wire;

namespace {

struct NamedTempDir {
  std::string path;
  explicit NamedTempDir(const std::string& name_part = "") {
    char tmpl[] = "/tmp/control-test-XXXXXX";
    path = ::mkdtemp(tmpl);
    if (!name_part.empty()) {
      path += "/" + name_part;
      std::filesystem::create_directories(path);
    }
  }
  ~NamedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path.substr(0, path.find('/', 5)), ec);
  }
};

// Runs `fn` with fd 1 redirected to a pipe; returns what was written.
template <typename Fn>
std::string CaptureStdout(Fn fn) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  std::fflush(stdout);
  int saved = ::dup(1);
  ::dup2(p[1], 1);
  ::close(p[1]);
  fn();
  ::dup2(saved, 1);
  ::close(saved);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  return out;
}

std::shared_ptr<stack::pool::Pool> MakePool(const std::string& path) {
  stack::pool::PoolCreateOptions o;
  o.size_bytes = 16 << 20;
  auto p = stack::pool::Pool::Create(path, o);
  REQUIRE(p.ok());
  return std::shared_ptr<stack::pool::Pool>(std::move(*p));
}

}  // namespace

TEST_CASE("control wire: request round trip and malformed payloads") {
  wire::Request r;
  r.argv = {"stack", "volume", "list", std::string("a\0b", 3)};
  r.env = {"STACK_POOL=/x"};
  r.umask = 027;
  const std::string bytes = wire::Encode(r);
  REQUIRE(bytes.compare(0, 8, "STKCTL1\n") == 0);
  const std::string payload = bytes.substr(12);
  auto back = wire::DecodePayload(payload);
  REQUIRE(back);
  CHECK(back->argv == r.argv);
  CHECK(back->env == r.env);
  CHECK(back->umask == 027u);
  for (size_t cut = 0; cut < payload.size(); ++cut)
    CHECK_FALSE(wire::DecodePayload(payload.substr(0, cut)));
  CHECK_FALSE(wire::DecodePayload(payload + "x"));
  wire::Request empty;
  CHECK_FALSE(wire::DecodePayload(wire::Encode(empty).substr(12)));  // no argv
}

TEST_CASE("control: a forwarded command runs in the holder with the client's stdout") {
  // Longer than sun_path: reached through /proc/self/fd.
  NamedTempDir dir(std::string(70, 'd') + "/" + std::string(50, 'e'));
  const std::string path = dir.path + "/p.stk";
  auto pool = MakePool(path);
  compose::SetHolderDescription("test holder");
  std::string seen_cwd;
  compose::SetCommandRunner([&](const std::vector<std::string>& argv) {
    char cwd[4096];
    seen_cwd = ::getcwd(cwd, sizeof cwd) ? cwd : "";
    std::string line;
    for (auto& a : argv) line += a + " ";
    line += compose::InForwardedCommand() ? "forwarded" : "local";
    // The policy is applied where the pool is opened.
    auto ro = compose::OpenPool(path, compose::PoolAccess::kReadOnly);
    auto rw = compose::OpenPool(path, compose::PoolAccess::kWritable);
    line += ro.ok() && (*ro)->file_pool().get() == pool.get() ? " ro=held" : " ro=other";
    line += rw.ok() ? " rw=ok" : " rw=" + rw.status().message();
    std::printf("%s\n", line.c_str());
    return 42;
  });
  {
    auto server = compose::ServeWhileHolding(pool, path);
    REQUIRE(server);
    struct stat st {};
    REQUIRE(::stat(compose::SocketPathFor(path).c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    stack::Result<std::optional<int>> rc = std::optional<int>();
    const std::string out =
        CaptureStdout([&] { rc = compose::ForwardIfHeld(path, {"stack", "x", "y"}); });
    REQUIRE(rc.ok());
    REQUIRE(*rc);
    CHECK(**rc == 42);
    CHECK(out.rfind("stack x y forwarded ro=held rw=pool ", 0) == 0);
    CHECK(out.find("is held by test holder, which answers only read-only commands") !=
          std::string::npos);
    CHECK(seen_cwd == std::filesystem::current_path().string());
    // The runner ran in the worker; this thread is no forwarded command.
    CHECK_FALSE(compose::InForwardedCommand());
  }
  // Stopped: the socket is gone and nothing answers (run locally).
  CHECK_FALSE(std::filesystem::exists(compose::SocketPathFor(path)));
  auto rc = compose::ForwardIfHeld(path, {"stack", "x"});
  REQUIRE(rc.ok());
  CHECK_FALSE(*rc);
  compose::SetCommandRunner(nullptr);
}

TEST_CASE("control: a stale socket is ignored by clients and replaced by the next holder") {
  NamedTempDir dir;
  const std::string path = dir.path + "/p.stk";
  auto pool = MakePool(path);
  // A dead holder's socket: bound, never listening again.
  auto name = wire::SocketName::For(compose::SocketPathFor(path));
  REQUIRE(name.ok());
  auto fd = wire::BindListen(*name, 0600);
  REQUIRE(fd.ok());
  ::close(*fd);
  REQUIRE(std::filesystem::exists(compose::SocketPathFor(path)));
  auto rc = compose::ForwardIfHeld(path, {"stack", "x"});
  REQUIRE(rc.ok());
  CHECK_FALSE(*rc);
  compose::SetCommandRunner([](const std::vector<std::string>&) { return 7; });
  {
    auto server = compose::ServeWhileHolding(pool, path);
    REQUIRE(server);
    auto again = compose::ForwardIfHeld(path, {"stack", "x"});
    REQUIRE(again.ok());
    REQUIRE(*again);
    CHECK(**again == 7);
  }
  compose::SetCommandRunner(nullptr);
}

namespace {

// A client that connected and sends only `bytes` (maybe none), then waits.
int SilentClient(const std::string& pool_path, const std::string& bytes = "") {
  auto name = wire::SocketName::For(compose::SocketPathFor(pool_path));
  REQUIRE(name.ok());
  auto fd = wire::Connect(*name);
  REQUIRE(fd.ok());
  if (!bytes.empty()) REQUIRE(wire::SendAll(*fd, bytes));
  return *fd;
}

// True when the holder hung up on `fd` without taking a command: EOF (or a
// reset, when it stopped before accepting) before any byte; a taken command
// starts with 'A'.
bool HungUp(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

}  // namespace

TEST_CASE("control: a client that sends nothing holds up neither later clients nor the holder") {
  NamedTempDir dir;
  const std::string path = dir.path + "/p.stk";
  auto pool = MakePool(path);
  compose::SetCommandRunner([](const std::vector<std::string>&) { return 7; });
  SECTION("the holder hangs up on it and answers the next client") {
    compose::ControlOptions o;
    o.request_timeout_ms = 200;
    auto server = compose::ControlServer::Start(pool, path, o);
    REQUIRE(server.ok());
    // Silent from the start, and stopped halfway through the header.
    const int silent = SilentClient(path);
    const int partial = SilentClient(path, std::string(wire::kMagic, 5));
    auto rc = compose::ForwardIfHeld(path, {"stack", "x"});
    REQUIRE(rc.ok());
    REQUIRE(*rc);
    CHECK(**rc == 7);
    CHECK(HungUp(silent));
    CHECK(HungUp(partial));
    ::close(silent);
    ::close(partial);
  }
  SECTION("the holder's end does not wait for it") {
    compose::ControlOptions o;
    o.request_timeout_ms = 3600 * 1000;  // it is the stop that ends the wait
    auto server = compose::ControlServer::Start(pool, path, o);
    REQUIRE(server.ok());
    const int silent = SilentClient(path);
    // The case under test is the worker waiting on the accepted connection;
    // a stop before it accepts ends the same way (a reset).
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server->reset();
    CHECK(HungUp(silent));
    ::close(silent);
    CHECK_FALSE(std::filesystem::exists(compose::SocketPathFor(path)));
  }
  compose::SetCommandRunner(nullptr);
}

// Secret and the passphrase readers.
#include <fcntl.h>
#include <pty.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "fde/passphrase.h"
#include "fde/secret.h"
#include "fde_test_util.h"
#include "test_util.h"

using namespace stack::fde;
using stack::Code;
using stack::testing::CodeOf;

TEST_CASE("Secret: allocation, move, compare") {
  auto a = Secret::FromString("hunter2");
  REQUIRE_OK(a);
  CHECK(a->size() == 7);
  CHECK(a->Equals(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("hunter2"), 7)));
  Secret b = std::move(*a);
  CHECK(a->empty());
  CHECK(b.size() == 7);
  auto c = b.Clone();
  REQUIRE_OK(c);
  CHECK(c->Equals(b.bytes()));
  c->Truncate(3);
  CHECK(c->size() == 3);
  CHECK(!c->Equals(b.bytes()));
  auto r1 = Secret::Random(64), r2 = Secret::Random(64);
  REQUIRE_OK(r1);
  REQUIRE_OK(r2);
  CHECK(!r1->Equals(r2->bytes()));
  auto z = Secret::Zeroed(0);
  REQUIRE_OK(z);
  CHECK(z->empty());
}

TEST_CASE("Passphrase: key file is taken byte for byte") {
  stack::testing::TempDir dir;
  const std::string raw("pass\nword\n", 10);
  testing::WriteFileBytes(dir.file("k"), std::span(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
  auto s = ReadKeyFile(dir.file("k"));
  REQUIRE_OK(s);
  CHECK(s->size() == 10);
  CHECK(CodeOf(ReadKeyFile(dir.file("missing"))) == Code::kNotFound);
  testing::WriteFileBytes(dir.file("empty"), {});
  CHECK(CodeOf(ReadKeyFile(dir.file("empty"))) == Code::kInvalidArgument);
}

TEST_CASE("Passphrase: a line from a descriptor stops at newline, keeps a carriage return (as cryptsetup)") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const char text[] = "correct horse\r\nnext line\n";
  REQUIRE(write(fds[1], text, sizeof(text) - 1) == ssize_t(sizeof(text) - 1));
  close(fds[1]);
  auto s = ReadPassphraseFd(fds[0]);
  REQUIRE_OK(s);
  CHECK(s->size() == 14);
  CHECK(s->Equals(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("correct horse\r"), 14)));
  close(fds[0]);
  REQUIRE(pipe(fds) == 0);
  close(fds[1]);
  CHECK(CodeOf(ReadPassphraseFd(fds[0])) == Code::kInvalidArgument);  // empty
  close(fds[0]);
}

TEST_CASE("Passphrase: TTY prompt reads with echo off") {
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(pipefd[0]);
    auto s = PromptPassphrase("Passphrase: ", true);
    std::string result = s.ok() ? std::string(reinterpret_cast<const char*>(s->data()), s->size())
                                : "ERR " + s.status().ToString();
    (void)!write(pipefd[1], result.data(), result.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string shown;
  auto read_until = [&](const std::string& what) {
    char buf[256];
    while (shown.find(what) == std::string::npos) {
      ssize_t n = read(master, buf, sizeof(buf));
      if (n <= 0) break;
      shown.append(buf, size_t(n));
    }
  };
  read_until("Passphrase: ");
  REQUIRE(write(master, "tty secret\n", 11) == 11);
  read_until("Verify passphrase: ");
  REQUIRE(write(master, "tty secret\n", 11) == 11);
  std::string result;
  char buf[256];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) result.append(buf, size_t(n));
  int status = 0;
  waitpid(pid, &status, 0);
  // Drain what the child's terminal showed after the answers.
  fcntl(master, F_SETFL, O_NONBLOCK);
  while ((n = read(master, buf, sizeof(buf))) > 0) shown.append(buf, size_t(n));
  close(master);
  close(pipefd[0]);
  CHECK(result == "tty secret");
  CHECK(shown.find("tty secret") == std::string::npos);  // never echoed
}

TEST_CASE("Secret: the first secret makes the process non-dumpable with no core limit") {
  auto s = Secret::FromString("anything");
  REQUIRE_OK(s);
  REQUIRE_OK(HardenProcess());
  CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
  struct rlimit rl {};
  REQUIRE(getrlimit(RLIMIT_CORE, &rl) == 0);
  CHECK(rl.rlim_cur == 0);
  CHECK(rl.rlim_max == 0);
}

TEST_CASE("Passphrase: -k - reads all of stdin byte for byte (as cryptsetup --key-file=-)") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const std::string text("pass\r\nmore\n", 11);
  REQUIRE(write(fds[1], text.data(), text.size()) == ssize_t(text.size()));
  close(fds[1]);
  const int saved = dup(STDIN_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(dup2(fds[0], STDIN_FILENO) == STDIN_FILENO);
  close(fds[0]);
  auto s = ReadKeyStdin();
  REQUIRE(dup2(saved, STDIN_FILENO) == STDIN_FILENO);
  close(saved);
  REQUIRE_OK(s);
  CHECK(s->Equals(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()),
                                           text.size())));
}

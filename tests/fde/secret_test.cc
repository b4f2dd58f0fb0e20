// Secret and the passphrase readers.
#include <fcntl.h>
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

TEST_CASE("Passphrase: a line from a descriptor stops at newline") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const char text[] = "correct horse\r\nnext line\n";
  REQUIRE(write(fds[1], text, sizeof(text) - 1) == ssize_t(sizeof(text) - 1));
  close(fds[1]);
  auto s = ReadPassphraseFd(fds[0]);
  REQUIRE_OK(s);
  CHECK(s->size() == 13);
  CHECK(s->Equals(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("correct horse"), 13)));
  close(fds[0]);
  REQUIRE(pipe(fds) == 0);
  close(fds[1]);
  CHECK(CodeOf(ReadPassphraseFd(fds[0])) == Code::kInvalidArgument);  // empty
  close(fds[0]);
}

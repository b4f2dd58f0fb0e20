#include <catch2/catch.hpp>
#include <set>

#include "block/status.h"

using namespace stack;

namespace {
Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}
Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}
Status Check(int x) {
  RETURN_IF_ERROR(Quarter(x).status());
  return Status::Ok();
}
}  // namespace

TEST_CASE("Status carries code, message and errno") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.ToString() == "OK");
  Status s = Status::IoError("read failed", 5);
  CHECK_FALSE(s.ok());
  CHECK(s.code() == Code::kIoError);
  CHECK(s.sys_errno() == 5);
  CHECK(s.ToString() == "IoError: read failed");
  Status c = s.WithContext("volume vm1");
  CHECK(c.message() == "volume vm1: read failed");
  CHECK(c.sys_errno() == 5);
  Status copy = c;
  CHECK(copy.ToString() == c.ToString());
  CHECK(Status::FromErrno("open x", ENOSPC).code() == Code::kNoSpace);
  CHECK(Status::FromErrno("open x", ENOENT).code() == Code::kNotFound);
}

TEST_CASE("Result and the propagation macros") {
  CHECK(Quarter(8).ok());
  CHECK(*Quarter(8) == 2);
  CHECK(Quarter(6).status().code() == Code::kInvalidArgument);
  CHECK(Check(4).ok());
  CHECK(Check(3).code() == Code::kInvalidArgument);
  Result<int> bogus{Status::Ok()};
  CHECK(bogus.status().code() == Code::kInternal);
}

TEST_CASE("every code has a name") {
  std::set<std::string_view> seen;
  for (int c = 0; c <= static_cast<int>(Code::kInternal); ++c) {
    Code code = static_cast<Code>(c);
    CHECK(CodeName(code) != "Unknown");
    CHECK(seen.insert(CodeName(code)).second);
  }
}

// Small helpers shared by the test executables: deterministic data, temp
// directories removed on scope exit, and Status matchers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::testing {

// Sizes most tests share: one place, so the test files of a target can be
// compiled together (a unity build) without two definitions meeting.
inline constexpr uint64_t kMiB = 1 << 20;
inline constexpr uint32_t kBs = 4096;  // the block size of most test pools

// Deterministic pseudo-random bytes (seeded).
std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed);

// A fresh directory under $STACK_TEST_TMP (or /tmp), removed in the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A host file's bytes ("" when it cannot be read).
std::string Slurp(const std::filesystem::path& path);

// Runs a shell command; returns its exit status (-1 if it could not run).
// Output is captured into *out when non-null.
int RunCommand(const std::string& cmd, std::string* out = nullptr);

}  // namespace stack::testing

// REQUIRE that a Status/Result is OK, printing the error if not.
#define REQUIRE_OK(expr)                                      \
  do {                                                        \
    auto&& stack_req_ = (expr);                               \
    INFO(::stack::testing::StatusText(stack_req_));           \
    REQUIRE(stack_req_.ok());                                 \
  } while (0)

namespace stack::testing {
inline std::string StatusText(const Status& s) { return s.ToString(); }
template <typename T>
std::string StatusText(const Result<T>& r) {
  return r.status().ToString();
}
inline Code CodeOf(const Status& s) { return s.code(); }
template <typename T>
Code CodeOf(const Result<T>& r) {
  return r.ok() ? Code::kOk : r.status().code();
}
}  // namespace stack::testing

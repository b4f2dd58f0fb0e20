// Status and Result<T>: the error model shared by every layer of stack.
//
// A Status is either OK (costs one null pointer) or carries a Code, a
// one-line message and, for I/O failures, the errno that caused it.
// Result<T> holds either a T or a non-OK Status. Both are [[nodiscard]]:
// ignoring an error is a compile error under -Werror.
//
// Which code to choose:
//   IoError          the layer below failed (syscall, device); carries errno
//   Corruption       stored bytes fail a check (checksum, magic, bounds)
//   InvalidArgument  the caller asked for something malformed (misaligned I/O,
//                    bad option value, bad name)
//   OutOfRange       an address beyond the end of a device or volume
//   NotFound         a named thing (volume, snapshot, file, keyslot) is absent
//   AlreadyExists    a name is taken
//   NoSpace          the pool, filesystem or keyslot area is full
//   AuthFailed       no passphrase/key opened the container
//   Unsupported      a valid request this build or format does not handle
//   Busy             a resource is held by someone else (pool lock)
//   ReadOnly         a write to a snapshot or read-only container
//   Internal         a bug: an invariant did not hold
//
// Thread-safety: values; distinct objects may be used from distinct threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace stack {

enum class Code : uint8_t {
  kOk = 0,
  kIoError,
  kCorruption,
  kInvalidArgument,
  kOutOfRange,
  kNotFound,
  kAlreadyExists,
  kNoSpace,
  kAuthFailed,
  kUnsupported,
  kBusy,
  kReadOnly,
  kInternal,
};

// Short stable name of a code ("NoSpace"), used in messages and --json.
std::string_view CodeName(Code code);

// (What each code means to a script, its exit status, is the CLI's:
// cli/exit_codes.h.)

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;  // OK
  Status(Code code, std::string message, int sys_errno = 0);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  static Status Ok() { return Status(); }
  static Status IoError(std::string msg, int sys_errno = 0) {
    return Status(Code::kIoError, std::move(msg), sys_errno);
  }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status OutOfRange(std::string msg) { return Status(Code::kOutOfRange, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status AlreadyExists(std::string msg) {
    return Status(Code::kAlreadyExists, std::move(msg));
  }
  static Status NoSpace(std::string msg) { return Status(Code::kNoSpace, std::move(msg)); }
  static Status AuthFailed(std::string msg) { return Status(Code::kAuthFailed, std::move(msg)); }
  static Status Unsupported(std::string msg) { return Status(Code::kUnsupported, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, std::move(msg)); }
  static Status ReadOnly(std::string msg) { return Status(Code::kReadOnly, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  // IoError from the current errno, message "what: strerror(errno)".
  static Status FromErrno(std::string_view what, int sys_errno);

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  // The message without the code name; empty for OK.
  const std::string& message() const;
  // The errno behind an IoError, 0 when none.
  int sys_errno() const { return rep_ ? rep_->sys_errno : 0; }
  // "NoSpace: message" or "OK".
  std::string ToString() const;

  // A copy whose message reads "context: message". OK stays OK.
  Status WithContext(std::string_view context) const;

  bool Is(Code c) const { return code() == c; }

 private:
  struct Rep {
    Code code;
    int sys_errno;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

// Either a value or a non-OK Status. Constructing from an OK Status is a bug
// and yields Internal.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& value) : value_(value) {}             // NOLINT: implicit by design
  Result(T&& value) : value_(std::move(value)) {}       // NOLINT
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::Internal("Result constructed from OK status");
  }
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, T> &&
                                        !std::is_same_v<std::decay_t<U>, Status>>>
  Result(U&& value) : value_(std::forward<U>(value)) {}  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace stack

#define STACK_CONCAT_INNER_(a, b) a##b
#define STACK_CONCAT_(a, b) STACK_CONCAT_INNER_(a, b)

// Evaluates a Status expression; returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::stack::Status stack_status_ = (expr);   \
    if (!stack_status_.ok()) return stack_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns x from a Result or
// returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(STACK_CONCAT_(stack_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()

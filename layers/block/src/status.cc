#include "block/status.h"

#include <cerrno>
#include <cstring>

namespace stack {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kIoError: return "IoError";
    case Code::kCorruption: return "Corruption";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kOutOfRange: return "OutOfRange";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kNoSpace: return "NoSpace";
    case Code::kAuthFailed: return "AuthFailed";
    case Code::kUnsupported: return "Unsupported";
    case Code::kBusy: return "Busy";
    case Code::kReadOnly: return "ReadOnly";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

Status::Status(Code code, std::string message, int sys_errno) {
  if (code != Code::kOk) rep_.reset(new Rep{code, sys_errno, std::move(message)});
}

Status::Status(const Status& other)
    : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

Status Status::FromErrno(std::string_view what, int sys_errno) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(sys_errno);
  if (sys_errno == ENOSPC || sys_errno == EDQUOT) return Status(Code::kNoSpace, msg, sys_errno);
  if (sys_errno == ENOENT) return Status(Code::kNotFound, msg, sys_errno);
  if (sys_errno == EEXIST) return Status(Code::kAlreadyExists, msg, sys_errno);
  if (sys_errno == EWOULDBLOCK) return Status(Code::kBusy, msg, sys_errno);
  if (sys_errno == EROFS) return Status(Code::kReadOnly, msg, sys_errno);
  return Status(Code::kIoError, std::move(msg), sys_errno);
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(CodeName(rep_->code));
  s += ": ";
  s += rep_->message;
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return Status();
  std::string msg(context);
  msg += ": ";
  msg += rep_->message;
  return Status(rep_->code, std::move(msg), rep_->sys_errno);
}

}  // namespace stack

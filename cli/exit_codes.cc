// The exit-status table (see exit_codes.h).
#include "exit_codes.h"

#include <cstdio>

namespace stack::cli {

namespace {

constexpr ExitCode kTable[] = {
    {Code::kOk, 0, "success"},
    {Code::kInternal, 1, "a bug: an invariant did not hold"},
    {Code::kInvalidArgument, 2, "malformed request or usage error"},
    {Code::kNotFound, 3, "a named volume, snapshot, file or keyslot is absent"},
    {Code::kAlreadyExists, 4, "a name is taken"},
    {Code::kNoSpace, 5, "pool, filesystem or keyslot area full"},
    {Code::kAuthFailed, 6, "no passphrase or key opened the container"},
    {Code::kCorruption, 7, "stored bytes failed a check (checksum, magic, bounds)"},
    {Code::kIoError, 8, "the layer below failed"},
    {Code::kBusy, 9, "held by someone else (pool lock)"},
    {Code::kUnsupported, 10, "a valid request this build or format does not handle"},
    {Code::kOutOfRange, 11, "an address or size beyond what the target holds"},
    {Code::kReadOnly, 12, "a write to a snapshot or read-only container"},
};

}  // namespace

std::span<const ExitCode> ExitTable() { return kTable; }

int ExitStatusFor(Code code) {
  for (const ExitCode& e : kTable)
    if (e.code == code) return e.status;
  return 1;
}

std::string ExitTableHelp() {
  std::string out;
  for (const ExitCode& e : kTable) {
    char line[160];
    std::snprintf(line, sizeof line, "  %2d  %s: %s\n", e.status,
                  std::string(CodeName(e.code)).c_str(), e.meaning);
    out += line;
  }
  return out;
}

}  // namespace stack::cli

// The CLI's exit statuses: one table, owned here. main() maps a failed
// command's Status code through it, --help prints it (ExitTableHelp), and
// spec/block-device.md "Errors and exit statuses" documents it (a test
// checks that --help, the spec and the tests' table agree).
//
// Thread-safety: immutable data and pure functions.
#pragma once

#include <span>
#include <string>

#include "block/status.h"

namespace stack::cli {

struct ExitCode {
  Code code;
  int status;           // the process exit status
  const char* meaning;  // one line, for --help and the spec
};

// Every Code once, in exit-status order.
std::span<const ExitCode> ExitTable();

// The exit status for a code (1, as Internal, for a code not in the table).
int ExitStatusFor(Code code);

// The table as --help shows it: "  <status>  <Code>: <meaning>" lines.
std::string ExitTableHelp();

}  // namespace stack::cli

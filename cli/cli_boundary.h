// The one place CLI11 exceptions are caught and turned into exit statuses.
#pragma once

#include <CLI/CLI.hpp>

namespace stack::cli {

// Parses argv. Returns -1 when a command was chosen and should run; otherwise
// the exit status to return at once (0 after --help/--version, 2 after a
// usage error, which has been printed as one line plus a hint, and with
// `json` also as an error object on stdout; see ReportError in output.h).
int ParseCommandLine(CLI::App& app, int argc, char** argv, bool json);

}  // namespace stack::cli

// The whole `stack` command line as a library call, so the `stack` binary
// and any other front end (the nbdkit plugin) run commands through the same
// code, and a command forwarded to the process holding a pool
// (stack/control.h) is answered exactly as a direct run.
//
// Thread-safety: one command per thread; commands forwarded to this process
// run one at a time (the control server's worker).
#pragma once

#include <string>
#include <vector>

namespace stack::cli {

// Parses and runs one command; returns its exit status (cli/exit_codes.h).
// A command naming a pool held by another process is forwarded to it.
// The first call installs this function as the process's
// compose::CommandRunner.
int RunCli(int argc, char** argv);
int RunCli(const std::vector<std::string>& argv);

}  // namespace stack::cli

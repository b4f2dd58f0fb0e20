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
// The first call does InstallCli().
int RunCli(int argc, char** argv);
int RunCli(const std::vector<std::string>& argv);

// Once per process (later calls do nothing): RunCli becomes the
// compose::CommandRunner, so a control server here answers commands with
// the CLI, and pool warnings go to stderr. A front end that holds pools
// without calling RunCli first (the nbdkit plugin) calls this before it
// starts a compose::ControlServer.
void InstallCli();

}  // namespace stack::cli

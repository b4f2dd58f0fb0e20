// How a `stack` subcommand is wired: each cmd_*.cc registers its nouns and
// verbs on the CLI11 app and, when chosen, stores the action to run in the
// CommandContext. main() runs the action after parsing, so every command
// reports failure as a Status mapped to one stderr line and an exit status
// (the table in exit_codes.h).
//
// Conventions every command follows:
//   - nouns then verbs: `stack pool create`, `stack volume list`;
//   - `--json` (global) switches listings and reports to one JSON document on
//     stdout; without it output is a human table or summary. A command that
//     prints nothing else fills CommandContext::done, and RunCli prints
//     {"command": "fs put", "ok": true, ...done}; an error is
//     {"error": {"code", "message"}} (cli/output.h ReportError);
//   - errors: "stack: <Code>: <message>" on stderr, exit status from the table;
//   - secrets never come from argv (key files, stdin or a TTY prompt only).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "block/status.h"

namespace stack::cli {

struct CommandContext {
  bool json = false;
  std::function<Status()> action;
  // The pool file the chosen command names ("" for none), set with action:
  // RunCli forwards the command to the process holding it, if any
  // (stack/control.h).
  std::string pool;
  // What a command that prints no document did ({"path": "/etc/motd"}):
  // RunCli prints it with --json (see the conventions above).
  nlohmann::json done = nlohmann::json::object();
};

void RegisterBlockdevCommands(CLI::App& app, CommandContext& ctx);
void RegisterPoolCommands(CLI::App& app, CommandContext& ctx);
void RegisterVolumeCommands(CLI::App& app, CommandContext& ctx);
void RegisterLuksCommands(CLI::App& app, CommandContext& ctx);
void RegisterFsCommands(CLI::App& app, CommandContext& ctx);
void RegisterImageCommands(CLI::App& app, CommandContext& ctx);
void RegisterServeCommands(CLI::App& app, CommandContext& ctx);
void RegisterDiffCommands(CLI::App& app, CommandContext& ctx);
void RegisterSendCommands(CLI::App& app, CommandContext& ctx);

}  // namespace stack::cli

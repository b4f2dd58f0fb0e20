#include "run_cli.h"

#include <unistd.h>

#include <iostream>
#include <mutex>

#include "cli_boundary.h"
#include "command.h"
#include "exit_codes.h"
#include "output.h"
#include "pool/pool.h"
#include "pool/store.h"
#include "stack/control.h"

namespace stack::cli {
namespace {

// "stack fs populate": the chosen command's words, naming this process
// as a pool holder in Busy messages.
std::string CommandWords(const CLI::App& app) {
  std::string words = app.get_name();
  const CLI::App* cur = &app;
  for (;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    words += " " + cur->get_name();
  }
  return words;
}

}  // namespace

void InstallCli() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Whatever command opens a pool, damaged or torn superblock copies are
    // reported on stderr.
    pool::SetPoolWarningSink(
        [](const std::string& w) { std::cerr << "stack: warning: " << w << "\n"; });
    compose::SetCommandRunner([](const std::vector<std::string>& argv) { return RunCli(argv); });
  });
}

int RunCli(int argc, char** argv) {
  InstallCli();
  CommandContext ctx;
  CLI::App app{
      "stack: build, snapshot, clone and ship encrypted disk images entirely in userspace.\n"
      "Commands are nouns then verbs (`stack blockdev info FILE`). Errors print one line\n"
      "\"stack: <Code>: <message>\" on stderr and exit with a status per code:\n" +
          ExitTableHelp(),
      "stack"};
  app.set_version_flag("--version", std::string("stack ") + STACK_VERSION);
  app.add_flag("--json", ctx.json, "Print listings and reports as JSON on stdout");
  app.require_subcommand(1);
  app.fallthrough();
  RegisterImageCommands(app, ctx);
  RegisterPoolCommands(app, ctx);
  RegisterVolumeCommands(app, ctx);
  RegisterLuksCommands(app, ctx);
  RegisterFsCommands(app, ctx);
  RegisterBlockdevCommands(app, ctx);
  RegisterServeCommands(app, ctx);
  RegisterDiffCommands(app, ctx);
  RegisterSendCommands(app, ctx);

  int rc = ParseCommandLine(app, argc, argv);
  if (rc >= 0) return rc;
  if (!ctx.action) {
    PrintError(stack::Status::InvalidArgument("no command given (see --help)"));
    return ExitStatusFor(stack::Code::kInvalidArgument);
  }
  // Before anything reads a secret or stdin: the holder runs it instead.
  const bool forwarded = compose::InForwardedCommand();
  if (!ctx.pool.empty() && !forwarded) {
    auto held = compose::ForwardIfHeld(ctx.pool, std::vector<std::string>(argv, argv + argc));
    if (!held.ok()) {
      PrintError(held.status());
      return ExitStatusFor(held.status().code());
    }
    if (*held) return **held;
  }
  if (!forwarded) {
    compose::SetHolderDescription(CommandWords(app) + " (pid " + std::to_string(::getpid()) + ")");
    pool::SetLockHolderName(CommandWords(app));  // the lock note names the command too
  }
  stack::Status st = ctx.action();
  if (!st.ok()) {
    PrintError(st);
    return ExitStatusFor(st.code());
  }
  return 0;
}

int RunCli(const std::vector<std::string>& argv) {
  std::vector<char*> ptrs;
  std::vector<std::string> copy = argv;  // CLI11 takes char**
  for (auto& s : copy) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  return RunCli(static_cast<int>(copy.size()), ptrs.data());
}

}  // namespace stack::cli

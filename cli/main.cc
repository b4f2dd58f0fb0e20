// stack: build, snapshot, clone and ship encrypted disk images in userspace.
#include <iostream>

#include "cli_boundary.h"
#include "command.h"
#include "exit_codes.h"
#include "output.h"

int main(int argc, char** argv) {
  using namespace stack::cli;
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

  int rc = ParseCommandLine(app, argc, argv);
  if (rc >= 0) return rc;
  if (!ctx.action) {
    PrintError(stack::Status::InvalidArgument("no command given (see --help)"));
    return ExitStatusFor(stack::Code::kInvalidArgument);
  }
  stack::Status st = ctx.action();
  if (!st.ok()) {
    PrintError(st);
    return ExitStatusFor(st.code());
  }
  return 0;
}

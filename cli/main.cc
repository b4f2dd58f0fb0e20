// stack: build, snapshot, clone and ship encrypted disk images in userspace.
#include <iostream>

#include "cli_boundary.h"
#include "command.h"
#include "output.h"

int main(int argc, char** argv) {
  using namespace stack::cli;
  CommandContext ctx;
  CLI::App app{
      "stack: build, snapshot, clone and ship encrypted disk images entirely in userspace.\n"
      "Commands are nouns then verbs (`stack blockdev info FILE`). Errors print one line\n"
      "\"stack: <Code>: <message>\" on stderr and exit with a status per code:\n"
      "  0 ok, 1 internal, 2 usage/invalid argument, 3 not found, 4 already exists,\n"
      "  5 no space, 6 authentication failed, 7 corruption, 8 I/O error, 9 busy,\n"
      "  10 unsupported, 11 out of range, 12 read-only.",
      "stack"};
  app.set_version_flag("--version", std::string("stack ") + STACK_VERSION);
  app.add_flag("--json", ctx.json, "Print listings and reports as JSON on stdout");
  app.require_subcommand(1);
  app.fallthrough();
  RegisterBlockdevCommands(app, ctx);

  int rc = ParseCommandLine(app, argc, argv);
  if (rc >= 0) return rc;
  if (!ctx.action) {
    PrintError(stack::Status::InvalidArgument("no command given (see --help)"));
    return stack::ExitStatusFor(stack::Code::kInvalidArgument);
  }
  stack::Status st = ctx.action();
  if (!st.ok()) {
    PrintError(st);
    return stack::ExitStatusFor(st.code());
  }
  return 0;
}

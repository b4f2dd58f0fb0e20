#include "cli_boundary.h"

#include <iostream>

#include "block/status.h"
#include "exit_codes.h"
#include "output.h"

namespace stack::cli {

int ParseCommandLine(CLI::App& app, int argc, char** argv, bool json) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::Success& e) {  // --help, --version (CallForHelp derives from it)
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    ReportError(Status::InvalidArgument(std::string(e.what()) + " (see --help)"), json);
    return ExitStatusFor(Code::kInvalidArgument);
  }
}

}  // namespace stack::cli

#include "cli_boundary.h"

#include <iostream>

#include "block/status.h"
#include "exit_codes.h"
#include "output.h"

namespace stack::cli {

int ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::Success& e) {  // --help, --version (CallForHelp derives from it)
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "stack: " << CodeName(Code::kInvalidArgument) << ": " << EscapeText(e.what())
              << " (see --help)\n";
    return ExitStatusFor(Code::kInvalidArgument);
  }
}

}  // namespace stack::cli

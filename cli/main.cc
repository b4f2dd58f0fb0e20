// stack: build, snapshot, clone and ship encrypted disk images in userspace.
#include "run_cli.h"

int main(int argc, char** argv) { return stack::cli::RunCli(argc, argv); }

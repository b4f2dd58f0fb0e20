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
#include "stack/rbd_volume_store.h"

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

// Whether --json is among the options (before any "--"): known before
// parsing, so a usage error can be reported as JSON too.
bool WantsJson(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--json") return true;
  }
  return false;
}

}  // namespace

void InstallCli() {
  static std::once_flag once;
  std::call_once(once, [] {
    TrackStdout();
    // Whatever command opens a pool, damaged or torn superblock copies are
    // reported on stderr.
    pool::SetPoolWarningSink(
        [](const std::string& w) { std::cerr << "stack: warning: " << w << "\n"; });
    // Benchmarked keyslot KDFs are shown (a busy CI runner gets weaker ones).
    fde::SetKdfChoiceSink([](const fde::KdfChoice& c) { ReportKdfChoice(c); });
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
  compose::CephOptions ceph;
  app.add_option("--ceph-conf", ceph.conf_path,
                 "Ceph cluster config for rbd:CEPHPOOL[/NAMESPACE] pools (default $CEPH_CONF, "
                 "then Ceph's search path)");
  app.add_option("--ceph-id", ceph.client_id, "Ceph client id (default admin)");
  app.add_flag("--ceph-break-lock", ceph.break_lock,
               "Break another client's exclusive lock on an RBD image this command writes "
               "(for a lock a dead client left; the holder is blocklisted)");
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

  ResetCommandOutput();
  int rc = ParseCommandLine(app, argc, argv, WantsJson(argc, argv));
  if (rc >= 0) return rc;
  if (!ctx.action) {
    ReportError(stack::Status::InvalidArgument("no command given (see --help)"), ctx.json);
    return ExitStatusFor(stack::Code::kInvalidArgument);
  }
  // Before anything reads a secret or stdin: the holder runs it instead.
  const bool forwarded = compose::InForwardedCommand();
  // An RBD store has no holder to forward to: its lock is per image (spec/ceph.md).
  if (!ctx.pool.empty() && !forwarded && !compose::IsRbdPool(ctx.pool)) {
    auto held = compose::ForwardIfHeld(ctx.pool, std::vector<std::string>(argv, argv + argc));
    if (!held.ok()) {
      ReportError(held.status(), ctx.json);
      return ExitStatusFor(held.status().code());
    }
    if (*held) return **held;
  }
  compose::SetCephOptions(ceph);
  // Children (the nbdkit plugin of `serve`) find the same cluster.
  if (!ceph.conf_path.empty()) ::setenv("CEPH_CONF", ceph.conf_path.c_str(), 1);
  if (!ceph.client_id.empty()) ::setenv("STACK_CEPH_ID", ceph.client_id.c_str(), 1);
  const std::string words = CommandWords(app);
  if (!forwarded) {
    compose::SetHolderDescription(words + " (pid " + std::to_string(::getpid()) + ")");
    pool::SetLockHolderName(words);  // the lock note names the command too
  }
  stack::Status st = ctx.action();
  if (!st.ok()) {
    ReportError(st, ctx.json);
    return ExitStatusFor(st.code());
  }
  // --json on every command: one that printed nothing says what it did.
  if (ctx.json && !StdoutUsed()) {
    nlohmann::json doc = {{"command", words.substr(words.find(' ') + 1)}, {"ok", true}};
    if (ctx.done.is_object()) doc.update(ctx.done);
    PrintJson(doc);
  }
  std::cout.flush();
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

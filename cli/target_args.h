// Command-line options shared by every command that works on a target
// (a pool entry or a raw image file) and needs passphrases.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "stack/secrets.h"
#include "stack/target.h"
#include "stack/unlock.h"

namespace stack::cli {

// --pool/-p FILE, defaulting to $STACK_POOL of the command's environment.
void AddPoolOption(CLI::App* cmd, std::string& pool, const std::string& help);

struct TargetArgs {
  std::string pool;   // --pool / $STACK_POOL
  std::string image;  // --image
  std::vector<std::string> pos;  // [ENTRY] then the command's own arguments
  std::string key_file;          // --key-file
  std::string new_key_file;      // --new-key-file

  // Adds --pool, --image and the positional list described by `usage`
  // (e.g. "[ENTRY] PATH").
  void AddTo(CLI::App* cmd, const std::string& usage);
  // The pool the command works on ("" with --image).
  std::string PoolNamed() const;
  void AddKeyFile(CLI::App* cmd);
  void AddNewKeyFile(CLI::App* cmd);
  // The target spec: with a pool the first positional is the entry (and is
  // removed from pos); with --image all positionals are the command's.
  Result<compose::TargetSpec> Spec(bool writable);
  // Checks the command's positionals count now that the entry is consumed.
  Status NeedArgs(size_t min, size_t max, const char* usage) const;
  compose::SecretGetter Passphrase(const std::string& prompt = "Passphrase: ") const;
  compose::SecretGetter NewPassphrase() const;
};

}  // namespace stack::cli

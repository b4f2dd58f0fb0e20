// Options choosing how new keyslots are protected (format, add-key,
// change-key, build, clone --new-key-file).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "fde/luks.h"

namespace stack::cli {

struct KdfArgs {
  std::string kdf = "argon2id";
  uint32_t time_ms = 1000;
  uint32_t memory_kib = 256 * 1024;
  uint32_t threads = 0;
  uint32_t iterations = 0;  // pbkdf2 fixed iterations (0 = benchmark time_ms)
  uint32_t time_cost = 0;   // argon2 fixed passes (0 = benchmark time_ms)

  void AddTo(CLI::App* cmd);
  Result<fde::KdfParams> Params() const;
};

}  // namespace stack::cli

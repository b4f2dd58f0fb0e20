#include "kdf_args.h"

namespace stack::cli {

void KdfArgs::AddTo(CLI::App* cmd) {
  cmd->add_option("--kdf", kdf, "Keyslot KDF: argon2id, argon2i or pbkdf2")
      ->capture_default_str();
  cmd->add_option("--kdf-time-ms", time_ms, "Target unlock time per keyslot (benchmarked)")
      ->capture_default_str();
  cmd->add_option("--kdf-memory", memory_kib, "Argon2 memory in KiB")->capture_default_str();
  cmd->add_option("--kdf-threads", threads, "Argon2 lanes (0 = min(4, cores))");
  cmd->add_option("--kdf-time-cost", time_cost, "Argon2 passes, fixed (skips the benchmark)");
  cmd->add_option("--pbkdf2-iterations", iterations,
                  "PBKDF2 iterations, fixed (skips the benchmark)");
}

Result<fde::KdfParams> KdfArgs::Params() const {
  fde::KdfParams p;
  if (kdf == "argon2id") p.type = fde::KdfType::kArgon2id;
  else if (kdf == "argon2i") p.type = fde::KdfType::kArgon2i;
  else if (kdf == "pbkdf2") p.type = fde::KdfType::kPbkdf2;
  else return Status::InvalidArgument("unknown --kdf \"" + kdf + "\" (argon2id, argon2i, pbkdf2)");
  p.time_ms = time_ms;
  p.memory_kib = memory_kib;
  p.parallelism = threads;
  if (p.type == fde::KdfType::kPbkdf2 && iterations) {
    p.time_ms = 0;
    p.iterations = iterations;
  }
  if (p.type != fde::KdfType::kPbkdf2 && time_cost) {
    p.time_ms = 0;
    p.time_cost = time_cost;
  }
  return p;
}

}  // namespace stack::cli

#include "target_args.h"

#include <cstdlib>

#include "stack/control.h"

namespace stack::cli {

void AddPoolOption(CLI::App* cmd, std::string& pool, const std::string& help) {
  // Not CLI11's envname: that reads this process's environment, and a
  // forwarded command runs with its client's (compose::CommandEnv).
  if (auto env = compose::CommandEnv("STACK_POOL"); env && pool.empty()) pool = *env;
  cmd->add_option("--pool,-p", pool, help + " (default: $STACK_POOL)");
}

std::string TargetArgs::PoolNamed() const { return image.empty() ? pool : std::string(); }

void TargetArgs::AddTo(CLI::App* cmd, const std::string& usage) {
  AddPoolOption(cmd, pool, "Pool file; first argument is the entry");
  cmd->add_option("--image", image, "Work on a raw image file instead of a pool entry");
  cmd->add_option("args", pos, usage);
}

void TargetArgs::AddKeyFile(CLI::App* cmd) {
  cmd->add_option("--key-file,-k", key_file,
                  "Passphrase file, byte for byte ('-' = all of stdin, newlines included, as "
                  "cryptsetup --key-file=-). Default: prompt");
}

void TargetArgs::AddNewKeyFile(CLI::App* cmd) {
  cmd->add_option("--new-key-file", new_key_file,
                  "New passphrase file ('-' = all of stdin, as cryptsetup). Default: prompt twice");
}

Result<compose::TargetSpec> TargetArgs::Spec(bool writable) {
  compose::TargetSpec s;
  s.writable = writable;
  if (!image.empty()) {
    // STACK_POOL from the environment gives way to --image; an explicit
    // --pool FILE with --image names two targets.
    const auto env = compose::CommandEnv("STACK_POOL");
    if (!pool.empty() && (!env || pool != *env))
      return Status::InvalidArgument("--pool and --image name two targets: give one");
    s.image_path = image;
    return s;
  }
  if (pool.empty()) {
    return Status::InvalidArgument(
        "name a target: --pool FILE (or STACK_POOL) with VOLUME[@SNAPSHOT], or --image FILE");
  }
  if (pos.empty()) return Status::InvalidArgument("missing VOLUME[@SNAPSHOT] after --pool");
  s.pool_path = pool;
  s.entry = pos.front();
  pos.erase(pos.begin());
  return s;
}

Status TargetArgs::NeedArgs(size_t min, size_t max, const char* usage) const {
  if (pos.size() < min || pos.size() > max)
    return Status::InvalidArgument(std::string("expected ") + usage);
  return Status::Ok();
}

compose::SecretGetter TargetArgs::Passphrase(const std::string& prompt) const {
  std::string kf = key_file;
  return [kf, prompt]() {
    compose::SecretSource s;
    s.key_file = kf;
    s.prompt = prompt;
    return compose::ObtainSecret(s);
  };
}

compose::SecretGetter TargetArgs::NewPassphrase() const {
  std::string kf = new_key_file;
  std::string old = key_file;
  return [kf, old]() -> Result<fde::Secret> {
    if (kf == "-" && old == "-")
      return Status::InvalidArgument("--key-file and --new-key-file cannot both be stdin");
    compose::SecretSource s;
    s.key_file = kf;
    s.prompt = "New passphrase: ";
    s.confirm = true;
    return compose::ObtainSecret(s);
  };
}

}  // namespace stack::cli

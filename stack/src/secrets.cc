#include "stack/secrets.h"

#include "fde/passphrase.h"
#include "stack/control.h"

namespace stack::compose {

Result<fde::Secret> ObtainSecret(const SecretSource& src) {
  if (src.key_file == "-") return fde::ReadKeyStdin();
  if (!src.key_file.empty()) return fde::ReadKeyFile(src.key_file);
  // A forwarded command prompts on its client's terminal, never the holder's.
  const std::optional<int> tty = CommandTty();
  auto s = tty ? fde::PromptPassphraseOn(*tty, src.prompt, src.confirm)
               : fde::PromptPassphrase(src.prompt, src.confirm);
  if (!s.ok() && s.status().code() == Code::kNotFound) {
    return Status::InvalidArgument(
        "a passphrase is needed and there is no terminal to ask on: pass --key-file FILE "
        "(or --key-file - to read it from standard input)");
  }
  return s;
}

}  // namespace stack::compose

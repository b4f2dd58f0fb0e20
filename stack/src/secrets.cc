#include "stack/secrets.h"

#include "fde/passphrase.h"

namespace stack::compose {

Result<fde::Secret> ObtainSecret(const SecretSource& src) {
  if (src.key_file == "-") return fde::ReadKeyStdin();
  if (!src.key_file.empty()) return fde::ReadKeyFile(src.key_file);
  auto s = fde::PromptPassphrase(src.prompt, src.confirm);
  if (!s.ok() && s.status().code() == Code::kNotFound) {
    return Status::InvalidArgument(
        "a passphrase is needed and there is no terminal to ask on: pass --key-file FILE "
        "(or --key-file - to read it from standard input)");
  }
  return s;
}

}  // namespace stack::compose

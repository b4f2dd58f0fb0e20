// Where a command's passphrases come from. Never argv: a key file (the whole
// file, like `cryptsetup --key-file`), all of standard input ("-", byte for
// byte, newlines included, like `cryptsetup --key-file=-`), or a no-echo
// prompt on the controlling terminal (one line, the '\n' excluded; inside a
// forwarded command, the client's terminal: stack/control.h).
//
// Thread-safety: prompts touch the terminal; call from one thread.
#pragma once

#include <string>

#include "block/status.h"
#include "fde/secret.h"

namespace stack::compose {

struct SecretSource {
  std::string key_file;  // "" = prompt on the TTY, "-" = all of stdin
  std::string prompt = "Passphrase: ";
  bool confirm = false;  // prompt twice (new passphrases)
};

// Reads the secret. A missing terminal when a prompt is needed is
// InvalidArgument telling the user to pass a key file.
Result<fde::Secret> ObtainSecret(const SecretSource& src);

}  // namespace stack::compose

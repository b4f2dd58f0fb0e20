// Passphrase input. A passphrase never comes from argv: only from a key file,
// from standard input, or from the controlling terminal with echo off. Each
// reader puts the bytes straight into a Secret; no std::string copy is made.
//
//   ReadKeyFile(path)          the whole file, byte for byte (like
//                              `cryptsetup --key-file`); at most kMaxKeyFile
//                              bytes, else InvalidArgument.
//   ReadKeyStdin()             all of standard input, byte for byte, newlines
//                              included: exactly `cryptsetup --key-file=-`
//                              ("reading will not stop at newline characters").
//   ReadPassphraseFd(fd)       one line from fd: bytes up to the first '\n'
//                              (excluded) or EOF. Nothing else is stripped: a
//                              '\r' before the '\n' is part of the passphrase,
//                              as cryptsetup reads a line (a passphrase typed
//                              on a terminal, or stdin without --key-file).
//   ReadPassphraseStdin()      ReadPassphraseFd(0).
//   PromptPassphrase(prompt, confirm)
//                              opens /dev/tty, prints the prompt, reads a line
//                              with echo disabled (restored on every path);
//                              with confirm asks twice and fails with
//                              InvalidArgument if they differ. NotFound when
//                              there is no terminal.
//   PromptPassphraseOn(fd, prompt, confirm)
//                              the same on an open terminal descriptor (one a
//                              forwarded command's client passed; NotFound if
//                              fd is not a terminal).
// An empty passphrase is InvalidArgument for every reader.
//
// Thread-safety: the TTY prompt changes terminal state; call from one thread.
#pragma once

#include <string>

#include "fde/secret.h"

namespace stack::fde {

inline constexpr size_t kMaxKeyFile = 8u << 20;
inline constexpr size_t kMaxPassphraseLine = 512;

Result<Secret> ReadKeyFile(const std::string& path);
Result<Secret> ReadKeyStdin();
Result<Secret> ReadPassphraseFd(int fd);
Result<Secret> ReadPassphraseStdin();
Result<Secret> PromptPassphrase(const std::string& prompt, bool confirm);
Result<Secret> PromptPassphraseOn(int tty_fd, const std::string& prompt, bool confirm);

}  // namespace stack::fde

// Directory-entry names read from an image: which are safe to hand to a
// host filesystem or a tar consumer, and how to print any name.
//
// An ext4 entry name is up to 255 arbitrary bytes; e2fsck does not object to
// every hostile one. Every reader (List, ExtractToDirectory, ExtractToTar)
// asks IsSafeEntryName before using a name (spec/fsbridge.md "Hostile images").
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace stack::fsbridge {

// True for a name that names exactly one entry beneath its directory on any
// POSIX host: 1..255 bytes, not "." or "..", no '/' and no NUL byte.
bool IsSafeEntryName(std::string_view name);

// The name made printable on one line: bytes < 0x20, 0x7f and '\\' escaped
// (\n, \t, \\, else \xHH); other bytes, UTF-8 included, are kept.
std::string EscapeName(std::string_view name);

}  // namespace stack::fsbridge

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

#include "block/text.h"

namespace stack::fsbridge {

// True for a name that names exactly one entry beneath its directory on any
// POSIX host: 1..255 bytes, not "." or "..", no '/' and no NUL byte.
bool IsSafeEntryName(std::string_view name);

// Printing a name: stack::EscapeText (block/text.h), the stack's one rule.

}  // namespace stack::fsbridge

// Sizes on the command line: one parser and one rule for every command
// (spec/composition.md "Sizes").
//
//   SIZE = decimal digits, optionally followed by a binary suffix:
//          K, M, G, T, P (x 1024^1..5), also written KiB, MiB, ...; B = bytes.
//   No fractions, signs, spaces, decimal units (KB) or hex. At most
//   2^63 - 1 bytes (the largest file offset). Zero only where the option
//   says so (offsets, a cache that may be off).
//   Sizes of volumes and pools must be whole pool blocks: an unaligned size
//   is refused, naming the nearest valid sizes (compose::RequireWholeBlocks).
// Every malformed, negative, zero or too large size is InvalidArgument
// (exit 2) with one message: `<option> "<text>": <why> (<the rule>)`.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"

namespace stack::cli {

// The rule, as --help shows it after an option's description.
inline constexpr const char* kSizeHelp =
    "bytes, or with a binary suffix K M G T P (e.g. 4096, 64M, 20G; no fractions)";

// option: the flag name for the message, e.g. "--size".
Result<uint64_t> ParseSize(const std::string& text, const std::string& option,
                           bool allow_zero = false);
// "1.5 GiB", "512 B".
std::string FormatSize(uint64_t bytes);

}  // namespace stack::cli
